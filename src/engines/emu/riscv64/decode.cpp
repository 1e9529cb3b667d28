// The decoder and disassembler, both driven by the per-extension tables.
#include "engines/emu/riscv64/decode.h"

#include <algorithm>
#include <array>
#include <bit>
#include <vector>

#include <fmt/format.h>

#include "base/bits.h"

namespace doppel::rv64 {
namespace {

constexpr uint16_t kIllegalSpec = 0xffff;

struct Tables {
  std::vector<InsnSpec> all;
  std::array<std::vector<uint16_t>, 32> by_opcode;  // bits [6:2] -> candidates

  Tables() {
    for (auto span : {rv64i_specs(), rv64m_specs(), rv64a_specs(), rv64fd_specs(), system_specs()})
      all.insert(all.end(), span.begin(), span.end());
    for (size_t i = 0; i < all.size(); ++i) {
      const uint32_t op = all[i].match & 0x7f;
      by_opcode[(op >> 2) & 31].push_back(static_cast<uint16_t>(i));
    }
    // Most specific mask first, so that e.g. ecall wins over a looser form.
    for (auto& bucket : by_opcode)
      std::stable_sort(bucket.begin(), bucket.end(), [&](uint16_t a, uint16_t b) {
        return std::popcount(all[a].mask) > std::popcount(all[b].mask);
      });
  }
};

const Tables& tables() {
  static const Tables t;
  return t;
}

bool illegal_body(Hart& h, const DecodedInsn& d) { return h.illegal(d); }
constexpr Handler kIllegalExec = &threaded<illegal_body, true, false, false>;

bool block_end_exec(Hart& h, const DecodedInsn& d) {
  h.enter(d);
  return h.leave(d, true);
}

bool writes_xrd(const InsnSpec& s) {
  if (s.fregs & kRdF) return false;
  switch (s.format) {
    case Format::kNone:
    case Format::kStore:
    case Format::kBranch:
    case Format::kFence:
    case Format::kSfence:
      return false;
    default:
      return true;
  }
}

int64_t immediate(Format f, uint32_t r) {
  switch (f) {
    case Format::kI:
    case Format::kLoad:
    case Format::kJalr:
      return sign_extend(bits(r, 31, 20), 12);
    case Format::kShift:
      return static_cast<int64_t>(bits(r, 25, 20));
    case Format::kStore:
      return sign_extend((bits(r, 31, 25) << 5) | bits(r, 11, 7), 12);
    case Format::kBranch:
      return sign_extend((bit(r, 31) << 12) | (bit(r, 7) << 11) | (bits(r, 30, 25) << 5) |
                             (bits(r, 11, 8) << 1),
                         13);
    case Format::kU:
      return sign_extend(r & 0xfffff000u, 32);
    case Format::kJ:
      return sign_extend((bit(r, 31) << 20) | (bits(r, 19, 12) << 12) | (bit(r, 20) << 11) |
                             (bits(r, 30, 21) << 1),
                         21);
    case Format::kCsr:
    case Format::kCsrI:
      return static_cast<int64_t>(bits(r, 31, 20));
    case Format::kFence:
      return static_cast<int64_t>(bits(r, 27, 20));
    default:
      return 0;
  }
}

}  // namespace

const InsnSpec& spec_at(uint16_t index) { return tables().all.at(index); }

DecodedInsn decode(uint32_t raw) {
  DecodedInsn d{};
  d.len = 4;
  if ((raw & 3) != 3) {
    d.len = 2;
    d.raw16 = static_cast<uint16_t>(raw);
    raw = expand_compressed(static_cast<uint16_t>(raw));
  }
  d.raw = raw;
  d.handler = kIllegalExec;
  d.spec = kIllegalSpec;
  if (raw == 0 || (raw & 3) != 3) return d;

  const Tables& t = tables();
  for (uint16_t idx : t.by_opcode[(raw >> 2) & 31]) {
    const InsnSpec& s = t.all[idx];
    if ((raw & s.mask) != s.match) continue;
    d.handler = s.exec;
    d.spec = idx;
    d.rd = static_cast<uint8_t>(bits(raw, 11, 7));
    d.rs1 = static_cast<uint8_t>(bits(raw, 19, 15));
    d.rs2 = static_cast<uint8_t>(bits(raw, 24, 20));
    d.rs3 = s.format == Format::kBranch ? 0 : static_cast<uint8_t>(bits(raw, 31, 27));
    d.rm = static_cast<uint8_t>(bits(raw, 14, 12));
    d.imm = immediate(s.format, raw);
    if (d.rd == 0 && writes_xrd(s)) d.rd = 32;
    return d;
  }
  return d;
}

DecodedInsn block_end(uint16_t pc_off) {
  DecodedInsn d{};
  d.handler = block_end_exec;
  d.spec = kIllegalSpec;
  d.pc_off = pc_off;
  return d;
}

bool ends_block(const DecodedInsn& d) {
  return d.spec == kIllegalSpec || spec_at(d.spec).ends_block;
}

const char* xreg_name(unsigned i) {
  static constexpr const char* kNames[33] = {
      "zero", "ra", "sp", "gp", "tp", "t0", "t1", "t2", "s0", "s1", "a0",
      "a1",   "a2", "a3", "a4", "a5", "a6", "a7", "s2", "s3", "s4", "s5",
      "s6",   "s7", "s8", "s9", "s10", "s11", "t3", "t4", "t5", "t6", "zero"};
  return kNames[i > 32 ? 0 : i];
}

namespace {

std::string freg_name(unsigned i) { return fmt::format("f{}", i & 31); }

std::string csr_name(uint64_t csr) {
  switch (csr) {
    case 0x001: return "fflags";
    case 0x002: return "frm";
    case 0x003: return "fcsr";
    case 0x100: return "sstatus";
    case 0x104: return "sie";
    case 0x105: return "stvec";
    case 0x106: return "scounteren";
    case 0x140: return "sscratch";
    case 0x141: return "sepc";
    case 0x142: return "scause";
    case 0x143: return "stval";
    case 0x144: return "sip";
    case 0x180: return "satp";
    case 0x300: return "mstatus";
    case 0x301: return "misa";
    case 0x302: return "medeleg";
    case 0x303: return "mideleg";
    case 0x304: return "mie";
    case 0x305: return "mtvec";
    case 0x306: return "mcounteren";
    case 0x340: return "mscratch";
    case 0x341: return "mepc";
    case 0x342: return "mcause";
    case 0x343: return "mtval";
    case 0x344: return "mip";
    case 0xc00: return "cycle";
    case 0xc01: return "time";
    case 0xc02: return "instret";
    case 0xf14: return "mhartid";
    default: return fmt::format("{:#x}", csr);
  }
}

}  // namespace

std::string disassemble(const DecodedInsn& d, uint64_t pc) {
  if (d.spec == kIllegalSpec)
    return d.len == 2 ? fmt::format("illegal {:#06x}", d.raw16) : fmt::format("illegal {:#010x}", d.raw);
  const InsnSpec& s = spec_at(d.spec);
  const auto reg = [&](unsigned r, uint8_t fflag) -> std::string {
    return (s.fregs & fflag) ? freg_name(r) : std::string(xreg_name(r));
  };
  const std::string rd = reg(d.rd, kRdF), rs1 = reg(d.rs1, kRs1F), rs2 = reg(d.rs2, kRs2F);
  const std::string prefix = d.len == 2 ? "c:" : "";
  const std::string name = prefix + s.name;
  switch (s.format) {
    case Format::kNone: return name;
    case Format::kR: return fmt::format("{} {}, {}, {}", name, rd, rs1, rs2);
    case Format::kR1: return fmt::format("{} {}, {}", name, rd, rs1);
    case Format::kR4:
      return fmt::format("{} {}, {}, {}, {}", name, rd, rs1, rs2, reg(d.rs3, kRs3F));
    case Format::kI:
    case Format::kShift: return fmt::format("{} {}, {}, {}", name, rd, rs1, d.imm);
    case Format::kLoad:
    case Format::kJalr: return fmt::format("{} {}, {}({})", name, rd, d.imm, rs1);
    case Format::kStore: return fmt::format("{} {}, {}({})", name, rs2, d.imm, rs1);
    case Format::kBranch:
      return fmt::format("{} {}, {}, {:#x}", name, rs1, rs2, pc + static_cast<uint64_t>(d.imm));
    case Format::kU:
      return fmt::format("{} {}, {:#x}", name, rd, static_cast<uint64_t>(d.imm >> 12) & 0xfffff);
    case Format::kJ: return fmt::format("{} {}, {:#x}", name, rd, pc + static_cast<uint64_t>(d.imm));
    case Format::kCsr:
      return fmt::format("{} {}, {}, {}", name, rd, csr_name(static_cast<uint64_t>(d.imm)), rs1);
    case Format::kCsrI:
      return fmt::format("{} {}, {}, {}", name, rd, csr_name(static_cast<uint64_t>(d.imm)), d.rs1);
    case Format::kAmo: return fmt::format("{} {}, {}, ({})", name, rd, rs2, rs1);
    case Format::kLr: return fmt::format("{} {}, ({})", name, rd, rs1);
    case Format::kFence: return fmt::format("{} {:#x}, {:#x}", name, (d.imm >> 4) & 15, d.imm & 15);
    case Format::kSfence: return fmt::format("{} {}, {}", name, rs1, rs2);
  }
  return name;
}

std::string disassemble(uint32_t raw, uint64_t pc) { return disassemble(decode(raw), pc); }

}  // namespace doppel::rv64
