// Differential fuzzer for fpu.cpp: every operation against the host's SSE/FMA unit in RNE,
// RTZ, RDN and RUP (results modulo NaN canonicalization, all five flags), the host fast
// path against the software path, and RMM against its invariants (the RNE result unless
// that was an even tie, then the neighbour away from zero; flags equal to RNE's).
// Input: one selector byte, then up to three 8-byte operands.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "engines/emu/riscv64/fpu.h"
#include "engines/emu/riscv64/fpu_soft.h"

#if defined(__x86_64__) && defined(__SSE2__)

namespace {

using namespace doppel::rv64::fpu;

constexpr uint32_t kRc[4] = {0u << 13, 3u << 13, 1u << 13, 2u << 13};  // RNE RTZ RDN RUP
constexpr uint32_t kDefault = 0x1f80;
constexpr Rounding kModes[5] = {Rounding::kRNE, Rounding::kRTZ, Rounding::kRDN, Rounding::kRUP,
                                Rounding::kRMM};

void set_mxcsr(uint32_t v) { asm volatile("ldmxcsr %0" : : "m"(v) : "memory"); }
uint32_t get_mxcsr() {
  uint32_t v = 0;
  asm volatile("stmxcsr %0" : "=m"(v) : : "memory");
  return v;
}
uint8_t to_fflags(uint32_t csr) {
  uint8_t f = 0;
  if (csr & 0x01) f |= kNV;
  if (csr & 0x04) f |= kDZ;
  if (csr & 0x08) f |= kOF;
  if (csr & 0x10) f |= kUF;
  if (csr & 0x20) f |= kNX;
  return f;
}

struct Out {
  uint64_t bits;
  uint8_t flags;
};

[[noreturn]] void mismatch(const char* what, int mode, const uint64_t* in, Out got, Out want) {
  std::fprintf(stderr,
               "fpu mismatch: %s mode %d inputs %#llx %#llx %#llx: got %#llx/%#x want %#llx/%#x\n",
               what, mode, static_cast<unsigned long long>(in[0]),
               static_cast<unsigned long long>(in[1]), static_cast<unsigned long long>(in[2]),
               static_cast<unsigned long long>(got.bits), got.flags,
               static_cast<unsigned long long>(want.bits), want.flags);
  std::abort();
}

uint64_t canon32(float f) {
  uint32_t b = 0;
  std::memcpy(&b, &f, 4);
  return std::isnan(f) ? kCanonicalNaN32 : b;
}
uint64_t canon64(double d) {
  uint64_t b = 0;
  std::memcpy(&b, &d, 8);
  return std::isnan(d) ? kCanonicalNaN64 : b;
}
float as_f32(uint64_t v) {
  const auto b = static_cast<uint32_t>(v);
  float f = 0;
  std::memcpy(&f, &b, 4);
  return f;
}
double as_f64(uint64_t v) {
  double d = 0;
  std::memcpy(&d, &v, 8);
  return d;
}

// uint64 -> float through the signed conversion (cvtsi2ss/sd, which rounds per MXCSR):
// values >= 2^63 are halved keeping a sticky bit, then doubled exactly. Compilers' own
// unsigned conversions may use tricks that, for instance, give -0.0 for 0 in RDN.
template <class T>
T from_u64(uint64_t v) {
  if (static_cast<int64_t>(v) >= 0) return static_cast<T>(static_cast<int64_t>(v));
  const T half = static_cast<T>(static_cast<int64_t>((v >> 1) | (v & 1)));
  return half + half;
}

// Evaluates selector `op` on the host in mode m (0..3).
Out host_eval(int op, int m, const uint64_t* in) {
  volatile float a32 = as_f32(in[0]);
  volatile float b32 = as_f32(in[1]);
  volatile float c32 = as_f32(in[2]);
  volatile double a64 = as_f64(in[0]);
  volatile double b64 = as_f64(in[1]);
  volatile double c64 = as_f64(in[2]);
  volatile uint64_t r = 0;
  set_mxcsr(kDefault | kRc[m]);
  switch (op) {
    case 0: r = canon32(a32 + b32); break;
    case 1: r = canon32(a32 - b32); break;
    case 2: r = canon32(a32 * b32); break;
    case 3: r = canon32(a32 / b32); break;
    case 4: r = canon32(std::sqrt(a32)); break;
    case 5: r = canon32(std::fma(a32, b32, c32)); break;
    case 6: r = canon64(a64 + b64); break;
    case 7: r = canon64(a64 - b64); break;
    case 8: r = canon64(a64 * b64); break;
    case 9: r = canon64(a64 / b64); break;
    case 10: r = canon64(std::sqrt(a64)); break;
    case 11: r = canon64(std::fma(a64, b64, c64)); break;
    case 12: r = canon32(static_cast<float>(a64)); break;
    case 13: r = canon64(static_cast<double>(a32)); break;
    case 14: r = canon32(static_cast<float>(static_cast<int64_t>(in[0]))); break;
    case 15: r = canon32(from_u64<float>(in[0])); break;
    case 16: r = canon64(static_cast<double>(static_cast<int64_t>(in[0]))); break;
    default: r = canon64(from_u64<double>(in[0])); break;
  }
  const uint32_t csr = get_mxcsr();
  set_mxcsr(kDefault);
  Out o{r, to_fflags(csr)};
  // RISC-V raises NV for inf*0 even when the addend is a quiet NaN; x86 does not.
  if (op == 5 || op == 11) {
    const bool f = op == 5;
    const double x = f ? static_cast<double>(as_f32(in[0])) : as_f64(in[0]);
    const double y = f ? static_cast<double>(as_f32(in[1])) : as_f64(in[1]);
    const double z = f ? static_cast<double>(as_f32(in[2])) : as_f64(in[2]);
    if (((std::isinf(x) && y == 0) || (x == 0 && std::isinf(y))) && std::isnan(z)) o.flags |= kNV;
  }
  return o;
}

Out ours(int op, Rounding rm, const uint64_t* in, uint8_t seed_flags, bool soft_only) {
  uint8_t fl = seed_flags;
  uint64_t r = 0;
  const auto a32 = static_cast<uint32_t>(in[0]);
  const auto b32 = static_cast<uint32_t>(in[1]);
  const auto c32 = static_cast<uint32_t>(in[2]);
  switch (op) {
    case 0: r = soft_only ? soft::f32_add(a32, b32, rm, fl) : f32_add(a32, b32, rm, fl); break;
    case 1: r = soft_only ? soft::f32_add(a32, b32 ^ 0x80000000u, rm, fl) : f32_sub(a32, b32, rm, fl); break;
    case 2: r = soft_only ? soft::f32_mul(a32, b32, rm, fl) : f32_mul(a32, b32, rm, fl); break;
    case 3: r = soft_only ? soft::f32_div(a32, b32, rm, fl) : f32_div(a32, b32, rm, fl); break;
    case 4: r = soft_only ? soft::f32_sqrt(a32, rm, fl) : f32_sqrt(a32, rm, fl); break;
    case 5: r = soft_only ? soft::f32_fma(a32, b32, c32, rm, fl) : f32_fma(a32, b32, c32, rm, fl); break;
    case 6: r = soft_only ? soft::f64_add(in[0], in[1], rm, fl) : f64_add(in[0], in[1], rm, fl); break;
    case 7: r = soft_only ? soft::f64_add(in[0], in[1] ^ (1ull << 63), rm, fl) : f64_sub(in[0], in[1], rm, fl); break;
    case 8: r = soft_only ? soft::f64_mul(in[0], in[1], rm, fl) : f64_mul(in[0], in[1], rm, fl); break;
    case 9: r = soft_only ? soft::f64_div(in[0], in[1], rm, fl) : f64_div(in[0], in[1], rm, fl); break;
    case 10: r = soft_only ? soft::f64_sqrt(in[0], rm, fl) : f64_sqrt(in[0], rm, fl); break;
    case 11: r = soft_only ? soft::f64_fma(in[0], in[1], in[2], rm, fl) : f64_fma(in[0], in[1], in[2], rm, fl); break;
    case 12: r = soft_only ? soft::f64_to_f32(in[0], rm, fl) : f64_to_f32(in[0], rm, fl); break;
    case 13: r = f32_to_f64(a32, fl); break;
    case 14: r = i64_to_f32(static_cast<int64_t>(in[0]), rm, fl); break;
    case 15: r = u64_to_f32(in[0], rm, fl); break;
    case 16: r = i64_to_f64(static_cast<int64_t>(in[0]), rm, fl); break;
    default: r = u64_to_f64(in[0], rm, fl); break;
  }
  return {r, fl};
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const int op = data[0] % 18;
  uint64_t in[3] = {};
  std::memcpy(in, data + 1, size - 1 < sizeof in ? size - 1 : sizeof in);
  Out host[4];
  for (int m = 0; m < 4; ++m) {
    host[m] = host_eval(op, m, in);
    if (op == 13 && m > 0) continue;  // f32 -> f64 is exact and has no rounding mode
    const Out got = ours(op, kModes[m], in, 0, false);
    if (got.bits != host[m].bits || got.flags != host[m].flags) mismatch("vs host", m, in, got, host[m]);
  }
  // Host fast path vs software path, with fresh and with accumulated flags.
  if (op <= 12) {
    const Out soft_r = ours(op, Rounding::kRNE, in, 0, true);
    const Out fresh = ours(op, Rounding::kRNE, in, 0, false);
    const Out seeded = ours(op, Rounding::kRNE, in, kNX, false);
    if (fresh.bits != soft_r.bits || fresh.flags != soft_r.flags) mismatch("fast vs soft", 0, in, fresh, soft_r);
    if (seeded.bits != soft_r.bits || seeded.flags != (soft_r.flags | kNX)) {
      mismatch("fast(NX) vs soft", 0, in, seeded, soft_r);
    }
  }
  // RMM: flags as RNE; the result is RNE's unless RNE chose an even neighbour at what may
  // be a tie, in which case it may be the neighbour away from zero instead.
  if (op != 13) {
    const Out rmm = ours(op, Rounding::kRMM, in, 0, false);
    const Out& rne = host[0];
    const bool negative = (op == 12 || op == 14 || op == 15 || op <= 5)
                              ? (rne.bits & 0x80000000u) != 0
                              : (rne.bits >> 63) != 0;
    const Out& away = negative ? host[2] : host[3];
    const bool ok_bits = rmm.bits == rne.bits || ((rne.bits & 1) == 0 && rmm.bits == away.bits);
    if (!ok_bits || rmm.flags != rne.flags) mismatch("rmm", 4, in, rmm, rne);
  }
  return 0;
}

#else

extern "C" int LLVMFuzzerTestOneInput(const uint8_t*, size_t) { return 0; }

#endif
