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
  Handler handler;
};

// A decoded instruction as the interpreter executes it. rd == 32 means "x0" for an
// instruction that writes an x register (the write lands in a sink).
struct DecodedInsn {
  Handler handler;
  int64_t imm;
  uint32_t raw;      // the 32-bit instruction (compressed ones: their expansion)
  uint16_t spec;     // index into all_specs(), for the disassembler
  uint8_t rd, rs1, rs2, rs3;
  uint8_t len;       // 2 or 4
  uint8_t rm;        // funct3 (rounding mode of F/D instructions)
  uint16_t raw16;    // the original 16-bit encoding of a compressed instruction
};

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
