// Tests of the RISC-V F/D arithmetic in fpu.cpp.
//
// Directed cases walk through the spec's corner cases; randomized cases compare every
// operation in all five rounding modes against a reference: the host's SSE unit for
// RNE/RTZ/RDN/RUP (x86-64 implements those exactly, with the same tininess-after-rounding
// rule as RISC-V, read through MXCSR), and for RMM the RNE result corrected at exact
// halfway points, which are found with exact __float128 arithmetic.
#include "engines/emu/riscv64/fpu.h"

#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <random>
#include <string>
#include <type_traits>

#include "engines/emu/riscv64/fpu_host.h"
#include "engines/emu/riscv64/fpu_soft.h"

namespace doppel::rv64::fpu {
namespace {

constexpr Rounding kRNE = Rounding::kRNE;
constexpr Rounding kRTZ = Rounding::kRTZ;
constexpr Rounding kRDN = Rounding::kRDN;
constexpr Rounding kRUP = Rounding::kRUP;
constexpr Rounding kRMM = Rounding::kRMM;
constexpr Rounding kAllModes[5] = {kRNE, kRTZ, kRDN, kRUP, kRMM};

uint32_t b32(float f) { return std::bit_cast<uint32_t>(f); }
uint64_t b64(double d) { return std::bit_cast<uint64_t>(d); }
float f32(uint32_t b) { return std::bit_cast<float>(b); }
double f64(uint64_t b) { return std::bit_cast<double>(b); }

constexpr uint32_t kPosInf32 = 0x7f800000u;
constexpr uint32_t kNegInf32 = 0xff800000u;
constexpr uint32_t kSNaN32 = 0x7f800001u;
constexpr uint32_t kQNaN32Payload = 0x7fc12345u;
constexpr uint32_t kMaxFinite32 = 0x7f7fffffu;
constexpr uint32_t kMinNormal32 = 0x00800000u;
constexpr uint32_t kMinSub32 = 0x00000001u;
constexpr uint32_t kNegZero32 = 0x80000000u;
constexpr uint64_t kPosInf64 = 0x7ff0000000000000ull;
constexpr uint64_t kNegInf64 = 0xfff0000000000000ull;
constexpr uint64_t kSNaN64 = 0x7ff0000000000001ull;
constexpr uint64_t kMaxFinite64 = 0x7fefffffffffffffull;
constexpr uint64_t kMinNormal64 = 0x0010000000000000ull;
constexpr uint64_t kMinSub64 = 0x0000000000000001ull;
constexpr uint64_t kNegZero64 = 0x8000000000000000ull;

// ---------------------------------------------------------------------------------------
// Directed cases
// ---------------------------------------------------------------------------------------

TEST(Fpu, AddRoundsHalfwayToEvenInRneAndAwayInRmm) {
  // 1 + 2^-24 is exactly halfway between 1 and 1 + 2^-23.
  const uint32_t one = b32(1.0f);
  const uint32_t half_ulp = b32(std::ldexp(1.0f, -24));
  uint8_t fl = 0;
  EXPECT_EQ(f32_add(one, half_ulp, kRNE, fl), one);
  EXPECT_EQ(fl, kNX);
  fl = 0;
  EXPECT_EQ(f32_add(one, half_ulp, kRMM, fl), one + 1);
  EXPECT_EQ(fl, kNX);
  // Negative side: RMM goes away from zero, i.e. more negative.
  fl = 0;
  EXPECT_EQ(f32_add(one | 0x80000000u, half_ulp | 0x80000000u, kRMM, fl), (one + 1) | 0x80000000u);
  // (1 + 2^-23) + 2^-24 is halfway with an odd lower neighbour: RNE and RMM both go up.
  fl = 0;
  EXPECT_EQ(f32_add(one + 1, half_ulp, kRNE, fl), one + 2);
  EXPECT_EQ(f32_add(one + 1, half_ulp, kRMM, fl), one + 2);
  // Same for binary64.
  const uint64_t one64 = b64(1.0);
  const uint64_t half_ulp64 = b64(std::ldexp(1.0, -53));
  fl = 0;
  EXPECT_EQ(f64_add(one64, half_ulp64, kRNE, fl), one64);
  EXPECT_EQ(f64_add(one64, half_ulp64, kRMM, fl), one64 + 1);
  EXPECT_EQ(f64_add(one64, half_ulp64, kRTZ, fl), one64);
  EXPECT_EQ(f64_add(one64, half_ulp64, kRDN, fl), one64);
  EXPECT_EQ(f64_add(one64, half_ulp64, kRUP, fl), one64 + 1);
  EXPECT_EQ(fl, kNX);
}

TEST(Fpu, ExactZeroSumIsPositiveExceptRoundDown) {
  const uint32_t x = b32(1.5f);
  for (Rounding rm : kAllModes) {
    uint8_t fl = 0;
    const uint32_t want = rm == kRDN ? kNegZero32 : 0u;
    EXPECT_EQ(f32_sub(x, x, rm, fl), want) << int(rm);
    EXPECT_EQ(f64_sub(b64(-3.25), b64(-3.25), rm, fl), rm == kRDN ? kNegZero64 : 0u);
    // -0 + -0 = -0 and +0 + +0 = +0 in every mode; +0 + -0 is +0 except in RDN.
    EXPECT_EQ(f32_add(kNegZero32, kNegZero32, rm, fl), kNegZero32);
    EXPECT_EQ(f32_add(0, 0, rm, fl), 0u);
    EXPECT_EQ(f64_add(0, kNegZero64, rm, fl), rm == kRDN ? kNegZero64 : 0u);
    EXPECT_EQ(fl, 0) << "exact zero raises nothing";
  }
}

TEST(Fpu, SubnormalResultsRaiseUnderflowOnlyWhenInexact) {
  uint8_t fl = 0;
  // min_normal / 2 is an exact subnormal: no UF, no NX.
  EXPECT_EQ(f32_mul(kMinNormal32, b32(0.5f), kRNE, fl), 0x00400000u);
  EXPECT_EQ(fl, 0);
  // min_subnormal * 0.5 = 2^-150, halfway between 0 and min_subnormal: RNE -> 0, UF|NX.
  fl = 0;
  EXPECT_EQ(f32_mul(kMinSub32, b32(0.5f), kRNE, fl), 0u);
  EXPECT_EQ(fl, kUF | kNX);
  fl = 0;
  EXPECT_EQ(f32_mul(kMinSub32, b32(0.5f), kRMM, fl), kMinSub32);
  EXPECT_EQ(fl, kUF | kNX);
  fl = 0;
  EXPECT_EQ(f32_mul(kMinSub32 | 0x80000000u, b32(0.5f), kRUP, fl), kNegZero32);
  EXPECT_EQ(fl, kUF | kNX);
  fl = 0;
  EXPECT_EQ(f64_mul(kMinSub64, b64(0.25), kRUP, fl), kMinSub64);
  EXPECT_EQ(fl, kUF | kNX);
}

TEST(Fpu, TininessIsDetectedAfterRounding) {
  // (2^24 - 1) * 2^-150 = 2^-126 - 2^-150: at the subnormal quantum 2^-149 it is a tie that
  // RNE rounds up to 2^-126, the smallest normal. Rounded to 24 bits with an unbounded
  // exponent it is exact and below 2^-126, so it is tiny: UF is raised although the
  // delivered result is normal.
  const uint32_t ones24 = 0x3f7fffffu;  // 1 - 2^-24
  uint8_t fl = 0;
  EXPECT_EQ(f32_mul(ones24, kMinNormal32, kRNE, fl), kMinNormal32);
  EXPECT_EQ(fl, kUF | kNX);
  fl = 0;
  EXPECT_EQ(f64_mul(0x3fefffffffffffffull, kMinNormal64, kRNE, fl), kMinNormal64);
  EXPECT_EQ(fl, kUF | kNX);
  fl = kNX;  // same with NX already accumulated
  EXPECT_EQ(f64_mul(0x3fefffffffffffffull, kMinNormal64, kRNE, fl), kMinNormal64);
  EXPECT_EQ(fl, kUF | kNX);
  fl = 0;
  EXPECT_EQ(f32_div(ones24, b32(std::ldexp(1.0f, 126)), kRNE, fl), kMinNormal32);
  EXPECT_EQ(fl, kUF | kNX);
  // 2^-1022 - 2^-1077 is tiny before rounding, but at 53 bits (quantum 2^-1075) it rounds
  // to 2^-1022 in RNE and RUP: not tiny after rounding, so only NX. A tininess-before-
  // rounding implementation would raise UF here.
  const uint64_t minus_eighth = b64(-0.125);
  for (Rounding rm : {kRNE, kRUP, kRMM}) {
    fl = 0;
    EXPECT_EQ(f64_fma(kMinSub64, minus_eighth, kMinNormal64, rm, fl), kMinNormal64) << int(rm);
    EXPECT_EQ(fl, kNX) << int(rm);
  }
  // Truncating modes deliver the largest subnormal: tiny and inexact.
  for (Rounding rm : {kRTZ, kRDN}) {
    fl = 0;
    EXPECT_EQ(f64_fma(kMinSub64, minus_eighth, kMinNormal64, rm, fl), 0x000fffffffffffffull);
    EXPECT_EQ(fl, kUF | kNX) << int(rm);
  }
  // Binary32 too: 2^-126 - 2^-152 via fma(min_sub, -1/8, min_normal).
  fl = 0;
  EXPECT_EQ(f32_fma(kMinSub32, b32(-0.125f), kMinNormal32, kRNE, fl), kMinNormal32);
  EXPECT_EQ(fl, kNX);
  fl = 0;
  EXPECT_EQ(f32_fma(kMinSub32, b32(-0.125f), kMinNormal32, kRTZ, fl), 0x007fffffu);
  EXPECT_EQ(fl, kUF | kNX);
}

TEST(Fpu, OverflowGoesToInfinityOrMaxFiniteByMode) {
  struct Want {
    Rounding rm;
    uint32_t pos;
    uint32_t neg;
  };
  const Want wants[] = {{kRNE, kPosInf32, kNegInf32},
                        {kRTZ, kMaxFinite32, kMaxFinite32 | 0x80000000u},
                        {kRDN, kMaxFinite32, kNegInf32},
                        {kRUP, kPosInf32, kMaxFinite32 | 0x80000000u},
                        {kRMM, kPosInf32, kNegInf32}};
  for (const Want& w : wants) {
    uint8_t fl = 0;
    EXPECT_EQ(f32_mul(kMaxFinite32, b32(2.0f), w.rm, fl), w.pos) << int(w.rm);
    EXPECT_EQ(fl, kOF | kNX);
    fl = 0;
    EXPECT_EQ(f32_add(kMaxFinite32 | 0x80000000u, kMaxFinite32 | 0x80000000u, w.rm, fl), w.neg);
    EXPECT_EQ(fl, kOF | kNX);
  }
  // Max finite plus less than half an ulp does not overflow in RNE.
  uint8_t fl = 0;
  EXPECT_EQ(f64_add(kMaxFinite64, b64(1.0), kRNE, fl), kMaxFinite64);
  EXPECT_EQ(fl, kNX);
  // But it does in RUP.
  fl = 0;
  EXPECT_EQ(f64_add(kMaxFinite64, b64(1.0), kRUP, fl), kPosInf64);
  EXPECT_EQ(fl, kOF | kNX);
  // Infinity is exact: inf + 1 raises nothing.
  fl = 0;
  EXPECT_EQ(f64_add(kPosInf64, b64(1.0), kRNE, fl), kPosInf64);
  EXPECT_EQ(fl, 0);
}

TEST(Fpu, InvalidOperationsGiveCanonicalNaNAndNV) {
  uint8_t fl = 0;
  EXPECT_EQ(f32_add(kPosInf32, kNegInf32, kRNE, fl), kCanonicalNaN32);
  EXPECT_EQ(fl, kNV);
  fl = 0;
  EXPECT_EQ(f64_sub(kPosInf64, kPosInf64, kRNE, fl), kCanonicalNaN64);
  EXPECT_EQ(fl, kNV);
  fl = 0;
  EXPECT_EQ(f32_mul(kPosInf32, kNegZero32, kRNE, fl), kCanonicalNaN32);
  EXPECT_EQ(fl, kNV);
  fl = 0;
  EXPECT_EQ(f64_div(0, kNegZero64, kRNE, fl), kCanonicalNaN64);
  EXPECT_EQ(fl, kNV);
  fl = 0;
  EXPECT_EQ(f64_div(kNegInf64, kPosInf64, kRNE, fl), kCanonicalNaN64);
  EXPECT_EQ(fl, kNV);
  // NaN payloads never propagate; a quiet NaN raises nothing, a signaling one NV.
  fl = 0;
  EXPECT_EQ(f32_add(kQNaN32Payload, b32(1.0f), kRNE, fl), kCanonicalNaN32);
  EXPECT_EQ(fl, 0);
  EXPECT_EQ(f32_mul(kSNaN32, b32(1.0f), kRNE, fl), kCanonicalNaN32);
  EXPECT_EQ(fl, kNV);
  fl = 0;
  EXPECT_EQ(f64_sqrt(kSNaN64 | kNegZero64, kRNE, fl), kCanonicalNaN64);
  EXPECT_EQ(fl, kNV);
}

TEST(Fpu, DivideByZeroGivesSignedInfinityAndDZ) {
  uint8_t fl = 0;
  EXPECT_EQ(f32_div(b32(-3.0f), 0, kRNE, fl), kNegInf32);
  EXPECT_EQ(fl, kDZ);
  fl = 0;
  EXPECT_EQ(f64_div(b64(5.0), kNegZero64, kRTZ, fl), kNegInf64);
  EXPECT_EQ(fl, kDZ);
  fl = 0;
  EXPECT_EQ(f64_div(kPosInf64, 0, kRNE, fl), kPosInf64) << "inf / 0 is exact infinity";
  EXPECT_EQ(fl, 0);
  EXPECT_EQ(f64_div(b64(1.0), kPosInf64, kRNE, fl), 0u);
  EXPECT_EQ(f64_div(b64(-1.0), kPosInf64, kRNE, fl), kNegZero64);
  EXPECT_EQ(fl, 0);
}

TEST(Fpu, SquareRoot) {
  uint8_t fl = 0;
  EXPECT_EQ(f32_sqrt(kNegZero32, kRNE, fl), kNegZero32);
  EXPECT_EQ(f64_sqrt(kNegZero64, kRDN, fl), kNegZero64);
  EXPECT_EQ(f64_sqrt(kPosInf64, kRNE, fl), kPosInf64);
  EXPECT_EQ(fl, 0);
  EXPECT_EQ(f64_sqrt(b64(16.0), kRNE, fl), b64(4.0));
  EXPECT_EQ(f32_sqrt(b32(0.25f), kRTZ, fl), b32(0.5f));
  EXPECT_EQ(fl, 0) << "exact roots are exact";
  EXPECT_EQ(f64_sqrt(b64(-1.0), kRNE, fl), kCanonicalNaN64);
  EXPECT_EQ(fl, kNV);
  fl = 0;
  EXPECT_EQ(f32_sqrt(kNegInf32, kRNE, fl), kCanonicalNaN32);
  EXPECT_EQ(fl, kNV);
  fl = 0;
  EXPECT_EQ(f32_sqrt(0x80000001u, kRNE, fl), kCanonicalNaN32) << "negative subnormal";
  EXPECT_EQ(fl, kNV);
  // sqrt(2) in binary64 is 0x3ff6a09e667f3bcd (RNE, RUP) and ...bcc (RTZ, RDN).
  fl = 0;
  EXPECT_EQ(f64_sqrt(b64(2.0), kRNE, fl), 0x3ff6a09e667f3bcdull);
  EXPECT_EQ(f64_sqrt(b64(2.0), kRUP, fl), 0x3ff6a09e667f3bcdull);
  EXPECT_EQ(f64_sqrt(b64(2.0), kRTZ, fl), 0x3ff6a09e667f3bccull);
  EXPECT_EQ(f64_sqrt(b64(2.0), kRDN, fl), 0x3ff6a09e667f3bccull);
  EXPECT_EQ(f64_sqrt(b64(2.0), kRMM, fl), 0x3ff6a09e667f3bcdull);
  EXPECT_EQ(fl, kNX);
  // Smallest subnormal: sqrt(2^-1074) = 2^-537.
  fl = 0;
  EXPECT_EQ(f64_sqrt(kMinSub64, kRNE, fl), b64(std::ldexp(1.0, -537)));
  EXPECT_EQ(fl, 0);
}

TEST(Fpu, FusedMultiplyAddRoundsOnce) {
  // (1 + 2^-23)(1 - 2^-23) - 1 = -2^-46 exactly, which a separately rounded multiply would
  // lose (it rounds the product to 1).
  const uint32_t a = b32(1.0f + std::ldexp(1.0f, -23));
  const uint32_t b = b32(1.0f - std::ldexp(1.0f, -23));
  uint8_t fl = 0;
  EXPECT_EQ(f32_fma(a, b, b32(-1.0f), kRNE, fl), b32(-std::ldexp(1.0f, -46)));
  EXPECT_EQ(fl, 0);
  const uint64_t a64 = b64(1.0 + std::ldexp(1.0, -30));
  const uint64_t c64 = b64(-1.0 - std::ldexp(1.0, -29));
  EXPECT_EQ(f64_fma(a64, a64, c64, kRNE, fl), b64(std::ldexp(1.0, -60)));
  EXPECT_EQ(fl, 0);
  // x*y - x*y where the product is inexact: the exact residual is returned.
  const double x = 0.1;
  const double y = 0.3;
  const double p = x * y;
  EXPECT_EQ(f64(f64_fma(b64(x), b64(y), b64(-p), kRNE, fl)), std::fma(x, y, -p));
}

TEST(Fpu, FmaInfinityTimesZeroIsInvalidEvenWithQuietNaNAddend) {
  uint8_t fl = 0;
  EXPECT_EQ(f32_fma(kPosInf32, 0, kCanonicalNaN32, kRNE, fl), kCanonicalNaN32);
  EXPECT_EQ(fl, kNV);
  fl = 0;
  EXPECT_EQ(f64_fma(kNegZero64, kNegInf64, kCanonicalNaN64, kRNE, fl), kCanonicalNaN64);
  EXPECT_EQ(fl, kNV);
  fl = 0;
  EXPECT_EQ(f64_fma(kNegZero64, kNegInf64, b64(1.0), kRNE, fl), kCanonicalNaN64);
  EXPECT_EQ(fl, kNV);
  // inf*2 + -inf is invalid; inf*2 + 5 is inf; a quiet NaN operand alone raises nothing.
  fl = 0;
  EXPECT_EQ(f64_fma(kPosInf64, b64(2.0), kNegInf64, kRNE, fl), kCanonicalNaN64);
  EXPECT_EQ(fl, kNV);
  fl = 0;
  EXPECT_EQ(f64_fma(kPosInf64, b64(-2.0), b64(5.0), kRNE, fl), kNegInf64);
  EXPECT_EQ(f64_fma(kCanonicalNaN64, b64(2.0), b64(5.0), kRNE, fl), kCanonicalNaN64);
  EXPECT_EQ(fl, 0);
  EXPECT_EQ(f32_fma(b32(2.0f), b32(3.0f), kSNaN32, kRNE, fl), kCanonicalNaN32);
  EXPECT_EQ(fl, kNV);
  // Zero product plus zero: sign per the sum rule; RDN makes (+0) + (-0) negative.
  fl = 0;
  EXPECT_EQ(f32_fma(kNegZero32, b32(1.0f), 0, kRNE, fl), 0u);
  EXPECT_EQ(f32_fma(kNegZero32, b32(1.0f), 0, kRDN, fl), kNegZero32);
  EXPECT_EQ(f32_fma(kNegZero32, b32(1.0f), kNegZero32, kRNE, fl), kNegZero32);
  EXPECT_EQ(fl, 0);
}

TEST(Fpu, MinMaxFollowMinimumNumberSemantics) {
  uint8_t fl = 0;
  EXPECT_EQ(f32_min(kCanonicalNaN32, b32(2.0f), fl), b32(2.0f));
  EXPECT_EQ(f32_max(b32(2.0f), kQNaN32Payload, fl), b32(2.0f));
  EXPECT_EQ(fl, 0);
  EXPECT_EQ(f32_min(kQNaN32Payload, kQNaN32Payload, fl), kCanonicalNaN32);
  EXPECT_EQ(fl, 0);
  EXPECT_EQ(f32_min(kSNaN32, b32(-1.0f), fl), b32(-1.0f));
  EXPECT_EQ(fl, kNV);
  fl = 0;
  EXPECT_EQ(f64_max(kSNaN64, kCanonicalNaN64, fl), kCanonicalNaN64);
  EXPECT_EQ(fl, kNV);
  fl = 0;
  EXPECT_EQ(f32_min(0, kNegZero32, fl), kNegZero32);
  EXPECT_EQ(f32_min(kNegZero32, 0, fl), kNegZero32);
  EXPECT_EQ(f32_max(kNegZero32, 0, fl), 0u);
  EXPECT_EQ(f64_max(0, kNegZero64, fl), 0u);
  EXPECT_EQ(f64_min(b64(-2.0), b64(-3.0), fl), b64(-3.0));
  EXPECT_EQ(f64_max(b64(-2.0), b64(-3.0), fl), b64(-2.0));
  EXPECT_EQ(f64_min(kNegInf64, kMaxFinite64, fl), kNegInf64);
  EXPECT_EQ(f64_max(kNegInf64, kPosInf64, fl), kPosInf64);
  EXPECT_EQ(fl, 0);
}

TEST(Fpu, ComparisonsQuietAndSignaling) {
  uint8_t fl = 0;
  EXPECT_TRUE(f32_eq(0, kNegZero32, fl));
  EXPECT_TRUE(f32_le(kNegZero32, 0, fl));
  EXPECT_FALSE(f32_lt(kNegZero32, 0, fl));
  EXPECT_TRUE(f64_lt(b64(-1.0), b64(0.5), fl));
  EXPECT_FALSE(f64_lt(b64(0.5), b64(0.5), fl));
  EXPECT_TRUE(f64_le(b64(0.5), b64(0.5), fl));
  EXPECT_TRUE(f64_lt(b64(-2.0), b64(-1.0), fl));
  EXPECT_FALSE(f64_le(b64(-1.0), b64(-2.0), fl));
  EXPECT_EQ(fl, 0);
  // feq is quiet: only a signaling NaN raises NV.
  EXPECT_FALSE(f32_eq(kCanonicalNaN32, kCanonicalNaN32, fl));
  EXPECT_EQ(fl, 0);
  EXPECT_FALSE(f32_eq(kSNaN32, b32(1.0f), fl));
  EXPECT_EQ(fl, kNV);
  // flt/fle signal on any NaN.
  fl = 0;
  EXPECT_FALSE(f64_lt(kCanonicalNaN64, b64(1.0), fl));
  EXPECT_EQ(fl, kNV);
  fl = 0;
  EXPECT_FALSE(f64_le(b64(1.0), kCanonicalNaN64, fl));
  EXPECT_EQ(fl, kNV);
}

TEST(Fpu, ClassifyIsOneHotPerSpecTable) {
  EXPECT_EQ(f32_classify(kNegInf32), 1u << 0);
  EXPECT_EQ(f32_classify(b32(-1.0f)), 1u << 1);
  EXPECT_EQ(f32_classify(0x80000001u), 1u << 2);
  EXPECT_EQ(f32_classify(kNegZero32), 1u << 3);
  EXPECT_EQ(f32_classify(0), 1u << 4);
  EXPECT_EQ(f32_classify(0x007fffffu), 1u << 5);
  EXPECT_EQ(f32_classify(kMaxFinite32), 1u << 6);
  EXPECT_EQ(f32_classify(kPosInf32), 1u << 7);
  EXPECT_EQ(f32_classify(kSNaN32), 1u << 8);
  EXPECT_EQ(f32_classify(kCanonicalNaN32), 1u << 9);
  EXPECT_EQ(f64_classify(kNegInf64), 1u << 0);
  EXPECT_EQ(f64_classify(b64(-1e300)), 1u << 1);
  EXPECT_EQ(f64_classify(kMinSub64 | kNegZero64), 1u << 2);
  EXPECT_EQ(f64_classify(kNegZero64), 1u << 3);
  EXPECT_EQ(f64_classify(0), 1u << 4);
  EXPECT_EQ(f64_classify(kMinSub64), 1u << 5);
  EXPECT_EQ(f64_classify(kMinNormal64), 1u << 6);
  EXPECT_EQ(f64_classify(kPosInf64), 1u << 7);
  EXPECT_EQ(f64_classify(0xfff0000000000001ull), 1u << 8);
  EXPECT_EQ(f64_classify(0xfff8000000000000ull), 1u << 9);
}

TEST(Fpu, FloatToIntSaturatesPerSpecTable) {
  uint8_t fl = 0;
  EXPECT_EQ(f32_to_i32(kCanonicalNaN32, kRNE, fl), INT32_MAX);
  EXPECT_EQ(fl, kNV);
  fl = 0;
  EXPECT_EQ(f32_to_i32(kNegInf32, kRNE, fl), INT32_MIN);
  EXPECT_EQ(f32_to_i32(kPosInf32, kRNE, fl), INT32_MAX);
  EXPECT_EQ(f64_to_i32(b64(3e9), kRNE, fl), INT32_MAX);
  EXPECT_EQ(f64_to_i32(b64(-3e9), kRNE, fl), INT32_MIN);
  EXPECT_EQ(f32_to_u32(kCanonicalNaN32, kRNE, fl), UINT32_MAX);
  EXPECT_EQ(f32_to_u32(kNegInf32, kRNE, fl), 0u);
  EXPECT_EQ(f64_to_u64(kSNaN64, kRNE, fl), UINT64_MAX);
  EXPECT_EQ(f64_to_i64(b64(std::ldexp(1.0, 63)), kRNE, fl), INT64_MAX);
  EXPECT_EQ(f64_to_u64(b64(std::ldexp(1.0, 64)), kRNE, fl), UINT64_MAX);
  EXPECT_EQ(f64_to_u64(b64(-1.0), kRNE, fl), 0u);
  EXPECT_EQ(fl, kNV) << "invalid conversions raise NV alone, never NX";
  // Exactly the most negative value is fine; so is the largest value that fits.
  fl = 0;
  EXPECT_EQ(f64_to_i64(b64(-std::ldexp(1.0, 63)), kRNE, fl), INT64_MIN);
  EXPECT_EQ(f64_to_i32(b64(-2147483648.0), kRNE, fl), INT32_MIN);
  EXPECT_EQ(f64_to_i32(b64(2147483647.0), kRNE, fl), INT32_MAX);
  EXPECT_EQ(f64_to_u32(b64(4294967295.0), kRNE, fl), UINT32_MAX);
  EXPECT_EQ(f32_to_u64(b32(std::ldexp(1.0f, 63)), kRNE, fl), uint64_t{1} << 63);
  EXPECT_EQ(fl, 0);
  // -2147483648.5 rounds to -2^31 in RTZ (in range, NX) but to -2^31-1 in RDN (NV).
  EXPECT_EQ(f64_to_i32(b64(-2147483648.5), kRTZ, fl), INT32_MIN);
  EXPECT_EQ(fl, kNX);
  fl = 0;
  EXPECT_EQ(f64_to_i32(b64(-2147483648.5), kRDN, fl), INT32_MIN);
  EXPECT_EQ(fl, kNV);
  // Unsigned: a negative value that rounds to zero is 0 with NX; one that rounds to -1 is
  // invalid.
  fl = 0;
  EXPECT_EQ(f32_to_u32(b32(-0.3f), kRNE, fl), 0u);
  EXPECT_EQ(fl, kNX);
  fl = 0;
  EXPECT_EQ(f32_to_u32(b32(-0.3f), kRDN, fl), 0u);
  EXPECT_EQ(fl, kNV);
  fl = 0;
  EXPECT_EQ(f64_to_u64(b64(-1.0), kRTZ, fl), 0u);
  EXPECT_EQ(fl, kNV);
  fl = 0;
  EXPECT_EQ(f64_to_u64(kNegZero64, kRTZ, fl), 0u);
  EXPECT_EQ(fl, 0);
}

TEST(Fpu, FloatToIntRoundsPerMode) {
  struct Row {
    double x;
    int64_t rne, rtz, rdn, rup, rmm;
  };
  const Row rows[] = {{2.5, 2, 2, 2, 3, 3},     {3.5, 4, 3, 3, 4, 4},
                      {-2.5, -2, -2, -3, -2, -3}, {-0.5, 0, 0, -1, 0, -1},
                      {1.25, 1, 1, 1, 2, 1},    {-1.75, -2, -1, -2, -1, -2}};
  for (const Row& r : rows) {
    const int64_t want[5] = {r.rne, r.rtz, r.rdn, r.rup, r.rmm};
    for (int m = 0; m < 5; ++m) {
      uint8_t fl = 0;
      EXPECT_EQ(f64_to_i64(b64(r.x), kAllModes[m], fl), want[m]) << r.x << " mode " << m;
      EXPECT_EQ(fl, kNX);
      fl = 0;
      EXPECT_EQ(f32_to_i32(b32(static_cast<float>(r.x)), kAllModes[m], fl), want[m]);
      EXPECT_EQ(fl, kNX);
    }
  }
}

TEST(Fpu, IntToFloatRoundsPerMode) {
  uint8_t fl = 0;
  // 2^24 + 1 is halfway between 2^24 and 2^24 + 2.
  EXPECT_EQ(i32_to_f32(16777217, kRNE, fl), b32(16777216.0f));
  EXPECT_EQ(i32_to_f32(16777217, kRMM, fl), b32(16777218.0f));
  EXPECT_EQ(i32_to_f32(-16777217, kRMM, fl), b32(-16777218.0f));
  EXPECT_EQ(i32_to_f32(-16777217, kRUP, fl), b32(-16777216.0f));
  EXPECT_EQ(fl, kNX);
  fl = 0;
  EXPECT_EQ(i32_to_f32(INT32_MIN, kRNE, fl), b32(-2147483648.0f));
  EXPECT_EQ(i64_to_f64(INT64_MIN, kRNE, fl), b64(-std::ldexp(1.0, 63)));
  EXPECT_EQ(u32_to_f64(UINT32_MAX, kRNE, fl), b64(4294967295.0));
  EXPECT_EQ(i32_to_f64(-7, kRDN, fl), b64(-7.0));
  EXPECT_EQ(i32_to_f32(0, kRDN, fl), 0u) << "integer zero converts to +0 in every mode";
  EXPECT_EQ(fl, 0);
  EXPECT_EQ(u64_to_f64(UINT64_MAX, kRNE, fl), b64(std::ldexp(1.0, 64)));
  EXPECT_EQ(u64_to_f64(UINT64_MAX, kRTZ, fl), b64(std::ldexp(1.0, 64)) - 1);
  EXPECT_EQ(u64_to_f32(UINT64_MAX, kRTZ, fl), b32(std::ldexp(1.0f, 64)) - 1);
  EXPECT_EQ(fl, kNX);
}

TEST(Fpu, FormatConversions) {
  uint8_t fl = 0;
  EXPECT_EQ(f32_to_f64(b32(1.5f), fl), b64(1.5));
  EXPECT_EQ(f32_to_f64(kMinSub32, fl), b64(std::ldexp(1.0, -149)));
  EXPECT_EQ(f32_to_f64(kNegInf32, fl), kNegInf64);
  EXPECT_EQ(f32_to_f64(kNegZero32, fl), kNegZero64);
  EXPECT_EQ(f32_to_f64(kQNaN32Payload, fl), kCanonicalNaN64);
  EXPECT_EQ(fl, 0);
  EXPECT_EQ(f32_to_f64(kSNaN32, fl), kCanonicalNaN64);
  EXPECT_EQ(fl, kNV);
  fl = 0;
  EXPECT_EQ(f64_to_f32(b64(0.1), kRNE, fl), b32(0.1f));
  EXPECT_EQ(f64_to_f32(b64(0.1), kRTZ, fl), b32(0.1f) - 1);
  EXPECT_EQ(fl, kNX);
  fl = 0;
  EXPECT_EQ(f64_to_f32(b64(1e300), kRNE, fl), kPosInf32);
  EXPECT_EQ(fl, kOF | kNX);
  fl = 0;
  EXPECT_EQ(f64_to_f32(b64(1e300), kRTZ, fl), kMaxFinite32);
  fl = 0;
  EXPECT_EQ(f64_to_f32(b64(-1e-300), kRNE, fl), kNegZero32);
  EXPECT_EQ(fl, kUF | kNX);
  fl = 0;
  EXPECT_EQ(f64_to_f32(b64(-1e-300), kRDN, fl), kMinSub32 | 0x80000000u);
  EXPECT_EQ(fl, kUF | kNX);
  fl = 0;
  EXPECT_EQ(f64_to_f32(kSNaN64, kRNE, fl), kCanonicalNaN32);
  EXPECT_EQ(fl, kNV);
}

// ---------------------------------------------------------------------------------------
// Randomized comparison with the host
// ---------------------------------------------------------------------------------------

#if defined(__x86_64__) && defined(__SSE2__)

using Quad = __float128;

// MXCSR rounding-control values for RNE, RTZ, RDN, RUP (indices match kAllModes[0..3]).
constexpr uint32_t kMxcsrRc[4] = {0u << 13, 3u << 13, 1u << 13, 2u << 13};
constexpr uint32_t kMxcsrDefault = 0x1f80;

uint32_t read_mxcsr() {
  uint32_t v = 0;
  asm volatile("stmxcsr %0" : "=m"(v) : : "memory");
  return v;
}
void write_mxcsr(uint32_t v) { asm volatile("ldmxcsr %0" : : "m"(v) : "memory"); }

uint8_t mxcsr_to_fflags(uint32_t csr) {
  uint8_t f = 0;
  if (csr & 0x01) f |= kNV;
  if (csr & 0x04) f |= kDZ;
  if (csr & 0x08) f |= kOF;
  if (csr & 0x10) f |= kUF;
  if (csr & 0x20) f |= kNX;
  return f;
}

struct HostResult {
  uint64_t bits;
  uint8_t flags;
};

// Runs fn() on the host under rounding mode m (0..3). Operands must be read from volatile
// storage inside fn and the result goes through a volatile store, so the compiler cannot
// move the arithmetic across the MXCSR accesses ("memory" clobbers).
template <class R, class Fn>
HostResult host_run(int m, Fn fn) {
  write_mxcsr(kMxcsrDefault | kMxcsrRc[m]);
  volatile R r = fn();
  const uint32_t csr = read_mxcsr();
  write_mxcsr(kMxcsrDefault);
  const R rv = r;
  uint64_t bits = 0;
  if constexpr (std::is_same_v<R, float>) {
    bits = std::isnan(rv) ? kCanonicalNaN32 : b32(rv);
  } else if constexpr (std::is_same_v<R, double>) {
    bits = std::isnan(rv) ? kCanonicalNaN64 : b64(rv);
  } else {
    bits = static_cast<uint64_t>(rv);
  }
  return {bits, mxcsr_to_fflags(csr)};
}

template <class T>
using BitsOf = std::conditional_t<sizeof(T) == 4, uint32_t, uint64_t>;

// The exact midpoint between t (the result rounded toward zero) and its neighbour away
// from zero, as a __float128 (exact: it has at most p+1 significant bits).
template <class T>
Quad midpoint_away(T t) {
  const T away = std::signbit(t) ? -std::numeric_limits<T>::infinity()
                                 : std::numeric_limits<T>::infinity();
  const T next = std::nextafter(t, away);
  if (std::isinf(next)) {  // t is the largest finite: the midpoint is half an ulp above
    const T prev = std::nextafter(t, T{0});
    return static_cast<Quad>(t) + (static_cast<Quad>(t) - static_cast<Quad>(prev)) / 2;
  }
  return (static_cast<Quad>(t) + static_cast<Quad>(next)) / 2;
}

// Exact sum test: returns true and sets s when x + y is exactly representable in Quad.
bool quad_exact_sum(Quad x, Quad y, Quad& s) {
  s = x + y;
  const Quad bb = s - x;
  const Quad err = (x - (s - bb)) + (y - bb);
  return err == 0;
}

// Counts checks and reports the first few mismatches with the inputs that caused them.
struct Checker {
  std::string name;
  int failures = 0;
  long checks = 0;
  uint64_t in[3] = {};
  int n_in = 0;

  void inputs(uint64_t a) { in[0] = a, n_in = 1; }
  void inputs(uint64_t a, uint64_t b) { in[0] = a, in[1] = b, n_in = 2; }
  void inputs(uint64_t a, uint64_t b, uint64_t c) { in[0] = a, in[1] = b, in[2] = c, n_in = 3; }

  void expect(uint64_t got, uint8_t got_flags, uint64_t want, uint8_t want_flags, Rounding rm) {
    ++checks;
    if (got == want && got_flags == want_flags) return;
    if (++failures <= 8) {
      std::string args;
      for (int i = 0; i < n_in; ++i) {
        char buf[24];
        std::snprintf(buf, sizeof buf, " 0x%llx", static_cast<unsigned long long>(in[i]));
        args += buf;
      }
      ADD_FAILURE() << name << " rm=" << int(rm) << " inputs" << args << ": got 0x" << std::hex
                    << got << " flags 0x" << int(got_flags) << ", want 0x" << want
                    << " flags 0x" << int(want_flags);
    }
  }
};

// Checks one input in all five modes. host_op() computes the result on the host (in the
// current MXCSR mode), soft(rm, flags) our result bits, and is_exact(mid) tells whether the
// exact result equals the Quad value mid (used to find RMM ties).
template <class T, class HostOp, class SoftOp, class IsExact>
void check_modes(Checker& ck, HostOp host_op, SoftOp soft, IsExact is_exact,
                 uint8_t extra_flags = 0) {
  HostResult h[4];
  for (int m = 0; m < 4; ++m) {
    h[m] = host_run<T>(m, host_op);
    h[m].flags |= extra_flags;
  }
  for (int m = 0; m < 4; ++m) {
    uint8_t fl = 0;
    const uint64_t got = soft(kAllModes[m], fl);
    ck.expect(got, fl, h[m].bits, h[m].flags, kAllModes[m]);
  }
  // RMM: equal to RNE (result and flags: inexactness does not depend on the mode, overflow
  // and tininess thresholds are ties that RNE also rounds away) except at an exact tie,
  // where the result is the neighbour away from zero.
  uint64_t want = h[0].bits;
  if ((h[1].flags & kNX) != 0) {
    const T t = std::bit_cast<T>(static_cast<BitsOf<T>>(h[1].bits));
    if (is_exact(midpoint_away<T>(t))) want = std::signbit(t) ? h[2].bits : h[3].bits;
  }
  uint8_t fl = 0;
  const uint64_t got = soft(kRMM, fl);
  ck.expect(got, fl, want, h[0].flags, kRMM);
}

// The public functions (host fast path in RNE) must match the software path, both with
// fresh flags and with NX already accumulated (where the fast path skips reading the host's
// flags).
template <class Pub, class Soft>
void check_paths(Checker& ck, Pub pub, Soft soft_only) {
  uint8_t want_flags = 0;
  const uint64_t want = soft_only(want_flags);
  uint8_t fl = 0;
  uint64_t got = pub(fl);
  ck.expect(got, fl, want, want_flags, kRNE);
  fl = kNX;
  got = pub(fl);
  ck.expect(got, fl, want, static_cast<uint8_t>(want_flags | kNX), kRNE);
}

// Random operands: a mix of uniformly random bit patterns and values steered to the
// interesting places (specials, subnormals, near overflow, short significands).
template <class U>
struct Gen {
  static constexpr int kFrac = sizeof(U) == 4 ? 23 : 52;
  static constexpr int kExpMax = sizeof(U) == 4 ? 255 : 2047;
  static constexpr U kSign = U(1) << (sizeof(U) * 8 - 1);
  std::mt19937_64 rng;

  explicit Gen(uint64_t seed) : rng(seed) {}

  U make(bool sign, int biased_exp, U frac) const {
    return (sign ? kSign : U(0)) | (static_cast<U>(biased_exp) << kFrac) |
           (frac & ((U(1) << kFrac) - 1));
  }
  U frac_bits() {
    U f = static_cast<U>(rng());
    switch (rng() % 4) {
      case 0: {  // short significand: only the top k bits random
        const int k = static_cast<int>(rng() % (kFrac + 1));
        f = k == 0 ? U(0) : static_cast<U>(f & ~((U(1) << (kFrac - k)) - 1));
        break;
      }
      case 1: f = static_cast<U>(~U(0) - (f & 7)); break;  // all ones, nearly
      default: break;
    }
    return f;
  }
  U value() {
    const uint64_t r = rng();
    const bool sign = (r >> 8) & 1;
    switch (r % 16) {
      case 0:
      case 1:
      case 2: return static_cast<U>(rng());
      case 3: {
        const U specials[] = {U(0), make(false, kExpMax, 0), make(false, kExpMax, U(1) << (kFrac - 1)),
                              make(false, kExpMax, 1), U(1), make(false, 0, ~U(0)),
                              make(false, 1, 0), make(false, kExpMax - 1, ~U(0)),
                              make(false, (kExpMax >> 1), 0)};
        return static_cast<U>(specials[rng() % 9] | (sign ? kSign : U(0)));
      }
      case 4: return make(sign, 0, frac_bits());
      case 5: return make(sign, 1 + static_cast<int>(rng() % 3), frac_bits());
      case 6: return make(sign, kExpMax - 1 - static_cast<int>(rng() % 3), frac_bits());
      default: return make(sign, (kExpMax >> 1) - 40 + static_cast<int>(rng() % 80), frac_bits());
    }
  }
  // A second operand near the first one in magnitude (cancellation, ties, exact results).
  U near(U a) {
    const int ea = static_cast<int>((a >> kFrac) & static_cast<U>(kExpMax));
    int e = ea + static_cast<int>(rng() % 61) - 30;
    if (rng() % 3 == 0) e = ea + static_cast<int>(rng() % 5) - 2;
    if (e < 0) e = 0;
    if (e > kExpMax - 1) e = kExpMax - 1;
    return make((rng() & 1) != 0, e, frac_bits());
  }
  U second(U a) { return (rng() & 1) != 0 ? value() : near(a); }
};

// Work per op class: kInputs inputs, each checked in 5 modes (and RNE fast vs soft path):
// about a million checks per class.
constexpr int kInputs = 150000;

template <class T>
void random_binary(const char* name, uint64_t seed, int op) {
  using U = BitsOf<T>;
  Gen<U> gen(seed);
  Checker ck{name};
  for (int i = 0; i < kInputs; ++i) {
    const U a = gen.value();
    const U b = gen.second(a);
    ck.inputs(a, b);
    volatile T va = std::bit_cast<T>(a);
    volatile T vb = std::bit_cast<T>(b);
    const Quad qa = std::bit_cast<T>(a);
    const Quad qb = std::bit_cast<T>(b);
    auto host = [&]() -> T {
      switch (op) {
        case 0: return va + vb;
        case 1: return va - vb;
        case 2: return va * vb;
        default: return va / vb;
      }
    };
    auto soft = [&](Rounding rm, uint8_t& fl) -> uint64_t {
      if constexpr (sizeof(T) == 4) {
        switch (op) {
          case 0: return f32_add(a, b, rm, fl);
          case 1: return f32_sub(a, b, rm, fl);
          case 2: return f32_mul(a, b, rm, fl);
          default: return f32_div(a, b, rm, fl);
        }
      } else {
        switch (op) {
          case 0: return f64_add(a, b, rm, fl);
          case 1: return f64_sub(a, b, rm, fl);
          case 2: return f64_mul(a, b, rm, fl);
          default: return f64_div(a, b, rm, fl);
        }
      }
    };
    auto is_exact = [&](Quad mid) {
      Quad s = 0;
      switch (op) {
        case 0: return quad_exact_sum(qa, qb, s) && s == mid;
        case 1: return quad_exact_sum(qa, -qb, s) && s == mid;
        case 2: return qa * qb == mid;  // products of <= 53-bit significands are exact
        default: return mid * qb == qa;  // mid has <= 54 bits: the product is exact
      }
    };
    check_modes<T>(ck, host, soft, is_exact);
    // The software path must agree with the public (host fast path) one in RNE too.
    check_paths(
        ck, [&](uint8_t& fl) { return soft(kRNE, fl); },
        [&](uint8_t& fl) -> uint64_t {
          if constexpr (sizeof(T) == 4) {
            switch (op) {
              case 0: return soft::f32_add(a, b, kRNE, fl);
              case 1: return soft::f32_add(a, b ^ 0x80000000u, kRNE, fl);
              case 2: return soft::f32_mul(a, b, kRNE, fl);
              default: return soft::f32_div(a, b, kRNE, fl);
            }
          } else {
            switch (op) {
              case 0: return soft::f64_add(a, b, kRNE, fl);
              case 1: return soft::f64_add(a, b ^ kNegZero64, kRNE, fl);
              case 2: return soft::f64_mul(a, b, kRNE, fl);
              default: return soft::f64_div(a, b, kRNE, fl);
            }
          }
        });
  }
  EXPECT_EQ(ck.failures, 0) << name << ": " << ck.failures << " of " << ck.checks;
}

TEST(FpuRandom, F32Add) { random_binary<float>("f32_add", 1, 0); }
TEST(FpuRandom, F32Sub) { random_binary<float>("f32_sub", 2, 1); }
TEST(FpuRandom, F32Mul) { random_binary<float>("f32_mul", 3, 2); }
TEST(FpuRandom, F32Div) { random_binary<float>("f32_div", 4, 3); }
TEST(FpuRandom, F64Add) { random_binary<double>("f64_add", 5, 0); }
TEST(FpuRandom, F64Sub) { random_binary<double>("f64_sub", 6, 1); }
TEST(FpuRandom, F64Mul) { random_binary<double>("f64_mul", 7, 2); }
TEST(FpuRandom, F64Div) { random_binary<double>("f64_div", 8, 3); }

template <class T>
void random_sqrt(const char* name, uint64_t seed) {
  using U = BitsOf<T>;
  Gen<U> gen(seed);
  Checker ck{name};
  for (int i = 0; i < kInputs; ++i) {
    U a = gen.value();
    if (i % 4 == 0) {  // perfect squares and their neighbours
      const T r = std::bit_cast<T>(gen.value());
      a = static_cast<U>(std::bit_cast<U>(r * r) + static_cast<U>(gen.rng() % 3) - 1);
    }
    if (i % 2 == 0) a &= static_cast<U>(~Gen<U>::kSign);
    ck.inputs(a);
    volatile T va = std::bit_cast<T>(a);
    const Quad qa = std::bit_cast<T>(a);
    auto host = [&]() -> T { return std::sqrt(va); };
    auto soft = [&](Rounding rm, uint8_t& fl) -> uint64_t {
      if constexpr (sizeof(T) == 4) {
        return f32_sqrt(a, rm, fl);
      } else {
        return f64_sqrt(a, rm, fl);
      }
    };
    auto is_exact = [&](Quad mid) { return mid * mid == qa; };
    check_modes<T>(ck, host, soft, is_exact);
    check_paths(
        ck, [&](uint8_t& fl) { return soft(kRNE, fl); },
        [&](uint8_t& fl) -> uint64_t {
          if constexpr (sizeof(T) == 4) {
            return soft::f32_sqrt(a, kRNE, fl);
          } else {
            return soft::f64_sqrt(a, kRNE, fl);
          }
        });
  }
  EXPECT_EQ(ck.failures, 0) << name << ": " << ck.failures << " of " << ck.checks;
}

TEST(FpuRandom, F32Sqrt) { random_sqrt<float>("f32_sqrt", 11); }
TEST(FpuRandom, F64Sqrt) { random_sqrt<double>("f64_sqrt", 12); }

template <class T>
void random_fma(const char* name, uint64_t seed) {
  using U = BitsOf<T>;
  Gen<U> gen(seed);
  Checker ck{name};
  for (int i = 0; i < kInputs; ++i) {
    const U a = gen.value();
    const U b = gen.second(a);
    U c = 0;
    switch (i % 3) {
      case 0: c = gen.value(); break;
      case 1: {  // cancel most of the product
        const T p = std::bit_cast<T>(a) * std::bit_cast<T>(b);
        c = static_cast<U>(std::bit_cast<U>(-p) ^ static_cast<U>(gen.rng() % 4));
        break;
      }
      default: {  // exponent near the product's
        const T p = std::bit_cast<T>(a) * std::bit_cast<T>(b);
        c = gen.near(std::bit_cast<U>(p));
        break;
      }
    }
    ck.inputs(a, b, c);
    volatile T va = std::bit_cast<T>(a);
    volatile T vb = std::bit_cast<T>(b);
    volatile T vc = std::bit_cast<T>(c);
    const Quad qa = std::bit_cast<T>(a);
    const Quad qb = std::bit_cast<T>(b);
    const Quad qc = std::bit_cast<T>(c);
    // glibc's fma/fmaf are correctly rounded in every mode with exact flags (the vfmadd
    // instruction where the CPU has it).
    auto host = [&]() -> T { return std::fma(va, vb, vc); };
    auto soft = [&](Rounding rm, uint8_t& fl) -> uint64_t {
      if constexpr (sizeof(T) == 4) {
        return f32_fma(a, b, c, rm, fl);
      } else {
        return f64_fma(a, b, c, rm, fl);
      }
    };
    auto is_exact = [&](Quad mid) {
      Quad s = 0;
      return quad_exact_sum(qa * qb, qc, s) && s == mid;  // qa*qb is exact (<= 106 bits)
    };
    // x86 raises no invalid for inf*0 + qNaN; RISC-V does (spec 11.6).
    const T x = std::bit_cast<T>(a);
    const T y = std::bit_cast<T>(b);
    const bool inf_times_zero = (std::isinf(x) && y == 0) || (x == 0 && std::isinf(y));
    const uint8_t extra = (inf_times_zero && std::isnan(std::bit_cast<T>(c))) ? kNV : 0;
    check_modes<T>(ck, host, soft, is_exact, extra);
    check_paths(
        ck, [&](uint8_t& fl) { return soft(kRNE, fl); },
        [&](uint8_t& fl) -> uint64_t {
          if constexpr (sizeof(T) == 4) {
            return soft::f32_fma(a, b, c, kRNE, fl);
          } else {
            return soft::f64_fma(a, b, c, kRNE, fl);
          }
        });
  }
  EXPECT_EQ(ck.failures, 0) << name << ": " << ck.failures << " of " << ck.checks;
}

TEST(FpuRandom, F32Fma) { random_fma<float>("f32_fma", 21); }
TEST(FpuRandom, F64Fma) { random_fma<double>("f64_fma", 22); }

TEST(FpuRandom, FormatConversions) {
  Gen<uint64_t> gen(31);
  Gen<uint32_t> gen32(32);
  Checker ck{"f64_to_f32"};
  Checker ck2{"f32_to_f64"};
  for (int i = 0; i < kInputs; ++i) {
    uint64_t a = gen.value();
    if (i % 2 == 0) {  // steer into binary32's range, including its subnormals
      const int e = 1023 - 160 + static_cast<int>(gen.rng() % 300);
      a = (a & 0x800fffffffffffffull) | (static_cast<uint64_t>(e) << 52);
    }
    ck.inputs(a);
    volatile double va = f64(a);
    const Quad qa = f64(a);
    check_modes<float>(
        ck, [&]() -> float { return static_cast<float>(va); },
        [&](Rounding rm, uint8_t& fl) -> uint64_t { return f64_to_f32(a, rm, fl); },
        [&](Quad mid) { return qa == mid; });
    check_paths(
        ck, [&](uint8_t& fl) -> uint64_t { return f64_to_f32(a, kRNE, fl); },
        [&](uint8_t& fl) -> uint64_t { return soft::f64_to_f32(a, kRNE, fl); });

    const uint32_t s = gen32.value();
    volatile float vs = f32(s);
    const HostResult h = host_run<double>(0, [&]() -> double { return static_cast<double>(vs); });
    uint8_t fl = 0;
    const uint64_t got = f32_to_f64(s, fl);
    ck2.inputs(s);
    ck2.expect(got, fl, h.bits, h.flags, kRNE);
  }
  EXPECT_EQ(ck.failures, 0);
  EXPECT_EQ(ck2.failures, 0);
}

// uint64 -> float through the signed conversion (cvtsi2ss/sd, which rounds per MXCSR):
// values >= 2^63 are halved keeping a sticky bit, then doubled exactly. A compiler's own
// unsigned conversion may use tricks that, for instance, give -0.0 for 0 in RDN.
template <class T>
T from_u64(uint64_t v) {
  if (static_cast<int64_t>(v) >= 0) return static_cast<T>(static_cast<int64_t>(v));
  const T half = static_cast<T>(static_cast<int64_t>((v >> 1) | (v & 1)));
  return half + half;
}

// Integer -> float in all modes against the host's cvtsi2ss/sd (which round per MXCSR).
TEST(FpuRandom, IntToFloat) {
  std::mt19937_64 rng(41);
  Checker ck{"int_to_float"};
  for (int i = 0; i < kInputs / 4; ++i) {  // six conversions per input
    uint64_t v = rng();
    const int kind = i % 4;
    if (kind == 1) v >>= rng() % 64;  // all magnitudes
    if (kind == 2) v = (v >> (rng() % 64)) | (uint64_t{1} << (rng() % 64));
    ck.inputs(v);
    volatile uint64_t vu = v;
    volatile int64_t vi = static_cast<int64_t>(v);
    volatile uint32_t vu32 = static_cast<uint32_t>(v);
    volatile int32_t vi32 = static_cast<int32_t>(static_cast<uint32_t>(v));
    const Quad qu = static_cast<Quad>(v);
    const Quad qi = static_cast<Quad>(static_cast<int64_t>(v));
    const Quad qu32 = static_cast<Quad>(static_cast<uint32_t>(v));
    const Quad qi32 = static_cast<Quad>(static_cast<int32_t>(static_cast<uint32_t>(v)));
    const auto u32v = static_cast<uint32_t>(v);
    const auto i32v = static_cast<int32_t>(u32v);
    const auto i64v = static_cast<int64_t>(v);
    check_modes<float>(
        ck, [&]() -> float { return from_u64<float>(vu); },
        [&](Rounding rm, uint8_t& fl) -> uint64_t { return u64_to_f32(v, rm, fl); },
        [&](Quad mid) { return qu == mid; });
    check_modes<float>(
        ck, [&]() -> float { return static_cast<float>(vi); },
        [&](Rounding rm, uint8_t& fl) -> uint64_t { return i64_to_f32(i64v, rm, fl); },
        [&](Quad mid) { return qi == mid; });
    check_modes<float>(
        ck, [&]() -> float { return static_cast<float>(static_cast<int64_t>(vu32)); },
        [&](Rounding rm, uint8_t& fl) -> uint64_t { return u32_to_f32(u32v, rm, fl); },
        [&](Quad mid) { return qu32 == mid; });
    check_modes<float>(
        ck, [&]() -> float { return static_cast<float>(vi32); },
        [&](Rounding rm, uint8_t& fl) -> uint64_t { return i32_to_f32(i32v, rm, fl); },
        [&](Quad mid) { return qi32 == mid; });
    check_modes<double>(
        ck, [&]() -> double { return from_u64<double>(vu); },
        [&](Rounding rm, uint8_t& fl) -> uint64_t { return u64_to_f64(v, rm, fl); },
        [&](Quad mid) { return qu == mid; });
    check_modes<double>(
        ck, [&]() -> double { return static_cast<double>(vi); },
        [&](Rounding rm, uint8_t& fl) -> uint64_t { return i64_to_f64(i64v, rm, fl); },
        [&](Quad mid) { return qi == mid; });
    // 32-bit integers convert to binary64 exactly.
    uint8_t fl = 0;
    const uint64_t d1 = u32_to_f64(u32v, kRDN, fl);
    ck.expect(d1, fl, b64(static_cast<double>(u32v)), 0, kRDN);
    const uint64_t d2 = i32_to_f64(i32v, kRUP, fl);
    ck.expect(d2, fl, b64(static_cast<double>(i32v)), 0, kRUP);
  }
  EXPECT_EQ(ck.failures, 0) << ck.failures << " of " << ck.checks;
}

// Float -> integer in all modes. Reference: the host rounds to an integral value in the
// mode (nearbyint; round() for RMM, which is ties-away), then the spec's saturation table.
template <class T>
void random_to_int(const char* name, uint64_t seed) {
  using U = BitsOf<T>;
  Gen<U> gen(seed);
  Checker ck{name};
  for (int i = 0; i < kInputs; ++i) {
    U a = gen.value();
    if (i % 2 == 0) {  // magnitudes where integer conversion is interesting: 2^-2 .. 2^66
      const int bias = sizeof(T) == 4 ? 127 : 1023;
      const int e = bias - 2 + static_cast<int>(gen.rng() % 69);
      a = static_cast<U>((a & ~(static_cast<U>(sizeof(T) == 4 ? 0xff : 0x7ff) << Gen<U>::kFrac)) |
                         (static_cast<U>(e) << Gen<U>::kFrac));
      if (i % 8 == 0) {  // halfway and near-integer values
        const T x = std::bit_cast<T>(a);
        const T r = std::trunc(x) + (std::signbit(x) ? T(-0.5) : T(0.5));
        a = std::bit_cast<U>(r);
      }
    }
    ck.inputs(a);
    const T x = std::bit_cast<T>(a);
    for (int m = 0; m < 5; ++m) {
      const Rounding rm = kAllModes[m];
      double r = 0;
      if (m == 4) {
        r = static_cast<double>(std::round(x));
      } else {
        write_mxcsr(kMxcsrDefault | kMxcsrRc[m]);
        volatile T vx = x;
        volatile T vr = std::nearbyint(vx);
        r = static_cast<double>(vr);
        write_mxcsr(kMxcsrDefault);
      }
      const bool nan = std::isnan(x);
      const bool nx = !nan && static_cast<double>(x) != r;
      // Expected results for the four widths: {i32, u32, i64, u64}.
      struct Want {
        uint64_t v;
        uint8_t f;
      } want[4];
      const double lo[4] = {-2147483648.0, 0.0, -9223372036854775808.0, 0.0};
      const double hi_excl[4] = {2147483648.0, 4294967296.0, 9223372036854775808.0,
                                 18446744073709551616.0};
      const uint64_t max_bits[4] = {0x7fffffffull, 0xffffffffull, 0x7fffffffffffffffull,
                                    ~uint64_t{0}};
      const uint64_t min_bits[4] = {0x80000000ull, 0, 0x8000000000000000ull, 0};
      for (int w = 0; w < 4; ++w) {
        if (nan || r >= hi_excl[w]) {
          want[w] = {max_bits[w], kNV};
        } else if (r < lo[w]) {
          want[w] = {min_bits[w], kNV};
        } else {
          const uint64_t v = r < 0 ? uint64_t{0} - static_cast<uint64_t>(-r) : static_cast<uint64_t>(r);
          want[w] = {(w < 2) ? (v & 0xffffffffull) : v, nx ? kNX : uint8_t{0}};
        }
      }
      uint8_t fl = 0;
      uint64_t got = 0;
      if constexpr (sizeof(T) == 4) {
        got = static_cast<uint32_t>(f32_to_i32(a, rm, fl));
        ck.expect(got, fl, want[0].v, want[0].f, rm);
        fl = 0;
        got = f32_to_u32(a, rm, fl);
        ck.expect(got, fl, want[1].v, want[1].f, rm);
        fl = 0;
        got = static_cast<uint64_t>(f32_to_i64(a, rm, fl));
        ck.expect(got, fl, want[2].v, want[2].f, rm);
        fl = 0;
        got = f32_to_u64(a, rm, fl);
        ck.expect(got, fl, want[3].v, want[3].f, rm);
      } else {
        got = static_cast<uint32_t>(f64_to_i32(a, rm, fl));
        ck.expect(got, fl, want[0].v, want[0].f, rm);
        fl = 0;
        got = f64_to_u32(a, rm, fl);
        ck.expect(got, fl, want[1].v, want[1].f, rm);
        fl = 0;
        got = static_cast<uint64_t>(f64_to_i64(a, rm, fl));
        ck.expect(got, fl, want[2].v, want[2].f, rm);
        fl = 0;
        got = f64_to_u64(a, rm, fl);
        ck.expect(got, fl, want[3].v, want[3].f, rm);
      }
    }
  }
  EXPECT_EQ(ck.failures, 0) << ck.failures << " of " << ck.checks;
}

TEST(FpuRandom, F32ToInt) { random_to_int<float>("f32_to_int", 51); }
TEST(FpuRandom, F64ToInt) { random_to_int<double>("f64_to_int", 52); }

// Comparisons, min/max and classify against the host's own ordering of the values.
template <class T>
void random_compare(const char* name, uint64_t seed) {
  using U = BitsOf<T>;
  Gen<U> gen(seed);
  Checker ck{name};
  for (int i = 0; i < kInputs; ++i) {
    const U a = gen.value();
    const U b = (i % 4 == 0) ? a ^ (i % 8 == 0 ? Gen<U>::kSign : U(0)) : gen.second(a);
    ck.inputs(a, b);
    const T x = std::bit_cast<T>(a);
    const T y = std::bit_cast<T>(b);
    const bool any_nan = std::isnan(x) || std::isnan(y);
    constexpr U kQuiet = U(1) << (Gen<U>::kFrac - 1);
    const bool any_snan = (std::isnan(x) && (a & kQuiet) == 0) || (std::isnan(y) && (b & kQuiet) == 0);
    uint8_t fl = 0;
    bool r = false;
    if constexpr (sizeof(T) == 4) {
      r = f32_eq(a, b, fl);
    } else {
      r = f64_eq(a, b, fl);
    }
    ck.expect(r, fl, x == y, any_snan ? kNV : 0, kRNE);
    fl = 0;
    if constexpr (sizeof(T) == 4) {
      r = f32_lt(a, b, fl);
    } else {
      r = f64_lt(a, b, fl);
    }
    ck.expect(r, fl, x < y, any_nan ? kNV : 0, kRNE);
    fl = 0;
    if constexpr (sizeof(T) == 4) {
      r = f32_le(a, b, fl);
    } else {
      r = f64_le(a, b, fl);
    }
    ck.expect(r, fl, x <= y, any_nan ? kNV : 0, kRNE);
    // min/max: minimumNumber/maximumNumber with -0 < +0.
    U want_min = 0;
    U want_max = 0;
    const U canon = sizeof(T) == 4 ? U(kCanonicalNaN32) : U(kCanonicalNaN64);
    if (std::isnan(x) && std::isnan(y)) {
      want_min = want_max = canon;
    } else if (std::isnan(x)) {
      want_min = want_max = b;
    } else if (std::isnan(y)) {
      want_min = want_max = a;
    } else if (x < y || (x == y && std::signbit(x))) {
      want_min = a;
      want_max = b;
    } else {
      want_min = b;
      want_max = a;
    }
    if (!any_nan && x == y && a != b) {  // +0 and -0
      want_min = std::signbit(x) ? a : b;
      want_max = std::signbit(x) ? b : a;
    }
    fl = 0;
    U got = 0;
    if constexpr (sizeof(T) == 4) {
      got = f32_min(a, b, fl);
    } else {
      got = f64_min(a, b, fl);
    }
    ck.expect(got, fl, want_min, any_snan ? kNV : 0, kRNE);
    fl = 0;
    if constexpr (sizeof(T) == 4) {
      got = f32_max(a, b, fl);
    } else {
      got = f64_max(a, b, fl);
    }
    ck.expect(got, fl, want_max, any_snan ? kNV : 0, kRNE);
    // classify: exactly one bit, consistent with the host's classification.
    uint32_t cls = 0;
    if constexpr (sizeof(T) == 4) {
      cls = f32_classify(a);
    } else {
      cls = f64_classify(a);
    }
    uint32_t want_cls = 0;
    const bool neg = std::signbit(x);
    switch (std::fpclassify(x)) {
      case FP_INFINITE: want_cls = neg ? 1u << 0 : 1u << 7; break;
      case FP_NORMAL: want_cls = neg ? 1u << 1 : 1u << 6; break;
      case FP_SUBNORMAL: want_cls = neg ? 1u << 2 : 1u << 5; break;
      case FP_ZERO: want_cls = neg ? 1u << 3 : 1u << 4; break;
      default: want_cls = (a & kQuiet) != 0 ? 1u << 9 : 1u << 8; break;
    }
    ck.expect(cls, 0, want_cls, 0, kRNE);
  }
  EXPECT_EQ(ck.failures, 0) << ck.failures << " of " << ck.checks;
}

TEST(FpuRandom, F32Compare) { random_compare<float>("f32_compare", 61); }
TEST(FpuRandom, F64Compare) { random_compare<double>("f64_compare", 62); }

TEST(FpuRandom, HostFastPathStaysOffWhenHostModeIsNotDefault) {
  // If something else left the host in another rounding mode, the fast path must not use
  // it: our RNE result must still be RNE.
  if (!host::kHostFastPath) GTEST_SKIP() << "no host fast path on this build";
  const uint64_t a = b64(1.0);
  const uint64_t b = b64(std::ldexp(1.0, -53) + std::ldexp(1.0, -60));  // just above half ulp
  write_mxcsr(kMxcsrDefault | kMxcsrRc[1]);                            // RTZ
  uint8_t fl = 0;
  const uint64_t r = f64_add(a, b, kRNE, fl);
  write_mxcsr(kMxcsrDefault);
  EXPECT_EQ(r, b64(1.0) + 1);
  EXPECT_EQ(fl, kNX);
}

#endif  // x86-64

}  // namespace
}  // namespace doppel::rv64::fpu
