// Decode once (STYLE.md rule 8): every instruction is declared exactly once, in a table in
// its extension's file (insn_rv64i.cpp, insn_rv64m.cpp, ...), as mask/match, name, operand
// format and handler. The interpreter, the disassembler and the future JIT all use these
// tables through decode() and disassemble().
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "engines/emu/riscv64/hart.h"

namespace doppel::rv64 {

// Operand formats: how the immediate is extracted and how the disassembler prints.
enum class Format : uint8_t {
  kNone,     // no operands (ecall, mret, fence.i, ...)
  kR,        // rd, rs1, rs2
  kR1,       // rd, rs1           (fsqrt, fcvt, fmv, fclass)
  kR4,       // rd, rs1, rs2, rs3 (fused multiply-add)
  kI,        // rd, rs1, imm
  kShift,    // rd, rs1, shamt
  kLoad,     // rd, imm(rs1)
  kStore,    // rs2, imm(rs1)
  kBranch,   // rs1, rs2, pc+imm
  kU,        // rd, imm<<12
  kJ,        // rd, pc+imm
  kJalr,     // rd, imm(rs1)
  kCsr,      // rd, csr, rs1
  kCsrI,     // rd, csr, uimm
  kAmo,      // rd, rs2, (rs1)
  kLr,       // rd, (rs1)
  kFence,    // pred, succ
  kSfence,   // rs1, rs2
};

// Which operands name f registers (the rest are x registers).
constexpr uint8_t kRdF = 1, kRs1F = 2, kRs2F = 4, kRs3F = 8;

struct InsnSpec {
  uint32_t mask;
  uint32_t match;
  const char* name;
  Format format;
  uint8_t fregs;      // kRdF | kRs1F | ...
  bool ends_block;    // jumps and system instructions end a decoded block
  Handler handler;    // the semantics alone (see Handler)
  Handler exec;       // the threaded form the interpreter runs (see threaded() below)
};

// A decoded instruction as the interpreter executes it. rd == 32 means "x0" for an
// instruction that writes an x register (the write lands in a sink). Blocks are arrays of
// these ending in a block_end() entry, so `this + 1` is always the next thing to run.
struct DecodedInsn {
  Handler handler;   // the spec's exec: threaded, runs the rest of the block too
  int64_t imm;
  uint32_t raw;      // the 32-bit instruction (compressed ones: their expansion)
  uint16_t spec;     // index into all_specs(), for the disassembler
  uint16_t pc_off;   // byte offset from the first instruction of its block
  uint8_t rd, rs1, rs2;
  // rs3 of R4 instructions. Branches have no rs3: for them it is kInBlock + the distance,
  // in entries, to the instruction they branch to when that is in the same block (set by
  // the block decoder; blocks hold at most 64 instructions), else 0.
  static constexpr int kInBlock = 64;
  uint8_t rs3;
  uint8_t len;       // 2 or 4
  uint8_t rm;        // funct3 (rounding mode of F/D instructions)
  uint16_t raw16;    // the original 16-bit encoding of a compressed instruction
};
static_assert(sizeof(DecodedInsn) == 32, "two decoded instructions per cache line");

// The same instruction, run where its memory accesses may take their slow path (a TLB
// miss, a page crossing, MMIO, a fault): Hart::load() and store() overload on it.
// Instruction bodies take their DecodedInsn as `const auto&` and pass it on as it is.
struct SlowPathInsn : DecodedInsn {
  explicit SlowPathInsn(const DecodedInsn& d) : DecodedInsn(d) {}
};

inline uint64_t Hart::insn_pc(const DecodedInsn& d) const { return m_block_pc + d.pc_off; }
inline void Hart::enter(const DecodedInsn& d) { m_pc = insn_pc(d); }

// Threaded execution: an instruction's exec runs its semantics and, if they completed
// (returned true), jumps straight to the next entry's exec, which the compiler turns into a
// tail jump; the block's final block_end() entry sets pc past the block. When the semantics
// return false (a jump, a trap, an instruction that ends the block), or at block_end(),
// Hart::leave() continues with the next block or returns to the run loop. Blocks hold at
// most 64 instructions and leave() chains a bounded number of blocks, so the recursion is
// bounded even where the compiler makes real calls (unoptimized builds).
//
// Which instructions set pc to their own address on entry (traps read it as mepc, auipc
// and jumps as their base). Not: pure integer instructions (OP, OP-IMM, OP-32, OP-IMM-32,
// LUI), which neither read pc nor trap; conditional branches, which cannot trap and compute
// a taken target from Hart::insn_pc(); loads and stores (LOAD, STORE, LOAD-FP, STORE-FP),
// whose slow path sets pc before anything that can trap, and whose illegal-instruction
// exception (FS off) leave() raises after setting it.
constexpr bool needs_pc(uint32_t match) {
  switch (match & 0x7f) {
    case 0x13: case 0x1b: case 0x33: case 0x3b: case 0x37:  // integer
    case 0x63:                                              // branches
    case 0x03: case 0x23: case 0x07: case 0x27:             // loads and stores
      return false;
    default:
      return true;
  }
}

// A taken branch to an instruction of its own block (DecodedInsn::rs3) goes straight there.
// Forward, nothing can loop, so only the skipped instructions come off m_instret (which
// then still tells, by index, what retired). Back, it is a loop: the instructions run
// again count, and the interrupt and budget checks of a block transition apply; if they
// fail, leave() takes it as an ordinary jump.
inline bool Hart::branch_in_block(const DecodedInsn& d) {
  const int distance = d.rs3 - DecodedInsn::kInBlock;
  const DecodedInsn& target = (&d)[distance];
  if (distance > 0) {
    m_instret -= static_cast<uint64_t>(distance - 1);
    return target.handler(*this, target);
  }
  const auto again = static_cast<uint64_t>(1 - distance);
  if (m_instret + again >= m_instret_limit || ((m_pins.raw() & m_irq_pin_mask) | m_irq_soft) != 0)
    return leave(d, false);
  m_instret += again;
  return target.handler(*this, target);
}

constexpr bool is_branch(uint32_t match) { return (match & 0x7f) == 0x63; }
constexpr bool is_load_store(uint32_t match) {
  const uint32_t op = match & 0x7f;
  return op == 0x03 || op == 0x23 || op == 0x07 || op == 0x27;
}

[[gnu::always_inline]] inline bool run_next(Hart& h, const DecodedInsn& d) {
  const DecodedInsn* next = &d + 1;
  // An opaque `next` makes GCC step the argument register and jump through memory
  // (add; jmp *(reg)) instead of computing the pointer and loading the handler separately
  // (lea; mov; mov; jmp *reg): two instructions fewer on every instruction.
  asm("" : "+r"(next));
  return next->handler(h, *next);
}

// A load or store whose access missed the TLB runs again here, out of line, with its slow
// path allowed (SlowPathInsn). Its first run changed nothing: bodies write their results
// only after the access.
template <auto kBody>
[[gnu::noinline]] bool run_slow_path(Hart& h, const DecodedInsn& d) {
  const SlowPathInsn slow(d);
  if (!kBody(h, slow)) return h.leave(d, false);
  return run_next(h, d);
}

template <auto kBody, bool kNeedsPc, bool kBranch, bool kLoadStore>
bool threaded(Hart& h, const DecodedInsn& d) {
  if constexpr (kNeedsPc) h.enter(d);
  if (!kBody(h, d)) [[unlikely]] {
    if constexpr (kBranch) {
      if (d.rs3 != 0) return h.branch_in_block(d);
    }
    if constexpr (kLoadStore) {
      if (h.take_slow_mem()) return run_slow_path<kBody>(h, d);
    }
    return h.leave(d, false);
  }
  return run_next(h, d);
}

// The semantics alone, as InsnSpec::handler: memory accesses may take their slow path.
template <auto kBody>
bool semantics(Hart& h, const DecodedInsn& d) {
  return kBody(h, SlowPathInsn(d));
}

template <uint32_t kMask, uint32_t kMatch, auto kBody>
constexpr InsnSpec make_spec(const char* name, Format format, uint8_t fregs, bool ends_block) {
  return InsnSpec{kMask,
                  kMatch,
                  name,
                  format,
                  fregs,
                  ends_block,
                  &semantics<kBody>,
                  &threaded<kBody, needs_pc(kMatch), is_branch(kMatch), is_load_store(kMatch)>};
}

// The entry that ends every decoded block: pc moves to the instruction after the block.
DecodedInsn block_end(uint16_t pc_off);

// The per-extension tables, concatenated (defined in the insn_*.cpp files).
std::span<const InsnSpec> rv64i_specs();
std::span<const InsnSpec> rv64m_specs();
std::span<const InsnSpec> rv64a_specs();
std::span<const InsnSpec> rv64fd_specs();
std::span<const InsnSpec> system_specs();  // Zicsr, Zifencei, privileged
const InsnSpec& spec_at(uint16_t index);

// Expands a 16-bit RVC instruction to its 32-bit equivalent; 0 if it is reserved/illegal.
uint32_t expand_compressed(uint16_t c);

// Decodes one instruction (16-bit forms are given in the low half with len 2). Unknown
// encodings decode to a handler that raises an illegal-instruction exception.
DecodedInsn decode(uint32_t raw);
bool ends_block(const DecodedInsn& d);

// "addi a0, a0, 1", "c.addi" forms print as their expansion. pc resolves branch targets.
std::string disassemble(const DecodedInsn& d, uint64_t pc);
std::string disassemble(uint32_t raw, uint64_t pc);

// x register ABI names.
const char* xreg_name(unsigned i);

}  // namespace doppel::rv64
