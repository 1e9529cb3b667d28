// The JIT's differential mode: two harts with identical RAM, one interpreting and one
// running translations, step through the same program in the same slices; after every
// slice their architectural state (and the step results) must be equal. Used by the unit
// test (generated programs) and the fuzzer (random instruction streams).
//
// The harts run in M-mode at kRamBase with a trap handler at kHandler that skips a
// faulting instruction (mepc += 4) and, for the software interrupt the programs raise
// (mip.SSIP), clears it; so faults mid-block, illegal instructions, ecalls and
// interrupts are all taken through the guest's own trap path, as in a booted system.
// Registers x28-x31 belong to the handler; programs use x1-x27.
#pragma once

#include <array>
#include <cstdint>
#include <iterator>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "core/bus.h"
#include "core/device.h"
#include "core/guest_memory.h"
#include "engines/emu/riscv64/decode.h"
#include "engines/emu/riscv64/hart.h"
#include "engines/emu/riscv64/timebase.h"

namespace doppel::rv64::jitdiff {

constexpr uint64_t kRamBase = 0x80000000;
constexpr uint64_t kRamSize = 1 << 20;
constexpr uint64_t kHandler = kRamBase + 0xf0000;
constexpr uint64_t kData = kRamBase + 0x40000;  // x20 points here
constexpr uint64_t kMmioBase = 0x10000000;

namespace enc {
constexpr uint32_t r(uint32_t f7, uint32_t rs2, uint32_t rs1, uint32_t f3, uint32_t rd, uint32_t op) {
  return (f7 << 25) | (rs2 << 20) | (rs1 << 15) | (f3 << 12) | (rd << 7) | op;
}
constexpr uint32_t i(int32_t imm, uint32_t rs1, uint32_t f3, uint32_t rd, uint32_t op) {
  return (static_cast<uint32_t>(imm & 0xfff) << 20) | (rs1 << 15) | (f3 << 12) | (rd << 7) | op;
}
constexpr uint32_t s(int32_t imm, uint32_t rs2, uint32_t rs1, uint32_t f3, uint32_t op) {
  const auto v = static_cast<uint32_t>(imm);
  return ((v >> 5 & 0x7f) << 25) | (rs2 << 20) | (rs1 << 15) | (f3 << 12) | ((v & 31) << 7) | op;
}
constexpr uint32_t b(int32_t imm, uint32_t rs2, uint32_t rs1, uint32_t f3) {
  const auto v = static_cast<uint32_t>(imm);
  return ((v >> 12 & 1) << 31) | ((v >> 5 & 0x3f) << 25) | (rs2 << 20) | (rs1 << 15) |
         (f3 << 12) | ((v >> 1 & 0xf) << 8) | ((v >> 11 & 1) << 7) | 0x63;
}
constexpr uint32_t j(int32_t imm, uint32_t rd) {
  const auto v = static_cast<uint32_t>(imm);
  return ((v >> 20 & 1) << 31) | ((v >> 1 & 0x3ff) << 21) | ((v >> 11 & 1) << 20) |
         ((v >> 12 & 0xff) << 12) | (rd << 7) | 0x6f;
}
constexpr uint32_t csr(uint32_t f3, uint32_t rd, uint32_t num, uint32_t rs1) {
  return (num << 20) | (rs1 << 15) | (f3 << 12) | (rd << 7) | 0x73;
}
constexpr uint32_t kMret = 0x30200073, kEcall = 0x73, kEbreak = 0x00100073, kFenceI = 0x100f;
}  // namespace enc

// Reads return the address's low bits; writes are dropped, but for kPinOffset, whose bit 0
// drives the hart's MSIP pin (as a CLINT's msip would, from the store's own thread).
class EchoDevice final : public Device {
 public:
  static constexpr uint64_t kPinOffset = 0x7f8;
  std::string_view name() const override { return "echo"; }
  uint64_t read(uint64_t offset, unsigned size) override {
    return (offset * 0x0101) & (size == 8 ? ~0ull : ((1ull << (8 * size)) - 1));
  }
  void write(uint64_t offset, unsigned, uint64_t value) override {
    if (offset == kPinOffset && pins != nullptr) pins->set(kMipMSIP, (value & 1) != 0);
  }
  InterruptPins* pins = nullptr;
};

struct Machine {
  std::unique_ptr<GuestMemory> memory;
  Bus bus{"mmio"};
  EchoDevice device;
  Timebase timebase;
  std::unique_ptr<Hart> hart;
};

inline std::vector<uint32_t> handler_code() {
  using namespace enc;
  // t3 = mcause; if interrupt: clear mip.SSIP (2) and the echo device's MSIP pin, and
  // return; else mepc += 4.
  return {
      csr(2, 28, 0x342, 0),            // csrr t3, mcause
      b(20, 0, 28, 4),                 // blt t3, zero, +20 (irq)
      csr(2, 29, 0x341, 0),            // csrr t4, mepc
      i(4, 29, 0, 29, 0x13),           // addi t4, t4, 4
      csr(1, 0, 0x341, 29),            // csrw mepc, t4
      kMret,
      i(2, 0, 0, 30, 0x13),            // irq: addi t5, zero, 2
      csr(3, 0, 0x344, 30),            // csrc mip, t5
      s(EchoDevice::kPinOffset, 0, 22, 3, 0x23),  // sd zero, kPinOffset(x22)
      kMret,
  };
}

// A machine whose hart runs `program` at kRamBase, with the JIT on (translating every block
// at once) or off.
// small: odd registers start at -2..2 (boundaries of compares, shifts, sign extension),
// even ones large; otherwise all large.
inline Result<std::unique_ptr<Machine>> make_machine(const std::vector<uint32_t>& program,
                                                     bool jit, size_t jit_cache = 1 << 20,
                                                     bool small = false) {
  auto m = std::make_unique<Machine>();
  m->memory = TRY(GuestMemory::create({{kRamBase, kRamSize}}));
  TRY(m->bus.insert(kMmioBase, 0x1000, m->device));
  for (size_t k = 0; k < program.size(); ++k)
    if (!m->memory->write_le<uint32_t>(kRamBase + 4 * k, program[k]))
      return Error::format("program of {} words does not fit", program.size());
  const auto handler = handler_code();
  for (size_t k = 0; k < handler.size(); ++k)
    (void)m->memory->write_le<uint32_t>(kHandler + 4 * k, handler[k]);
  for (uint64_t a = 0; a < 0x2000; a += 8)
    (void)m->memory->write_le<uint64_t>(kData - 0x1000 + a, a * 0x9e3779b97f4a7c15ull);
  m->hart = std::make_unique<Hart>(*m->memory, m->bus, m->timebase, 0);
  Hart& h = *m->hart;
  m->device.pins = &h.pins();
  if (jit) TRY(h.enable_jit(jit_cache, 0));
  h.set_pc(kRamBase);
  (void)h.write_csr(0x305, kHandler);                      // mtvec
  (void)h.write_csr(0x300, (1ull << 13) | (1ull << 3));    // mstatus: FS initial, MIE
  (void)h.write_csr(0x304, 2);                             // mie: SSIE
  for (unsigned r = 1; r < 28; ++r)
    h.set_x(r, small && r % 2 ? static_cast<uint64_t>(static_cast<int64_t>(r % 5) - 2)
                     : (r * 0x123456789abcdefull) ^ (uint64_t{r} << 40));
  h.set_x(20, kData);
  h.set_x(21, 0x1000);                 // no RAM, no device: access faults
  h.set_x(22, kMmioBase);              // the echo device
  h.set_x(24, kRamBase);               // the program itself (self-modifying stores)
  h.set_x(23, kRamBase + kRamSize - 2);  // the last bytes of RAM: crossing out of it
  h.flush_decode_cache();
  return m;
}

// "" when equal, else what differs.
inline std::string compare(const Hart& a, const Hart& b) {
  const HartState s = a.save(), t = b.save();
  std::string out;
  const auto check = [&](const std::string& what, uint64_t x, uint64_t y) {
    if (x != y) out += fmt::format("{}: interpreter {:#x}, jit {:#x}; ", what, x, y);
  };
  check("pc", s.pc, t.pc);
  for (unsigned r = 0; r < 32; ++r) check(fmt::format("x{}", r), s.x[r], t.x[r]);
  for (unsigned r = 0; r < 32; ++r) check(fmt::format("f{}", r), s.f[r], t.f[r]);
  check("priv", s.priv, t.priv);
  check("fflags", s.fflags, t.fflags);
  check("frm", s.frm, t.frm);
  check("instret", s.instret, t.instret);
  check("mstatus", s.mstatus, t.mstatus);
  check("mip", s.mip, t.mip);
  check("mepc", s.mepc, t.mepc);
  check("mcause", s.mcause, t.mcause);
  check("mtval", s.mtval, t.mtval);
  return out;
}

inline std::string compare_memory(const Machine& a, const Machine& b) {
  std::vector<uint8_t> x(kRamSize), y(kRamSize);
  if (!a.memory->read(kRamBase, x) || !b.memory->read(kRamBase, y)) return "RAM unreadable";
  for (size_t k = 0; k < kRamSize; ++k)
    if (x[k] != y[k])
      return fmt::format("RAM at {:#x}: interpreter {:#x}, jit {:#x}", kRamBase + k, x[k], y[k]);
  return "";
}

// Runs both machines in slices of 1..max_slice instructions (chosen by `rng`), raising the
// software interrupt between some slices, until `total` instructions; "" or the first
// difference, with the slice's number.
template <typename Rng>
std::string run_both(Machine& interp, Machine& jit, uint64_t total, Rng& rng,
                     unsigned max_slice = 80) {
  uint64_t done = 0;
  for (unsigned slice = 0; done < total; ++slice) {
    const uint64_t n = 1 + rng() % max_slice;
    if (rng() % 16 == 0) {
      const uint64_t mip = interp.hart->read_csr(0x344).value_or(0) | 2;
      (void)interp.hart->write_csr(0x344, mip);
      (void)jit.hart->write_csr(0x344, mip);
    }
    const StepResult r = interp.hart->step(n);
    const StepResult q = jit.hart->step(n);
    std::string diff = compare(*interp.hart, *jit.hart);
    if (r.executed != q.executed || r.kind != q.kind)
      diff += fmt::format("step result: interpreter {} executed, jit {}; ", r.executed, q.executed);
    if (!diff.empty()) {
      // The code around the interpreter's mepc (where a trap, if any, was).
      const uint64_t mepc = interp.hart->read_csr(0x341).value_or(kRamBase);
      for (uint64_t a = mepc - 8; a <= mepc + 8; a += 4)
        diff += fmt::format("[{:#x}: {}] ", a,
                            disassemble(interp.memory->read_le<uint32_t>(a).value_or(0), a));
      return fmt::format("after slice {} ({} instructions, pc {:#x}): {}", slice, done + n,
                         interp.hart->pc(), diff);
    }
    done += n;
  }
  return compare_memory(interp, jit);
}

// A random program of `length` words: integer ALU, M, loads and stores (RAM, page and RAM
// ends crossing, MMIO, faulting addresses), F/D arithmetic (fflags), CSR reads of
// instret/cycle, mstatus.FS off and on, fld/fsd, forward branches and jumps, counted loops
// (some walking memory across pages),
// ecall/ebreak/illegal words,
// software interrupts, and stores into its own code followed (mostly) by fence.i. Ends in
// a self-loop.
// small: half the immediates in -2..2, to meet the small registers (make_machine()).
template <typename Rng>
std::vector<uint32_t> generate(Rng& rng, size_t length, bool small = false) {
  using namespace enc;
  std::vector<uint32_t> p;
  const auto reg = [&] { return static_cast<uint32_t>(1 + rng() % 19); };  // x1..x19
  const auto imm12 = [&] {
    return small && rng() % 2 ? static_cast<int32_t>(rng() % 5) - 2
                              : static_cast<int32_t>(rng() % 4096) - 2048;
  };
  const auto alu = [&]() -> uint32_t {
    static constexpr uint32_t kRops[][2] = {{0, 0}, {0x20, 0}, {0, 1}, {0, 2}, {0, 3}, {0, 4},
                                            {0, 5}, {0x20, 5}, {0, 6}, {0, 7}, {1, 0}, {1, 1},
                                            {1, 2}, {1, 3}, {1, 4}, {1, 5}, {1, 6}, {1, 7}};
    switch (rng() % 6) {
      case 0: {
        const auto& o = kRops[rng() % std::size(kRops)];
        return r(o[0], reg(), reg(), o[1], reg(), 0x33);
      }
      case 1: {
        const uint32_t f3 = static_cast<uint32_t>(rng() % 8);
        if (f3 == 1) return i(static_cast<int32_t>(rng() % 64), reg(), 1, reg(), 0x13);
        if (f3 == 5)
          return i(static_cast<int32_t>((rng() % 64) | (rng() % 2 ? 0x400 : 0)), reg(), 5, reg(), 0x13);
        return i(imm12(), reg(), f3, reg(), 0x13);
      }
      case 2: {
        static constexpr uint32_t kW[][2] = {{0, 0}, {0x20, 0}, {0, 1}, {0, 5}, {0x20, 5},
                                             {1, 0}, {1, 4}, {1, 5}, {1, 6}, {1, 7}};
        const auto& o = kW[rng() % std::size(kW)];
        return r(o[0], reg(), reg(), o[1], reg(), 0x3b);
      }
      case 3: {
        const uint32_t k = static_cast<uint32_t>(rng() % 3);
        if (k == 0) return i(imm12(), reg(), 0, reg(), 0x1b);  // addiw
        return i(static_cast<int32_t>((rng() % 32) | (k == 2 && rng() % 2 ? 0x400 : 0)), reg(),
                 k == 1 ? 1 : 5, reg(), 0x1b);
      }
      case 4: return (static_cast<uint32_t>(rng()) & 0xfffff000u) | (reg() << 7) | 0x37;  // lui
      default: return (static_cast<uint32_t>(rng()) & 0xfffff000u) | (reg() << 7) | 0x17;  // auipc
    }
  };
  const auto memop = [&]() -> uint32_t {
    // Base: x20 (RAM, mostly), x21 (fault), x22 (MMIO), x23 (end of RAM), x24 (own code).
    static constexpr uint32_t kBases[] = {20, 20, 20, 20, 20, 20, 21, 22, 23};
    const uint32_t base = kBases[rng() % std::size(kBases)];
    const int32_t off = base == 20 ? imm12() : static_cast<int32_t>(rng() % 16) - 8;
    if (rng() % 6 == 0) {  // fld / fsd (f0-f7)
      const auto f = static_cast<uint32_t>(rng() % 8);
      return rng() % 2 ? i(off, base, 3, f, 0x07) : s(off, f, base, 3, 0x27);
    }
    if (rng() % 2) return i(off, base, static_cast<uint32_t>(rng() % 7), reg(), 0x03);
    return s(off, reg(), base, static_cast<uint32_t>(rng() % 4), 0x23);
  };
  while (p.size() + 8 < length) {
    const unsigned kind = static_cast<unsigned>(rng() % 100);
    if (kind < 45) {
      p.push_back(alu());
    } else if (kind < 70) {
      p.push_back(memop());
    } else if (kind < 75) {
      // fmv.d.x or fcvt.d.w(u) f, x; then double arithmetic with a static rounding mode or
      // the dynamic one (rm 7: frm, which the CSR writes below change), fused multiply-add,
      // sign injection, or fmv.x.d back to x.
      const uint32_t fd = static_cast<uint32_t>(rng() % 8), fs = static_cast<uint32_t>(rng() % 8);
      const auto load = [&](uint32_t f) {  // mostly small integers: normal operands
        if (rng() % 4) p.push_back(r(0x69, static_cast<uint32_t>(rng() % 2), reg(), 7, f, 0x53));
        else p.push_back(r(0x79, 0, reg(), 0, f, 0x53));
      };
      load(fs);
      if (rng() % 2) load(fd);
      const auto rm = [&] { return static_cast<uint32_t>(rng() % 3 ? 7 : rng() % 5); };
      switch (rng() % 5) {
        case 0: case 1: {
          static constexpr uint32_t kFops[] = {0x01, 0x05, 0x09, 0x0d};
          p.push_back(r(kFops[rng() % 4], fs, fd, rm(), fd, 0x53));
          break;
        }
        case 2: {  // fmadd.d / fmsub.d / fnmsub.d / fnmadd.d fd, fs, fd, f(rs3)
          static constexpr uint32_t kFma[] = {0x43, 0x47, 0x4b, 0x4f};
          const auto rs3 = static_cast<uint32_t>(rng() % 8);
          if (rng() % 2) load(rs3);
          p.push_back((rs3 << 27) | r(1, fs, fd, rm(), fd, kFma[rng() % 4]));
          break;
        }
        case 3: p.push_back(r(0x11, fs, fd, static_cast<uint32_t>(rng() % 3), fd, 0x53)); break;
        default: p.push_back(r(0x71, 0, fd, 0, reg(), 0x53)); break;  // fmv.x.d
      }
      // csrwi frm; csrwi fflags (which may clear NX: a block's F/D tests then fail)
      if (rng() % 8 == 0) p.push_back(csr(5, 0, 0x002, static_cast<uint32_t>(rng() % 8)));
      if (rng() % 8 == 0) p.push_back(csr(5, 0, 0x001, static_cast<uint32_t>(rng() % 32)));
    } else if (kind < 78) {
      static constexpr uint32_t kCsrs[] = {0xb00, 0xb02, 0xc00, 0xc02, 0x001, 0x003};
      if (rng() % 4 == 0) {
        // mstatus.FS off (F/D instructions become illegal) or back on.
        p.push_back((6u << 12) | (26u << 7) | 0x37);                          // lui x26, 6
        p.push_back(csr(rng() % 3 ? 2 : 3, 0, 0x300, 26));                    // csrs/csrc mstatus
      } else {
        p.push_back(csr(2, reg(), kCsrs[rng() % std::size(kCsrs)], 0));
      }
    } else if (kind < 86) {
      // A forward branch or jump over 1..6 words.
      const auto skip = static_cast<int32_t>(4 * (1 + rng() % 6));
      if (rng() % 4 == 0) p.push_back(j(skip, rng() % 2 ? 1 : 0));
      else p.push_back(b(skip, reg(), reg(), static_cast<uint32_t>(std::array{0, 1, 4, 5, 6, 7}[rng() % 6])));
    } else if (kind < 90 && rng() % 2) {
      // A counted loop (x25) walking a register by a stride (half the time a power of two),
      // either way, from near a page boundary of RAM (x20), the end of RAM (x23) or MMIO
      // (x22), with loads and stores off it (the translator's hoisted page checks: Hoist).
      // The body's other instructions may write the walker too.
      const uint32_t w = reg();
      const uint32_t from = std::array{20u, 20u, 20u, 22u, 23u}[rng() % 5];
      const auto step = rng() % 2 ? 1 << (rng() % 11) : 1 + rng() % 2047;
      const auto stride = static_cast<int32_t>((rng() % 2 ? 1 : -1) * static_cast<int32_t>(step));
      p.push_back(i(static_cast<int32_t>(rng() % 128) - 64, from, 0, w, 0x13));  // addi w
      p.push_back(i(static_cast<int32_t>(1 + rng() % 40), 0, 0, 25, 0x13));
      const unsigned body = static_cast<unsigned>(1 + rng() % 4);
      const unsigned step_at = static_cast<unsigned>(rng() % (body + 1));
      unsigned words = 0;
      for (unsigned k = 0; k <= body; ++k, ++words) {
        if (k == step_at) {
          p.push_back(i(stride, w, 0, w, 0x13));  // addi w, w, stride
          continue;
        }
        const auto off = static_cast<int32_t>(rng() % 16) - 8;
        switch (rng() % 6) {
          case 0: p.push_back(alu()); break;
          case 1: p.push_back(rng() % 2 ? i(off, w, 3, static_cast<uint32_t>(rng() % 8), 0x07)
                                        : s(off, static_cast<uint32_t>(rng() % 8), w, 3, 0x27));
                  break;
          case 2: case 3: p.push_back(i(off, w, static_cast<uint32_t>(rng() % 7), reg(), 0x03)); break;
          default: p.push_back(s(off, reg(), w, static_cast<uint32_t>(rng() % 4), 0x23)); break;
        }
      }
      p.push_back(i(-1, 25, 0, 25, 0x13));
      p.push_back(b(-static_cast<int32_t>(4 * (words + 1)), 0, 25, 1));  // bne x25, x0
    } else if (kind < 90) {
      // A counted loop (x25) over a few ALU and memory instructions.
      const unsigned body = static_cast<unsigned>(1 + rng() % 5);
      p.push_back(i(static_cast<int32_t>(1 + rng() % 12), 0, 0, 25, 0x13));
      for (unsigned k = 0; k < body; ++k) p.push_back(rng() % 3 ? alu() : memop());
      p.push_back(i(-1, 25, 0, 25, 0x13));
      p.push_back(b(-static_cast<int32_t>(4 * (body + 1)), 0, 25, 1));  // bne x25, x0
    } else if (kind < 93) {
      static const uint32_t kTraps[] = {kEcall, kEbreak, 0, 0xffffffff, csr(1, 0, 0x7c0, 0)};
      p.push_back(kTraps[rng() % std::size(kTraps)]);
    } else if (kind < 95) {
      p.push_back(i(2, 0, 0, 26, 0x13));     // addi x26, zero, 2
      p.push_back(csr(2, 0, 0x344, 26));     // csrs mip, x26: a software interrupt
    } else if (kind < 98) {
      // Overwrite a word ahead with a new ALU instruction, then usually fence.i.
      const uint32_t word = alu();
      const auto target = static_cast<int32_t>(4 * (p.size() + 4 + rng() % 16));
      const uint32_t lo = word & 0xfff, hi = ((word >> 12) + ((lo & 0x800) ? 1 : 0)) & 0xfffff;
      p.push_back((hi << 12) | (27u << 7) | 0x37);                  // lui x27, hi
      p.push_back(i(static_cast<int32_t>(lo), 27, 0, 27, 0x1b));    // addiw x27, x27, lo
      if (target < 2048) p.push_back(s(target, 27, 24, 2, 0x23));   // sw x27, target(x24)
      if (rng() % 4) p.push_back(kFenceI);
    } else {
      p.push_back(static_cast<uint32_t>(rng()));  // anything
    }
  }
  p.push_back(j(0, 0));  // the end: a self-loop
  return p;
}

}  // namespace doppel::rv64::jitdiff
