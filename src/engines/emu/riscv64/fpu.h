// IEEE 754 binary32/binary64 arithmetic exactly as the RISC-V F and D extensions specify
// (unprivileged spec chapters 11-12): every rounding mode, the five fflags, canonical NaNs,
// NaN-boxing is the caller's business (these functions see raw 32/64-bit patterns).
//
// Pure functions, thread-safe. `rm` is an already-resolved rounding mode (never DYN).
// Each function ORs the exception flags it raises into `flags`.
#pragma once

#include <cstdint>

namespace doppel::rv64::fpu {

enum class Rounding : uint8_t { kRNE = 0, kRTZ = 1, kRDN = 2, kRUP = 3, kRMM = 4 };

// fflags bits (fcsr[4:0]).
constexpr uint8_t kNX = 1;   // inexact
constexpr uint8_t kUF = 2;   // underflow
constexpr uint8_t kOF = 4;   // overflow
constexpr uint8_t kDZ = 8;   // divide by zero
constexpr uint8_t kNV = 16;  // invalid

constexpr uint32_t kCanonicalNaN32 = 0x7fc00000u;
constexpr uint64_t kCanonicalNaN64 = 0x7ff8000000000000ull;

// ---- binary32 ----
uint32_t f32_add(uint32_t a, uint32_t b, Rounding rm, uint8_t& flags);
uint32_t f32_sub(uint32_t a, uint32_t b, Rounding rm, uint8_t& flags);
uint32_t f32_mul(uint32_t a, uint32_t b, Rounding rm, uint8_t& flags);
uint32_t f32_div(uint32_t a, uint32_t b, Rounding rm, uint8_t& flags);
uint32_t f32_sqrt(uint32_t a, Rounding rm, uint8_t& flags);
// a*b+c with a single rounding. The four RISC-V forms are built by flipping signs:
// fmadd = fma(a,b,c), fmsub = fma(a,b,-c), fnmsub = fma(-a,b,c), fnmadd = fma(-a,b,-c).
// Sign flips of NaN operands must not change which NaN is returned (it is canonical anyway).
uint32_t f32_fma(uint32_t a, uint32_t b, uint32_t c, Rounding rm, uint8_t& flags);
uint32_t f32_min(uint32_t a, uint32_t b, uint8_t& flags);  // fmin.s (spec 2.2 semantics)
uint32_t f32_max(uint32_t a, uint32_t b, uint8_t& flags);
bool f32_eq(uint32_t a, uint32_t b, uint8_t& flags);  // quiet: NV only on sNaN
bool f32_lt(uint32_t a, uint32_t b, uint8_t& flags);  // signaling: NV on any NaN
bool f32_le(uint32_t a, uint32_t b, uint8_t& flags);
uint32_t f32_classify(uint32_t a);  // fclass.s: one-hot 10-bit mask
// Conversions to integers saturate as the spec's table says (NaN -> max positive) and set NV.
int32_t f32_to_i32(uint32_t a, Rounding rm, uint8_t& flags);
uint32_t f32_to_u32(uint32_t a, Rounding rm, uint8_t& flags);
int64_t f32_to_i64(uint32_t a, Rounding rm, uint8_t& flags);
uint64_t f32_to_u64(uint32_t a, Rounding rm, uint8_t& flags);
uint32_t i32_to_f32(int32_t a, Rounding rm, uint8_t& flags);
uint32_t u32_to_f32(uint32_t a, Rounding rm, uint8_t& flags);
uint32_t i64_to_f32(int64_t a, Rounding rm, uint8_t& flags);
uint32_t u64_to_f32(uint64_t a, Rounding rm, uint8_t& flags);

// ---- binary64 ----
uint64_t f64_add(uint64_t a, uint64_t b, Rounding rm, uint8_t& flags);
uint64_t f64_sub(uint64_t a, uint64_t b, Rounding rm, uint8_t& flags);
uint64_t f64_mul(uint64_t a, uint64_t b, Rounding rm, uint8_t& flags);
uint64_t f64_div(uint64_t a, uint64_t b, Rounding rm, uint8_t& flags);
uint64_t f64_sqrt(uint64_t a, Rounding rm, uint8_t& flags);
uint64_t f64_fma(uint64_t a, uint64_t b, uint64_t c, Rounding rm, uint8_t& flags);
uint64_t f64_min(uint64_t a, uint64_t b, uint8_t& flags);
uint64_t f64_max(uint64_t a, uint64_t b, uint8_t& flags);
bool f64_eq(uint64_t a, uint64_t b, uint8_t& flags);
bool f64_lt(uint64_t a, uint64_t b, uint8_t& flags);
bool f64_le(uint64_t a, uint64_t b, uint8_t& flags);
uint32_t f64_classify(uint64_t a);
int32_t f64_to_i32(uint64_t a, Rounding rm, uint8_t& flags);
uint32_t f64_to_u32(uint64_t a, Rounding rm, uint8_t& flags);
int64_t f64_to_i64(uint64_t a, Rounding rm, uint8_t& flags);
uint64_t f64_to_u64(uint64_t a, Rounding rm, uint8_t& flags);
uint64_t i32_to_f64(int32_t a, Rounding rm, uint8_t& flags);
uint64_t u32_to_f64(uint32_t a, Rounding rm, uint8_t& flags);
uint64_t i64_to_f64(int64_t a, Rounding rm, uint8_t& flags);
uint64_t u64_to_f64(uint64_t a, Rounding rm, uint8_t& flags);

// ---- between formats ----
uint64_t f32_to_f64(uint32_t a, uint8_t& flags);               // exact; sNaN -> NV
uint32_t f64_to_f32(uint64_t a, Rounding rm, uint8_t& flags);

// Sign injection needs no helper (bit operations), nor do moves.

}  // namespace doppel::rv64::fpu
