// Host fast path for fpu.cpp: round-to-nearest-even add/mul/div/sqrt/fma/fcvt.s.d on the
// host's SSE/FMA unit when the answer is provably the one the software path would give.
//
// Why it is exact: SSE2 implements IEEE 754 binary32/binary64 add, mul, div, sqrt and
// conversion with correct rounding, FMA3 fused multiply-add with a single rounding. We
// only use it when (1) the host's MXCSR is in its default state (round to nearest even,
// FTZ and DAZ off, all exceptions masked), (2) every operand is a normal number (sqrt: a
// positive normal), and (3) the result is finite and strictly larger in magnitude than the
// smallest normal number (or, for add, an exact zero; see safe_sum). Under (2) no NaN,
// infinity, invalid or divide-by-zero case can arise; under (3) the result neither
// overflowed nor was tiny (before or after rounding), so the only flag the operation can
// raise is inexact. Inexactness comes from an exact error term where one is cheap (add:
// 2Sum; mul, div, sqrt: FMA residual; fcvt.s.d: widening back) and otherwise from MXCSR.PE, with the MXCSR write, the
// operation and the MXCSR read in one asm statement so the compiler cannot separate them.
// When the caller's flags already hold NX, inexactness is not computed at all.
// Anything else returns false and the caller takes the software path.
#pragma once

#include <bit>
#include <cstdint>

#include "engines/emu/riscv64/fpu.h"

namespace doppel::rv64::fpu::host {

#if defined(__x86_64__) && defined(__SSE2__) && !defined(DOPPEL_FPU_NO_HOST)

constexpr uint32_t kMxcsrDefaultMask = 0xffc0;  // everything but the six flag bits
constexpr uint32_t kMxcsrDefault = 0x1f80;      // RNE, exceptions masked, FTZ=DAZ=0
constexpr uint32_t kMxcsrPE = 0x20;             // precision (inexact) flag

inline bool normal32(uint32_t x) {
  const uint32_t e = x & 0x7f800000u;
  return e != 0 && e != 0x7f800000u;
}
inline bool normal64(uint64_t x) {
  const uint64_t e = x & 0x7ff0000000000000ull;
  return e != 0 && e != 0x7ff0000000000000ull;
}
// Finite and |x| > smallest normal.
inline bool safe_result32(uint32_t x) {
  const uint32_t m = x & 0x7fffffffu;
  return m > 0x00800000u && m < 0x7f800000u;
}
inline bool safe_result64(uint64_t x) {
  const uint64_t m = x & 0x7fffffffffffffffull;
  return m > 0x0010000000000000ull && m < 0x7ff0000000000000ull;
}

// Sums of normal numbers that are tiny are exact (IEEE 754 binary formats have gradual
// underflow), so a zero sum is an exact cancellation: +0 in RNE, no flags. The host agrees.
inline bool safe_sum32(uint32_t x) { return x == 0 || safe_result32(x); }
inline bool safe_sum64(uint64_t x) { return x == 0 || safe_result64(x); }

inline bool mxcsr_default(uint32_t& csr) {
  asm volatile("stmxcsr %0" : "=m"(csr));
  return (csr & kMxcsrDefaultMask) == kMxcsrDefault;
}

// Every fast-path function takes kCheckEnv: true (the default) reads MXCSR on each call and
// falls back when it is not in its default state; false is for callers that hold a
// DefaultEnvScope (the interpreter, for the whole of a run), which saves that read.
template <bool kCheckEnv>
inline bool env_default(uint32_t& csr) {
  if constexpr (!kCheckEnv) {
    csr = kMxcsrDefault;
    return true;
  } else {
    return mxcsr_default(csr);
  }
}

// Puts MXCSR in its default state for the lifetime of the object (keeping the flag bits)
// and restores the previous value after.
class DefaultEnvScope {
 public:
  DefaultEnvScope() {
    asm volatile("stmxcsr %0" : "=m"(m_saved) : : "memory");
    const uint32_t v = kMxcsrDefault | (m_saved & 0x3f);
    asm volatile("ldmxcsr %0" : : "m"(v) : "memory");
  }
  ~DefaultEnvScope() { asm volatile("ldmxcsr %0" : : "m"(m_saved) : "memory"); }
  DefaultEnvScope(const DefaultEnvScope&) = delete;
  DefaultEnvScope& operator=(const DefaultEnvScope&) = delete;

 private:
  uint32_t m_saved = 0;
};

// Runs `INSN` (an SSE instruction "op src, dst") on x and y. When the caller's flags already
// hold NX (it passes the accumulated fflags), whether this operation is inexact cannot
// change them, so MXCSR's flags need not be cleared and read: the mode check suffices.
#define DOPPEL_FPU_HOST_BINOP(NAME, INSN, T, U, NORMAL, SAFE)                                   \
  template <bool kCheckEnv = true>                                                             \
  inline bool NAME(U a, U b, U& out, uint8_t& flags) {                                         \
    uint32_t csr = 0;                                                                          \
    if (!NORMAL(a) || !NORMAL(b) || !env_default<kCheckEnv>(csr)) return false;                \
    T x = std::bit_cast<T>(a);                                                                 \
    const T y = std::bit_cast<T>(b);                                                           \
    uint32_t after = 0;                                                                        \
    if ((flags & kNX) != 0) {                                                                  \
      asm(INSN " %[y], %[x]" : [x] "+x"(x) : [y] "x"(y));                                      \
    } else {                                                                                   \
      const uint32_t clean = csr & ~uint32_t{0x3f};                                            \
      asm volatile("ldmxcsr %[clean]\n\t" INSN " %[y], %[x]\n\tstmxcsr %[after]"              \
                   : [x] "+x"(x), [after] "=m"(after)                                          \
                   : [y] "x"(y), [clean] "m"(clean));                                          \
    }                                                                                          \
    const U r = std::bit_cast<U>(x);                                                           \
    if (!SAFE(r)) return false;                                                                \
    if ((after & kMxcsrPE) != 0) flags |= kNX;                                                 \
    out = r;                                                                                   \
    return true;                                                                               \
  }

DOPPEL_FPU_HOST_BINOP(f32_add_csr, "addss", float, uint32_t, normal32, safe_sum32)
DOPPEL_FPU_HOST_BINOP(f32_mul_csr, "mulss", float, uint32_t, normal32, safe_result32)
DOPPEL_FPU_HOST_BINOP(f32_div_csr, "divss", float, uint32_t, normal32, safe_result32)
DOPPEL_FPU_HOST_BINOP(f64_add_csr, "addsd", double, uint64_t, normal64, safe_sum64)
DOPPEL_FPU_HOST_BINOP(f64_mul_csr, "mulsd", double, uint64_t, normal64, safe_result64)
DOPPEL_FPU_HOST_BINOP(f64_div_csr, "divsd", double, uint64_t, normal64, safe_result64)
// sqrt: a positive normal operand (y = x; the instruction reads y and writes x).
DOPPEL_FPU_HOST_BINOP(f32_sqrt_impl, "sqrtss", float, uint32_t, normal32, safe_result32)
DOPPEL_FPU_HOST_BINOP(f64_sqrt_impl, "sqrtsd", double, uint64_t, normal64, safe_result64)
#undef DOPPEL_FPU_HOST_BINOP


// Writing MXCSR costs more than the operation, so add and mul find inexactness by exact
// error terms instead when they can (the MXCSR mode check stays: the error terms assume
// round-to-nearest-even, as do the results).
//
// add: Knuth's 2Sum gives err = (x + y) - s exactly in round-to-nearest when nothing
// overflows; with both |x|, |y| < 2^(emax-2) every intermediate stays below 2^(emax+1), so
// the sum is inexact iff err != 0.
template <class T, class U, U kBigExp, bool kCheckEnv>
inline bool add_2sum(U a, U b, U& out, uint8_t& flags, bool (*normal)(U), bool (*safe)(U)) {
  uint32_t csr = 0;
  constexpr U kExp = static_cast<U>(sizeof(U) == 4 ? 0x7f800000u : 0x7ff0000000000000ull);
  if (!normal(a) || !normal(b) || (a & kExp) >= kBigExp || (b & kExp) >= kBigExp ||
      !env_default<kCheckEnv>(csr)) {
    return false;
  }
  T x = std::bit_cast<T>(a);
  T y = std::bit_cast<T>(b);
  // The asm keeps the compiler from evaluating (or folding) before the mode check.
  asm("" : "+x"(x), "+x"(y));
  const T sum = x + y;
  const U r = std::bit_cast<U>(sum);
  if (!safe(r)) return false;
  if ((flags & kNX) == 0) {
    const T bb = sum - x;
    const T err = (x - (sum - bb)) + (y - bb);
    if (err != 0) flags |= kNX;
  }
  out = r;
  return true;
}
// Exponent fields at or above emax - 2 (biased) take the MXCSR path.
template <bool kCheckEnv = true>
inline bool f32_add(uint32_t a, uint32_t b, uint32_t& out, uint8_t& flags) {
  return add_2sum<float, uint32_t, uint32_t{127 + 127 - 2} << 23, kCheckEnv>(
             a, b, out, flags, normal32, safe_sum32) ||
         f32_add_csr<kCheckEnv>(a, b, out, flags);
}
template <bool kCheckEnv = true>
inline bool f64_add(uint64_t a, uint64_t b, uint64_t& out, uint8_t& flags) {
  return add_2sum<double, uint64_t, uint64_t{1023 + 1023 - 2} << 52, kCheckEnv>(
             a, b, out, flags, normal64, safe_sum64) ||
         f64_add_csr<kCheckEnv>(a, b, out, flags);
}

// binary64 -> binary32 (fcvt.s.d): a normal input whose rounded result is a safe normal.
// Widening back is exact, so the conversion was inexact iff the round trip differs.
template <bool kCheckEnv = true>
inline bool f64_to_f32(uint64_t a, uint32_t& out, uint8_t& flags) {
  uint32_t csr = 0;
  if (!normal64(a) || !env_default<kCheckEnv>(csr)) return false;
  double x = std::bit_cast<double>(a);
  asm("" : "+x"(x));
  const float y = static_cast<float>(x);
  const uint32_t r = std::bit_cast<uint32_t>(y);
  if (!safe_result32(r)) return false;
  if (static_cast<double>(y) != x) flags |= kNX;
  out = r;
  return true;
}

// Fused multiply-add needs the FMA3 extension; GCC's runtime CPU check decides once. The
// instruction is VEX-encoded but 128-bit only, so no AVX/SSE transition penalty arises.
inline bool host_has_fma() {
  static const bool has = __builtin_cpu_supports("fma") != 0;
  return has;
}

// mul: with FMA3, err = x*y - p exactly whenever e_x + e_y >= emin + p - 1 (the error is
// then a multiple of the smallest subnormal and below half an ulp of p), so the product is
// inexact iff err != 0. Biased: Ex + Ey >= bias + precision.
template <class T, class U, int kMinExpSum, bool kCheckEnv>
inline bool mul_err(U a, U b, U& out, uint8_t& flags, bool (*normal)(U), bool (*safe)(U)) {
  uint32_t csr = 0;
  constexpr int kFracBits = sizeof(U) == 4 ? 23 : 52;
  constexpr U kExpField = static_cast<U>(sizeof(U) == 4 ? 0xff : 0x7ff);
  if (!normal(a) || !normal(b)) return false;
  const int exp_sum = static_cast<int>((a >> kFracBits) & kExpField) +
                      static_cast<int>((b >> kFracBits) & kExpField);
  if (exp_sum < kMinExpSum || !host_has_fma() || !env_default<kCheckEnv>(csr)) return false;
  T x = std::bit_cast<T>(a);
  T y = std::bit_cast<T>(b);
  asm("" : "+x"(x), "+x"(y));
  const T p = x * y;
  const U r = std::bit_cast<U>(p);
  if (!safe(r)) return false;
  if ((flags & kNX) == 0) {
    T err = p;
    if constexpr (sizeof(U) == 4) {
      asm("vfmsub231ss %[y], %[x], %[e]" : [e] "+x"(err) : [x] "x"(x), [y] "x"(y));
    } else {
      asm("vfmsub231sd %[y], %[x], %[e]" : [e] "+x"(err) : [x] "x"(x), [y] "x"(y));
    }
    if (err != 0) flags |= kNX;  // err = x*y - p, rounded once: exact here
  }
  out = r;
  return true;
}
template <bool kCheckEnv = true>
inline bool f32_mul(uint32_t a, uint32_t b, uint32_t& out, uint8_t& flags) {
  return mul_err<float, uint32_t, 127 + 24, kCheckEnv>(a, b, out, flags, normal32,
                                                      safe_result32) ||
         f32_mul_csr<kCheckEnv>(a, b, out, flags);
}
template <bool kCheckEnv = true>
inline bool f64_mul(uint64_t a, uint64_t b, uint64_t& out, uint8_t& flags) {
  return mul_err<double, uint64_t, 1023 + 53, kCheckEnv>(a, b, out, flags, normal64,
                                                         safe_result64) ||
         f64_mul_csr<kCheckEnv>(a, b, out, flags);
}

// div and sqrt: with FMA3 the residual is exact under exponent conditions like mul's, and
// the result is inexact iff it is nonzero.
//   div: r = x - q*y is a multiple of 2^(e_q+e_y-2(p-1)) below 2^(e_q+e_y-(p-1)), so it
//        has <= p bits and is representable when e_q + e_y >= emin + p - 1.
//   sqrt: r = x - s*s is a multiple of 2^(2e_s-2(p-1)) below 2^(2e_s+2-p), representable
//        when 2e_s >= emin + p - 1.
// Biased: Eq + Ey >= bias + p, and 2Es >= bias + p.
template <class U>
inline int biased_exp(U v) {
  constexpr int kFracBits = sizeof(U) == 4 ? 23 : 52;
  constexpr U kExpField = static_cast<U>(sizeof(U) == 4 ? 0xff : 0x7ff);
  return static_cast<int>((v >> kFracBits) & kExpField);
}

template <class T, class U, int kMinExpSum, bool kCheckEnv>
inline bool div_residual(U a, U b, U& out, uint8_t& flags, bool (*normal)(U), bool (*safe)(U)) {
  uint32_t csr = 0;
  if (!normal(a) || !normal(b) || !host_has_fma() || !env_default<kCheckEnv>(csr)) return false;
  T x = std::bit_cast<T>(a);
  T y = std::bit_cast<T>(b);
  asm("" : "+x"(x), "+x"(y));
  const T q = x / y;
  const U r = std::bit_cast<U>(q);
  if (!safe(r) || biased_exp(r) + biased_exp(b) < kMinExpSum) return false;
  if ((flags & kNX) == 0) {
    T rem = x;
    if constexpr (sizeof(U) == 4) {
      asm("vfnmadd231ss %[y], %[q], %[r]" : [r] "+x"(rem) : [q] "x"(q), [y] "x"(y));
    } else {
      asm("vfnmadd231sd %[y], %[q], %[r]" : [r] "+x"(rem) : [q] "x"(q), [y] "x"(y));
    }
    if (rem != 0) flags |= kNX;  // rem = x - q*y, exact here
  }
  out = r;
  return true;
}

template <class T, class U, int kMinExpSum, bool kCheckEnv>
inline bool sqrt_residual(U a, U& out, uint8_t& flags, bool (*normal)(U), bool (*safe)(U)) {
  uint32_t csr = 0;
  constexpr U kSignBit = static_cast<U>(U(1) << (sizeof(U) * 8 - 1));
  if (!normal(a) || (a & kSignBit) != 0 || !host_has_fma() || !env_default<kCheckEnv>(csr))
    return false;
  T x = std::bit_cast<T>(a);
  T sq = x;
  if constexpr (sizeof(U) == 4) {
    asm("sqrtss %[x], %[s]" : [s] "+x"(sq) : [x] "x"(x));
  } else {
    asm("sqrtsd %[x], %[s]" : [s] "+x"(sq) : [x] "x"(x));
  }
  const U r = std::bit_cast<U>(sq);
  if (!safe(r) || 2 * biased_exp(r) < kMinExpSum) return false;
  if ((flags & kNX) == 0) {
    T rem = x;
    if constexpr (sizeof(U) == 4) {
      asm("vfnmadd231ss %[s], %[s], %[r]" : [r] "+x"(rem) : [s] "x"(sq));
    } else {
      asm("vfnmadd231sd %[s], %[s], %[r]" : [r] "+x"(rem) : [s] "x"(sq));
    }
    if (rem != 0) flags |= kNX;  // rem = x - s*s, exact here
  }
  out = r;
  return true;
}

template <bool kCheckEnv = true>
inline bool f32_div(uint32_t a, uint32_t b, uint32_t& out, uint8_t& flags) {
  return div_residual<float, uint32_t, 127 + 24, kCheckEnv>(a, b, out, flags, normal32,
                                                           safe_result32) ||
         f32_div_csr<kCheckEnv>(a, b, out, flags);
}
template <bool kCheckEnv = true>
inline bool f64_div(uint64_t a, uint64_t b, uint64_t& out, uint8_t& flags) {
  return div_residual<double, uint64_t, 1023 + 53, kCheckEnv>(a, b, out, flags, normal64,
                                                              safe_result64) ||
         f64_div_csr<kCheckEnv>(a, b, out, flags);
}
template <bool kCheckEnv = true>
inline bool f32_sqrt(uint32_t a, uint32_t& out, uint8_t& flags) {
  if ((a & 0x80000000u) != 0) return false;
  return sqrt_residual<float, uint32_t, 127 + 24, kCheckEnv>(a, out, flags, normal32,
                                                            safe_result32) ||
         f32_sqrt_impl<kCheckEnv>(a, a, out, flags);
}
template <bool kCheckEnv = true>
inline bool f64_sqrt(uint64_t a, uint64_t& out, uint8_t& flags) {
  if ((a & 0x8000000000000000ull) != 0) return false;
  return sqrt_residual<double, uint64_t, 1023 + 53, kCheckEnv>(a, out, flags, normal64,
                                                               safe_result64) ||
         f64_sqrt_impl<kCheckEnv>(a, a, out, flags);
}

#define DOPPEL_FPU_HOST_FMA(NAME, INSN, T, U, NORMAL, SAFE)                                     \
  template <bool kCheckEnv = true>                                                             \
  inline bool NAME(U a, U b, U c, U& out, uint8_t& flags) {                                    \
    uint32_t csr = 0;                                                                          \
    if (!NORMAL(a) || !NORMAL(b) || !NORMAL(c) || !host_has_fma() ||                           \
        !env_default<kCheckEnv>(csr)) {                                                        \
      return false;                                                                            \
    }                                                                                          \
    const T x = std::bit_cast<T>(a);                                                           \
    const T y = std::bit_cast<T>(b);                                                           \
    T z = std::bit_cast<T>(c);                                                                 \
    uint32_t after = 0;                                                                        \
    if ((flags & kNX) != 0) {                                                                  \
      asm(INSN " %[y], %[x], %[z]" : [z] "+x"(z) : [x] "x"(x), [y] "x"(y));                    \
    } else {                                                                                   \
      const uint32_t clean = csr & ~uint32_t{0x3f};                                            \
      asm volatile("ldmxcsr %[clean]\n\t" INSN " %[y], %[x], %[z]\n\tstmxcsr %[after]"        \
                   : [z] "+x"(z), [after] "=m"(after)                                          \
                   : [x] "x"(x), [y] "x"(y), [clean] "m"(clean));                              \
    }                                                                                          \
    const U r = std::bit_cast<U>(z);                                                           \
    if (!SAFE(r)) return false;                                                                \
    if ((after & kMxcsrPE) != 0) flags |= kNX;                                                 \
    out = r;                                                                                   \
    return true;                                                                               \
  }

// AT&T operand order: vfmadd231 y, x, z computes z = x*y + z with one rounding.
DOPPEL_FPU_HOST_FMA(f32_fma, "vfmadd231ss", float, uint32_t, normal32, safe_result32)
DOPPEL_FPU_HOST_FMA(f64_fma, "vfmadd231sd", double, uint64_t, normal64, safe_result64)
#undef DOPPEL_FPU_HOST_FMA

constexpr bool kHostFastPath = true;

#else  // no host fast path on this build: always take the software path

template <bool kCheckEnv = true>
inline bool f32_add(uint32_t, uint32_t, uint32_t&, uint8_t&) { return false; }
template <bool kCheckEnv = true>
inline bool f32_mul(uint32_t, uint32_t, uint32_t&, uint8_t&) { return false; }
template <bool kCheckEnv = true>
inline bool f32_div(uint32_t, uint32_t, uint32_t&, uint8_t&) { return false; }
template <bool kCheckEnv = true>
inline bool f32_sqrt(uint32_t, uint32_t&, uint8_t&) { return false; }
template <bool kCheckEnv = true>
inline bool f64_add(uint64_t, uint64_t, uint64_t&, uint8_t&) { return false; }
template <bool kCheckEnv = true>
inline bool f64_mul(uint64_t, uint64_t, uint64_t&, uint8_t&) { return false; }
template <bool kCheckEnv = true>
inline bool f64_div(uint64_t, uint64_t, uint64_t&, uint8_t&) { return false; }
template <bool kCheckEnv = true>
inline bool f64_sqrt(uint64_t, uint64_t&, uint8_t&) { return false; }
template <bool kCheckEnv = true>
inline bool f32_fma(uint32_t, uint32_t, uint32_t, uint32_t&, uint8_t&) { return false; }
template <bool kCheckEnv = true>
inline bool f64_fma(uint64_t, uint64_t, uint64_t, uint64_t&, uint8_t&) { return false; }
template <bool kCheckEnv = true>
inline bool f64_to_f32(uint64_t, uint32_t&, uint8_t&) { return false; }

constexpr bool kHostFastPath = false;

class DefaultEnvScope {};

#endif

}  // namespace doppel::rv64::fpu::host
