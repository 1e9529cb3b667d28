// Shorthand for the instruction tables (insn_*.cpp only). Each INSN(...) line is the one
// declaration of an instruction: mask, match, name, format, f-register operands, whether it
// ends a block, and its semantics as the body of a Handler.
#pragma once

#include <cstdint>

#include "base/bits.h"
#include "engines/emu/riscv64/decode.h"
#include "engines/emu/riscv64/hart.h"

// The body becomes both the plain handler and its threaded form (decode.h make_spec); the
// parentheses keep a `>` in the body from ending the template argument list. `d` is a
// DecodedInsn or a SlowPathInsn (decode.h): pass it on as it is to Hart::load()/store().
#define INSN(name_, mask_, match_, fmt_, fregs_, ends_, ...)                                  \
  ::doppel::rv64::make_spec<mask_, match_,                                                  \
                            ([](::doppel::rv64::Hart & h, const auto& d)                  \
                                 __attribute__((always_inline)) -> bool {                   \
                              (void)h;                                                      \
                              (void)d;                                                      \
                              __VA_ARGS__                                                   \
                            })>(name_, ::doppel::rv64::Format::fmt_, fregs_, ends_)

#define RD h.xr(d.rd)
#define RS1 h.xr(d.rs1)
#define RS2 h.xr(d.rs2)
#define IMM d.imm
#define SIMM static_cast<uint64_t>(d.imm)

namespace doppel::rv64 {

// Common masks.
constexpr uint32_t kMaskOpcode = 0x0000007f;
constexpr uint32_t kMaskF3 = 0x0000707f;           // opcode + funct3
constexpr uint32_t kMaskF7 = 0xfe00707f;           // opcode + funct3 + funct7
constexpr uint32_t kMaskShift64 = 0xfc00707f;      // RV64 shifts: funct6
constexpr uint32_t kMaskAmo = 0xf800707f;          // funct5 + funct3 (aq/rl free)
constexpr uint32_t kMaskFpR = 0xfe00007f;          // funct7 + opcode, rm free
constexpr uint32_t kMaskFpR1 = 0xfff0007f;         // funct7 + rs2 + opcode, rm free
constexpr uint32_t kMaskFpR4 = 0x0600007f;         // fmt + opcode

inline int64_t sx32(uint64_t v) { return static_cast<int64_t>(static_cast<int32_t>(v)); }
inline uint64_t ux32(uint64_t v) { return static_cast<uint64_t>(sx32(v)); }

}  // namespace doppel::rv64
