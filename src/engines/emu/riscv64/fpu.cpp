// Software IEEE 754 binary32/binary64 for the RISC-V F and D extensions.
//
// Every operation computes the exact result (or the exact result truncated with a "sticky"
// bit jammed into the least significant bit, far below the rounding point) as an integer
// significand times a power of two, then rounds it once in round_pack(). Tininess is
// detected after rounding, as RISC-V specifies (unprivileged spec 11.2 / IEEE 754 7.5).
// A host fast path (fpu_host.h) answers the common round-to-nearest-even cases.
#include "engines/emu/riscv64/fpu.h"

#include <bit>
#include <cmath>

#include "engines/emu/riscv64/fpu_host.h"
#include "engines/emu/riscv64/fpu_soft.h"

namespace doppel::rv64::fpu {
namespace {

using u128 = unsigned __int128;

template <class U, int kExpBitsT, int kFracBitsT>
struct Format {
  using Bits = U;
  static constexpr int kExpBits = kExpBitsT;
  static constexpr int kFracBits = kFracBitsT;
  static constexpr int kP = kFracBits + 1;  // precision including the hidden bit
  static constexpr int kBias = (1 << (kExpBits - 1)) - 1;
  static constexpr int kEmax = kBias;
  static constexpr int kEmin = 1 - kBias;
  static constexpr U kSign = U(1) << (kExpBits + kFracBits);
  static constexpr U kFracMask = (U(1) << kFracBits) - 1;
  static constexpr U kExpMask = ((U(1) << kExpBits) - 1) << kFracBits;
  static constexpr U kInf = kExpMask;
  static constexpr U kQuietBit = U(1) << (kFracBits - 1);
  static constexpr U kCanonicalNaN = kExpMask | kQuietBit;
  static constexpr U kMaxFinite = kExpMask - 1;
};
using F32 = Format<uint32_t, 8, 23>;
using F64 = Format<uint64_t, 11, 52>;
static_assert(F32::kCanonicalNaN == kCanonicalNaN32);
static_assert(F64::kCanonicalNaN == kCanonicalNaN64);

template <class F>
constexpr bool is_nan(typename F::Bits x) {
  return (x & ~F::kSign) > F::kInf;
}
template <class F>
constexpr bool is_snan(typename F::Bits x) {
  return is_nan<F>(x) && (x & F::kQuietBit) == 0;
}
template <class F>
constexpr bool is_inf(typename F::Bits x) {
  return (x & ~F::kSign) == F::kInf;
}
template <class F>
constexpr bool is_zero(typename F::Bits x) {
  return (x & ~F::kSign) == 0;
}
template <class F>
constexpr bool sign_of(typename F::Bits x) {
  return (x & F::kSign) != 0;
}

// A finite nonzero value: (-1)^sign * sig * 2^exp.
struct Unpacked {
  bool sign;
  int exp;
  uint64_t sig;
};

template <class F>
Unpacked unpack(typename F::Bits x) {
  const bool sign = sign_of<F>(x);
  const int biased = static_cast<int>((x & F::kExpMask) >> F::kFracBits);
  const uint64_t frac = static_cast<uint64_t>(x & F::kFracMask);
  if (biased == 0) return {sign, F::kEmin - (F::kP - 1), frac};
  return {sign, biased - F::kBias - (F::kP - 1), frac | (uint64_t{1} << (F::kP - 1))};
}

int msb_index(u128 v) {  // v != 0
  const auto hi = static_cast<uint64_t>(v >> 64);
  if (hi != 0) return 127 - std::countl_zero(hi);
  return 63 - std::countl_zero(static_cast<uint64_t>(v));
}

u128 shift_right_jam(u128 v, int d) {
  if (d <= 0) return v;
  if (d >= 128) return v != 0 ? 1 : 0;
  const bool lost = (v << (128 - d)) != 0;
  return (v >> d) | (lost ? 1 : 0);
}

// sig >> shift rounded per rm (shift <= 0 shifts left exactly). The caller guarantees the
// result fits in 64 bits.
uint64_t shift_round(u128 sig, int shift, bool sign, Rounding rm, bool& inexact) {
  if (shift <= 0) {
    inexact = false;
    return static_cast<uint64_t>(sig << -shift);
  }
  u128 kept = 0;
  bool round_bit = false;
  bool sticky = false;
  if (shift > 128) {
    sticky = sig != 0;
  } else if (shift == 128) {
    round_bit = (sig >> 127) != 0;
    sticky = (sig << 1) != 0;
  } else {
    kept = sig >> shift;
    const u128 half = u128{1} << (shift - 1);
    round_bit = (sig & half) != 0;
    sticky = (sig & (half - 1)) != 0;
  }
  inexact = round_bit || sticky;
  bool up = false;
  switch (rm) {
    case Rounding::kRNE: up = round_bit && (sticky || (kept & 1) != 0); break;
    case Rounding::kRTZ: up = false; break;
    case Rounding::kRDN: up = inexact && sign; break;
    case Rounding::kRUP: up = inexact && !sign; break;
    case Rounding::kRMM: up = round_bit; break;
  }
  return static_cast<uint64_t>(kept) + (up ? 1 : 0);
}

template <class F>
typename F::Bits overflow(bool sign, Rounding rm, uint8_t& flags) {
  flags |= kOF | kNX;
  bool to_inf = true;
  switch (rm) {
    case Rounding::kRNE:
    case Rounding::kRMM: to_inf = true; break;
    case Rounding::kRTZ: to_inf = false; break;
    case Rounding::kRDN: to_inf = sign; break;
    case Rounding::kRUP: to_inf = !sign; break;
  }
  return (sign ? F::kSign : 0) | (to_inf ? F::kInf : F::kMaxFinite);
}

// Rounds (-1)^sign * sig * 2^exp (sig != 0; its lsb may be a jammed sticky bit as long as
// it lies at least two bits below the rounding point) to format F.
template <class F>
typename F::Bits round_pack(bool sign, int exp, u128 sig, Rounding rm, uint8_t& flags) {
  using U = typename F::Bits;
  const U s = sign ? F::kSign : 0;
  const int msb = msb_index(sig);
  int e = exp + msb;  // exponent of the leading bit
  bool inexact = false;
  if (e >= F::kEmin) {
    uint64_t kept = shift_round(sig, msb - (F::kP - 1), sign, rm, inexact);
    if ((kept >> F::kP) != 0) {  // rounded up to the next binade
      kept >>= 1;
      ++e;
    }
    if (e > F::kEmax) return overflow<F>(sign, rm, flags);
    if (inexact) flags |= kNX;
    return s | (static_cast<U>(e + F::kBias) << F::kFracBits) | (static_cast<U>(kept) & F::kFracMask);
  }
  // Below the normal range: round at the fixed subnormal quantum 2^(emin-(p-1)).
  const int shift = (F::kEmin - (F::kP - 1)) - exp;
  const uint64_t kept = shift_round(sig, shift, sign, rm, inexact);
  if (inexact) {
    flags |= kNX;
    // Tiny after rounding: would the result, rounded to p bits with an unbounded exponent,
    // still be below 2^emin? Only a value in [2^(emin-1), 2^emin) can round up to 2^emin.
    bool tiny = true;
    if (e == F::kEmin - 1) {
      bool unused = false;
      tiny = (shift_round(sig, shift - 1, sign, rm, unused) >> F::kP) == 0;
    }
    if (tiny) flags |= kUF;
  }
  // kept == 2^(p-1) encodes the smallest normal number, as the bit layout intends.
  return s | static_cast<U>(kept);
}

// Value (-1)^sign * sig * 2^exp with a 128-bit significand.
struct Wide {
  bool sign;
  int exp;
  u128 sig;
};

Wide normalize125(Wide w) {
  const int sh = 125 - msb_index(w.sig);
  w.sig <<= sh;
  w.exp -= sh;
  return w;
}

// x + y for nonzero x, y. The operand with the smaller exponent is shifted right with the
// bits it loses jammed into a sticky lsb. Callers place the significands high in the 128
// bits so that a shift which loses bits leaves the sum with far more than p + 2 bits above
// the sticky bit (see add() and add_wide()). sig == 0 on exact cancellation.
Wide add_aligned(Wide x, Wide y) {
  if (x.exp < y.exp) std::swap(x, y);
  y.sig = shift_right_jam(y.sig, x.exp - y.exp);
  if (x.sign == y.sign) return {x.sign, x.exp, x.sig + y.sig};
  if (x.sig >= y.sig) return {x.sign, x.exp, x.sig - y.sig};
  return {y.sign, x.exp, y.sig - x.sig};
}

// For fma: both leading bits at 125. Inputs have at most 106 significant bits, so shifts
// of up to 19 bits are exact and a lossy one leaves the sum >= 123 bits above the sticky bit.
Wide add_wide(Wide x, Wide y) {
  return add_aligned(normalize125(x), normalize125(y));
}

template <class F>
typename F::Bits zero_of(bool sign) {
  return sign ? F::kSign : 0;
}

// Sign of an exact zero sum of two operands with signs sa and sb (IEEE 754 6.3).
bool zero_sum_sign(bool sa, bool sb, Rounding rm) {
  if (sa == sb) return sa;
  return rm == Rounding::kRDN;
}

template <class F>
typename F::Bits add(typename F::Bits a, typename F::Bits b, Rounding rm, uint8_t& flags) {
  if (is_nan<F>(a) || is_nan<F>(b)) {
    if (is_snan<F>(a) || is_snan<F>(b)) flags |= kNV;
    return F::kCanonicalNaN;
  }
  if (is_inf<F>(a)) {
    if (is_inf<F>(b) && sign_of<F>(a) != sign_of<F>(b)) {
      flags |= kNV;
      return F::kCanonicalNaN;
    }
    return a;
  }
  if (is_inf<F>(b)) return b;
  if (is_zero<F>(a)) {
    if (is_zero<F>(b)) return zero_of<F>(zero_sum_sign(sign_of<F>(a), sign_of<F>(b), rm));
    return b;
  }
  if (is_zero<F>(b)) return a;
  const Unpacked ua = unpack<F>(a);
  const Unpacked ub = unpack<F>(b);
  // Fixed placement: a normal significand's leading bit lands at bit 122. Subnormals sit
  // lower but have the smallest exponent, so the operand with the larger exponent is normal.
  constexpr int kPlace = 122 - (F::kP - 1);
  const Wide sum = add_aligned({ua.sign, ua.exp - kPlace, u128{ua.sig} << kPlace},
                               {ub.sign, ub.exp - kPlace, u128{ub.sig} << kPlace});
  if (sum.sig == 0) return zero_of<F>(rm == Rounding::kRDN);
  return round_pack<F>(sum.sign, sum.exp, sum.sig, rm, flags);
}

template <class F>
typename F::Bits mul(typename F::Bits a, typename F::Bits b, Rounding rm, uint8_t& flags) {
  if (is_nan<F>(a) || is_nan<F>(b)) {
    if (is_snan<F>(a) || is_snan<F>(b)) flags |= kNV;
    return F::kCanonicalNaN;
  }
  const bool sign = sign_of<F>(a) != sign_of<F>(b);
  if (is_inf<F>(a) || is_inf<F>(b)) {
    if (is_zero<F>(a) || is_zero<F>(b)) {
      flags |= kNV;
      return F::kCanonicalNaN;
    }
    return zero_of<F>(sign) | F::kInf;
  }
  if (is_zero<F>(a) || is_zero<F>(b)) return zero_of<F>(sign);
  const Unpacked ua = unpack<F>(a);
  const Unpacked ub = unpack<F>(b);
  return round_pack<F>(sign, ua.exp + ub.exp, u128{ua.sig} * ub.sig, rm, flags);
}

template <class F>
typename F::Bits div(typename F::Bits a, typename F::Bits b, Rounding rm, uint8_t& flags) {
  if (is_nan<F>(a) || is_nan<F>(b)) {
    if (is_snan<F>(a) || is_snan<F>(b)) flags |= kNV;
    return F::kCanonicalNaN;
  }
  const bool sign = sign_of<F>(a) != sign_of<F>(b);
  if (is_inf<F>(a)) {
    if (is_inf<F>(b)) {
      flags |= kNV;
      return F::kCanonicalNaN;
    }
    return zero_of<F>(sign) | F::kInf;
  }
  if (is_inf<F>(b)) return zero_of<F>(sign);
  if (is_zero<F>(b)) {
    if (is_zero<F>(a)) {
      flags |= kNV;
      return F::kCanonicalNaN;
    }
    flags |= kDZ;
    return zero_of<F>(sign) | F::kInf;
  }
  if (is_zero<F>(a)) return zero_of<F>(sign);
  Unpacked ua = unpack<F>(a);
  const Unpacked ub = unpack<F>(b);
  // Dividend's leading bit to bit 63, then (dividend << 64) / divisor: the divisor has at
  // most 53 bits, so the quotient has >= 74 bits, far more than p + 2.
  const int sh = std::countl_zero(ua.sig);
  ua.sig <<= sh;
  ua.exp -= sh;
  const u128 num = u128{ua.sig} << 64;
  u128 q = num / ub.sig;
  if (q * ub.sig != num) q |= 1;
  return round_pack<F>(sign, ua.exp - 64 - ub.exp, q, rm, flags);
}

// floor(sqrt(x)) for x < 2^126.
uint64_t isqrt128(u128 x) {
  auto r = static_cast<u128>(std::sqrt(static_cast<double>(x)));
  if (r != 0) r = (r + x / r) / 2;  // one Newton step: the estimate is now within 1
  while (r * r > x) --r;
  while ((r + 1) * (r + 1) <= x) ++r;
  return static_cast<uint64_t>(r);
}

template <class F>
typename F::Bits sqrt(typename F::Bits a, Rounding rm, uint8_t& flags) {
  if (is_nan<F>(a)) {
    if (is_snan<F>(a)) flags |= kNV;
    return F::kCanonicalNaN;
  }
  if (is_zero<F>(a)) return a;  // sqrt(-0) = -0
  if (sign_of<F>(a)) {
    flags |= kNV;
    return F::kCanonicalNaN;
  }
  if (is_inf<F>(a)) return a;
  const Unpacked ua = unpack<F>(a);
  // Radicand with its leading bit at 124 or 125 and an even exponent: the root has 63
  // bits, far more than p + 2.
  int sh = 124 - msb_index(ua.sig);
  if (((ua.exp - sh) & 1) != 0) ++sh;
  const u128 radicand = u128{ua.sig} << sh;
  const int e = ua.exp - sh;
  const uint64_t root = isqrt128(radicand);
  u128 r = root;
  if (u128{root} * root != radicand) r |= 1;
  return round_pack<F>(false, e / 2, r, rm, flags);
}

template <class F>
typename F::Bits fma(typename F::Bits a, typename F::Bits b, typename F::Bits c, Rounding rm,
                     uint8_t& flags) {
  const bool inf_times_zero =
      (is_inf<F>(a) && is_zero<F>(b)) || (is_zero<F>(a) && is_inf<F>(b));
  if (is_nan<F>(a) || is_nan<F>(b) || is_nan<F>(c)) {
    // RISC-V raises NV for inf*0 even when the addend is a quiet NaN (spec 11.6).
    if (is_snan<F>(a) || is_snan<F>(b) || is_snan<F>(c) || inf_times_zero) flags |= kNV;
    return F::kCanonicalNaN;
  }
  if (inf_times_zero) {
    flags |= kNV;
    return F::kCanonicalNaN;
  }
  const bool psign = sign_of<F>(a) != sign_of<F>(b);
  if (is_inf<F>(a) || is_inf<F>(b)) {
    if (is_inf<F>(c) && sign_of<F>(c) != psign) {
      flags |= kNV;
      return F::kCanonicalNaN;
    }
    return zero_of<F>(psign) | F::kInf;
  }
  if (is_inf<F>(c)) return c;
  if (is_zero<F>(a) || is_zero<F>(b)) {
    if (is_zero<F>(c)) return zero_of<F>(zero_sum_sign(psign, sign_of<F>(c), rm));
    return c;
  }
  const Unpacked ua = unpack<F>(a);
  const Unpacked ub = unpack<F>(b);
  const Wide product{psign, ua.exp + ub.exp, u128{ua.sig} * ub.sig};
  if (is_zero<F>(c)) return round_pack<F>(product.sign, product.exp, product.sig, rm, flags);
  const Unpacked uc = unpack<F>(c);
  const Wide sum = add_wide(product, {uc.sign, uc.exp, uc.sig});
  if (sum.sig == 0) return zero_of<F>(rm == Rounding::kRDN);
  return round_pack<F>(sum.sign, sum.exp, sum.sig, rm, flags);
}

// Ordering of non-NaN values with -0 < +0 (fmin/fmax).
template <class F>
bool less_signed(typename F::Bits a, typename F::Bits b) {
  const bool sa = sign_of<F>(a);
  const bool sb = sign_of<F>(b);
  if (sa != sb) return sa;
  return sa ? a > b : a < b;
}

template <class F>
typename F::Bits min_max(typename F::Bits a, typename F::Bits b, bool want_max, uint8_t& flags) {
  if (is_snan<F>(a) || is_snan<F>(b)) flags |= kNV;
  const bool an = is_nan<F>(a);
  const bool bn = is_nan<F>(b);
  if (an && bn) return F::kCanonicalNaN;
  if (an) return b;
  if (bn) return a;
  const bool a_less = less_signed<F>(a, b);
  return (a_less != want_max) ? a : b;
}

template <class F>
bool feq(typename F::Bits a, typename F::Bits b, uint8_t& flags) {
  if (is_nan<F>(a) || is_nan<F>(b)) {
    if (is_snan<F>(a) || is_snan<F>(b)) flags |= kNV;
    return false;
  }
  return a == b || (is_zero<F>(a) && is_zero<F>(b));
}

template <class F>
bool flt(typename F::Bits a, typename F::Bits b, uint8_t& flags) {
  if (is_nan<F>(a) || is_nan<F>(b)) {
    flags |= kNV;
    return false;
  }
  if (is_zero<F>(a) && is_zero<F>(b)) return false;
  return less_signed<F>(a, b);
}

template <class F>
bool fle(typename F::Bits a, typename F::Bits b, uint8_t& flags) {
  if (is_nan<F>(a) || is_nan<F>(b)) {
    flags |= kNV;
    return false;
  }
  if (is_zero<F>(a) && is_zero<F>(b)) return true;
  return a == b || less_signed<F>(a, b);
}

// fclass (spec table 11.5): bit 0 -inf, 1 -normal, 2 -subnormal, 3 -0, 4 +0, 5 +subnormal,
// 6 +normal, 7 +inf, 8 signaling NaN, 9 quiet NaN.
template <class F>
uint32_t classify(typename F::Bits a) {
  if (is_nan<F>(a)) return is_snan<F>(a) ? 1u << 8 : 1u << 9;
  const bool neg = sign_of<F>(a);
  unsigned bit = 0;
  if (is_inf<F>(a)) {
    bit = neg ? 0 : 7;
  } else if (is_zero<F>(a)) {
    bit = neg ? 3 : 4;
  } else if ((a & F::kExpMask) == 0) {
    bit = neg ? 2 : 5;
  } else {
    bit = neg ? 1 : 6;
  }
  return 1u << bit;
}

// Float to integer of `width` bits, saturating per spec table 11.4. Returns the two's
// complement bit pattern in the low `width` bits.
template <class F>
uint64_t to_int(typename F::Bits a, Rounding rm, uint8_t& flags, bool is_signed, int width) {
  const uint64_t max_pos = is_signed ? (uint64_t{1} << (width - 1)) - 1
                                     : (width == 64 ? ~uint64_t{0} : (uint64_t{1} << width) - 1);
  const uint64_t neg_limit = is_signed ? uint64_t{1} << (width - 1) : 0;  // largest |negative|
  const uint64_t min_bits = is_signed ? uint64_t{0} - neg_limit : 0;
  if (is_nan<F>(a)) {
    flags |= kNV;
    return max_pos;
  }
  const bool sign = sign_of<F>(a);
  if (is_inf<F>(a)) {
    flags |= kNV;
    return sign ? min_bits : max_pos;
  }
  if (is_zero<F>(a)) return 0;
  const Unpacked ua = unpack<F>(a);
  bool inexact = false;
  u128 mag = 0;
  if (ua.exp >= 0) {
    if (ua.exp > 64) {
      flags |= kNV;
      return sign ? min_bits : max_pos;
    }
    mag = u128{ua.sig} << ua.exp;
  } else {
    mag = shift_round(ua.sig, -ua.exp, sign, rm, inexact);
  }
  if (!sign) {
    if (mag > max_pos) {
      flags |= kNV;
      return max_pos;
    }
  } else if (mag > neg_limit) {
    flags |= kNV;
    return min_bits;
  }
  if (inexact) flags |= kNX;
  const auto m = static_cast<uint64_t>(mag);
  return sign ? uint64_t{0} - m : m;
}

template <class F>
typename F::Bits from_int(bool sign, uint64_t mag, Rounding rm, uint8_t& flags) {
  if (mag == 0) return 0;
  return round_pack<F>(sign, 0, mag, rm, flags);
}

uint64_t abs_u64(int64_t v) {
  return v < 0 ? uint64_t{0} - static_cast<uint64_t>(v) : static_cast<uint64_t>(v);
}

// Between formats: NaN -> canonical (NV on sNaN), else exact value rounded once.
template <class From, class To>
typename To::Bits convert(typename From::Bits a, Rounding rm, uint8_t& flags) {
  if (is_nan<From>(a)) {
    if (is_snan<From>(a)) flags |= kNV;
    return To::kCanonicalNaN;
  }
  const bool sign = sign_of<From>(a);
  if (is_inf<From>(a)) return zero_of<To>(sign) | To::kInf;
  if (is_zero<From>(a)) return zero_of<To>(sign);
  const Unpacked ua = unpack<From>(a);
  return round_pack<To>(sign, ua.exp, ua.sig, rm, flags);
}

}  // namespace

namespace soft {
uint32_t f32_add(uint32_t a, uint32_t b, Rounding rm, uint8_t& flags) {
  return add<F32>(a, b, rm, flags);
}
uint32_t f32_mul(uint32_t a, uint32_t b, Rounding rm, uint8_t& flags) {
  return mul<F32>(a, b, rm, flags);
}
uint32_t f32_div(uint32_t a, uint32_t b, Rounding rm, uint8_t& flags) {
  return div<F32>(a, b, rm, flags);
}
uint32_t f32_sqrt(uint32_t a, Rounding rm, uint8_t& flags) { return sqrt<F32>(a, rm, flags); }
uint64_t f64_add(uint64_t a, uint64_t b, Rounding rm, uint8_t& flags) {
  return add<F64>(a, b, rm, flags);
}
uint64_t f64_mul(uint64_t a, uint64_t b, Rounding rm, uint8_t& flags) {
  return mul<F64>(a, b, rm, flags);
}
uint64_t f64_div(uint64_t a, uint64_t b, Rounding rm, uint8_t& flags) {
  return div<F64>(a, b, rm, flags);
}
uint64_t f64_sqrt(uint64_t a, Rounding rm, uint8_t& flags) { return sqrt<F64>(a, rm, flags); }
uint32_t f32_fma(uint32_t a, uint32_t b, uint32_t c, Rounding rm, uint8_t& flags) {
  return fma<F32>(a, b, c, rm, flags);
}
uint64_t f64_fma(uint64_t a, uint64_t b, uint64_t c, Rounding rm, uint8_t& flags) {
  return fma<F64>(a, b, c, rm, flags);
}
uint32_t f64_to_f32(uint64_t a, Rounding rm, uint8_t& flags) {
  return convert<F64, F32>(a, rm, flags);
}
}  // namespace soft

// ---- binary32 ----
uint32_t f32_add(uint32_t a, uint32_t b, Rounding rm, uint8_t& flags) {
  uint32_t r = 0;
  if (rm == Rounding::kRNE && host::f32_add(a, b, r, flags)) return r;
  return add<F32>(a, b, rm, flags);
}
uint32_t f32_sub(uint32_t a, uint32_t b, Rounding rm, uint8_t& flags) {
  return f32_add(a, b ^ F32::kSign, rm, flags);
}
uint32_t f32_mul(uint32_t a, uint32_t b, Rounding rm, uint8_t& flags) {
  uint32_t r = 0;
  if (rm == Rounding::kRNE && host::f32_mul(a, b, r, flags)) return r;
  return mul<F32>(a, b, rm, flags);
}
uint32_t f32_div(uint32_t a, uint32_t b, Rounding rm, uint8_t& flags) {
  uint32_t r = 0;
  if (rm == Rounding::kRNE && host::f32_div(a, b, r, flags)) return r;
  return div<F32>(a, b, rm, flags);
}
uint32_t f32_sqrt(uint32_t a, Rounding rm, uint8_t& flags) {
  uint32_t r = 0;
  if (rm == Rounding::kRNE && host::f32_sqrt(a, r, flags)) return r;
  return sqrt<F32>(a, rm, flags);
}
uint32_t f32_fma(uint32_t a, uint32_t b, uint32_t c, Rounding rm, uint8_t& flags) {
  uint32_t r = 0;
  if (rm == Rounding::kRNE && host::f32_fma(a, b, c, r, flags)) return r;
  return fma<F32>(a, b, c, rm, flags);
}
uint32_t f32_min(uint32_t a, uint32_t b, uint8_t& flags) { return min_max<F32>(a, b, false, flags); }
uint32_t f32_max(uint32_t a, uint32_t b, uint8_t& flags) { return min_max<F32>(a, b, true, flags); }
bool f32_eq(uint32_t a, uint32_t b, uint8_t& flags) { return feq<F32>(a, b, flags); }
bool f32_lt(uint32_t a, uint32_t b, uint8_t& flags) { return flt<F32>(a, b, flags); }
bool f32_le(uint32_t a, uint32_t b, uint8_t& flags) { return fle<F32>(a, b, flags); }
uint32_t f32_classify(uint32_t a) { return classify<F32>(a); }
int32_t f32_to_i32(uint32_t a, Rounding rm, uint8_t& flags) {
  return static_cast<int32_t>(static_cast<uint32_t>(to_int<F32>(a, rm, flags, true, 32)));
}
uint32_t f32_to_u32(uint32_t a, Rounding rm, uint8_t& flags) {
  return static_cast<uint32_t>(to_int<F32>(a, rm, flags, false, 32));
}
int64_t f32_to_i64(uint32_t a, Rounding rm, uint8_t& flags) {
  return static_cast<int64_t>(to_int<F32>(a, rm, flags, true, 64));
}
uint64_t f32_to_u64(uint32_t a, Rounding rm, uint8_t& flags) {
  return to_int<F32>(a, rm, flags, false, 64);
}
uint32_t i32_to_f32(int32_t a, Rounding rm, uint8_t& flags) {
  return from_int<F32>(a < 0, abs_u64(a), rm, flags);
}
uint32_t u32_to_f32(uint32_t a, Rounding rm, uint8_t& flags) {
  return from_int<F32>(false, a, rm, flags);
}
uint32_t i64_to_f32(int64_t a, Rounding rm, uint8_t& flags) {
  return from_int<F32>(a < 0, abs_u64(a), rm, flags);
}
uint32_t u64_to_f32(uint64_t a, Rounding rm, uint8_t& flags) {
  return from_int<F32>(false, a, rm, flags);
}

// ---- binary64 ----
uint64_t f64_add(uint64_t a, uint64_t b, Rounding rm, uint8_t& flags) {
  uint64_t r = 0;
  if (rm == Rounding::kRNE && host::f64_add(a, b, r, flags)) return r;
  return add<F64>(a, b, rm, flags);
}
uint64_t f64_sub(uint64_t a, uint64_t b, Rounding rm, uint8_t& flags) {
  return f64_add(a, b ^ F64::kSign, rm, flags);
}
uint64_t f64_mul(uint64_t a, uint64_t b, Rounding rm, uint8_t& flags) {
  uint64_t r = 0;
  if (rm == Rounding::kRNE && host::f64_mul(a, b, r, flags)) return r;
  return mul<F64>(a, b, rm, flags);
}
uint64_t f64_div(uint64_t a, uint64_t b, Rounding rm, uint8_t& flags) {
  uint64_t r = 0;
  if (rm == Rounding::kRNE && host::f64_div(a, b, r, flags)) return r;
  return div<F64>(a, b, rm, flags);
}
uint64_t f64_sqrt(uint64_t a, Rounding rm, uint8_t& flags) {
  uint64_t r = 0;
  if (rm == Rounding::kRNE && host::f64_sqrt(a, r, flags)) return r;
  return sqrt<F64>(a, rm, flags);
}
uint64_t f64_fma(uint64_t a, uint64_t b, uint64_t c, Rounding rm, uint8_t& flags) {
  uint64_t r = 0;
  if (rm == Rounding::kRNE && host::f64_fma(a, b, c, r, flags)) return r;
  return fma<F64>(a, b, c, rm, flags);
}
uint64_t f64_min(uint64_t a, uint64_t b, uint8_t& flags) { return min_max<F64>(a, b, false, flags); }
uint64_t f64_max(uint64_t a, uint64_t b, uint8_t& flags) { return min_max<F64>(a, b, true, flags); }
bool f64_eq(uint64_t a, uint64_t b, uint8_t& flags) { return feq<F64>(a, b, flags); }
bool f64_lt(uint64_t a, uint64_t b, uint8_t& flags) { return flt<F64>(a, b, flags); }
bool f64_le(uint64_t a, uint64_t b, uint8_t& flags) { return fle<F64>(a, b, flags); }
uint32_t f64_classify(uint64_t a) { return classify<F64>(a); }
int32_t f64_to_i32(uint64_t a, Rounding rm, uint8_t& flags) {
  return static_cast<int32_t>(static_cast<uint32_t>(to_int<F64>(a, rm, flags, true, 32)));
}
uint32_t f64_to_u32(uint64_t a, Rounding rm, uint8_t& flags) {
  return static_cast<uint32_t>(to_int<F64>(a, rm, flags, false, 32));
}
int64_t f64_to_i64(uint64_t a, Rounding rm, uint8_t& flags) {
  return static_cast<int64_t>(to_int<F64>(a, rm, flags, true, 64));
}
uint64_t f64_to_u64(uint64_t a, Rounding rm, uint8_t& flags) {
  return to_int<F64>(a, rm, flags, false, 64);
}
uint64_t i32_to_f64(int32_t a, Rounding rm, uint8_t& flags) {
  return from_int<F64>(a < 0, abs_u64(a), rm, flags);
}
uint64_t u32_to_f64(uint32_t a, Rounding rm, uint8_t& flags) {
  return from_int<F64>(false, a, rm, flags);
}
uint64_t i64_to_f64(int64_t a, Rounding rm, uint8_t& flags) {
  return from_int<F64>(a < 0, abs_u64(a), rm, flags);
}
uint64_t u64_to_f64(uint64_t a, Rounding rm, uint8_t& flags) {
  return from_int<F64>(false, a, rm, flags);
}

// ---- between formats ----
uint64_t f32_to_f64(uint32_t a, uint8_t& flags) {
  const uint32_t biased = (a >> 23) & 0xff;
  if (biased != 0 && biased != 0xff) {  // normal: rebias the exponent, widen the fraction
    return (uint64_t{a >> 31} << 63) | (uint64_t{biased + (1023 - 127)} << 52) |
           (uint64_t{a & 0x7fffffu} << 29);
  }
  return convert<F32, F64>(a, Rounding::kRNE, flags);
}
uint32_t f64_to_f32(uint64_t a, Rounding rm, uint8_t& flags) {
  uint32_t r = 0;
  if (rm == Rounding::kRNE && host::f64_to_f32(a, r, flags)) return r;
  return convert<F64, F32>(a, rm, flags);
}

}  // namespace doppel::rv64::fpu
