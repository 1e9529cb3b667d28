// RV64F and RV64D (unprivileged spec chapters 11-13). Arithmetic is fpu.h's business; here:
// mstatus.FS (Off -> illegal instruction, writes -> Dirty), the rm field (DYN -> frm,
// reserved -> illegal instruction), fflags accumulation, NaN-boxing of singles (a single
// that is not properly boxed reads as the canonical NaN), sign injection, moves, loads and
// stores.
#include "engines/emu/riscv64/fpu.h"
#include "engines/emu/riscv64/fpu_host.h"
#include "engines/emu/riscv64/insn_common.h"

namespace doppel::rv64 {
namespace {

using fpu::Rounding;

constexpr uint64_t kBox = 0xffffffff00000000ull;

uint32_t unbox(uint64_t v) {
  return (v & kBox) == kBox ? static_cast<uint32_t>(v) : fpu::kCanonicalNaN32;
}
uint32_t fs1(Hart& h, const DecodedInsn& d) { return unbox(h.fr(d.rs1)); }
uint32_t fs2(Hart& h, const DecodedInsn& d) { return unbox(h.fr(d.rs2)); }
uint32_t fs3(Hart& h, const DecodedInsn& d) { return unbox(h.fr(d.rs3)); }
uint64_t fd1(Hart& h, const DecodedInsn& d) { return h.fr(d.rs1); }
uint64_t fd2(Hart& h, const DecodedInsn& d) { return h.fr(d.rs2); }
uint64_t fd3(Hart& h, const DecodedInsn& d) { return h.fr(d.rs3); }

// FS must not be Off; rm must resolve to a valid rounding mode.
bool prologue(Hart& h, const DecodedInsn& d, Rounding& rm) {
  unsigned r = 0;
  if (!h.fp_enabled() || !h.resolve_rm(d.rm, r)) return false;
  rm = static_cast<Rounding>(r);
  return true;
}

// `flags` is taken by reference on purpose: handlers write put_s(h, d, fpu::op(..., fl), fl)
// and argument evaluation order is unspecified, so the flags must be read in here.
bool put_s(Hart& h, const DecodedInsn& d, uint32_t v, const uint8_t& flags) {
  h.fr(d.rd) = kBox | v;
  h.add_fflags(flags);
  h.fp_dirty();
  return true;
}
bool put_d(Hart& h, const DecodedInsn& d, uint64_t v, const uint8_t& flags) {
  h.fr(d.rd) = v;
  h.add_fflags(flags);
  h.fp_dirty();
  return true;
}
bool put_x(Hart& h, const DecodedInsn& d, uint64_t v, const uint8_t& flags) {
  h.xr(d.rd) = v;
  if (flags) {
    h.add_fflags(flags);
    h.fp_dirty();
  }
  return true;
}

// Arithmetic in round-to-nearest-even goes to the host's FPU inline (fpu_host.h), without
// the per-operation MXCSR check: the hart holds a DefaultEnvScope while it runs. Other
// rounding modes and operands the fast path declines go to fpu.h.
namespace host = fpu::host;
[[gnu::always_inline]] inline bool rne(Rounding rm) { return rm == Rounding::kRNE; }

uint32_t add_s(uint32_t a, uint32_t b, Rounding rm, uint8_t& fl) {
  uint32_t r;
  if (rne(rm) && host::f32_add<false>(a, b, r, fl)) return r;
  return fpu::f32_add(a, b, rm, fl);
}
uint32_t mul_s(uint32_t a, uint32_t b, Rounding rm, uint8_t& fl) {
  uint32_t r;
  if (rne(rm) && host::f32_mul<false>(a, b, r, fl)) return r;
  return fpu::f32_mul(a, b, rm, fl);
}
uint32_t div_s(uint32_t a, uint32_t b, Rounding rm, uint8_t& fl) {
  uint32_t r;
  if (rne(rm) && host::f32_div<false>(a, b, r, fl)) return r;
  return fpu::f32_div(a, b, rm, fl);
}
uint32_t sqrt_s(uint32_t a, Rounding rm, uint8_t& fl) {
  uint32_t r;
  if (rne(rm) && host::f32_sqrt<false>(a, r, fl)) return r;
  return fpu::f32_sqrt(a, rm, fl);
}
uint32_t fma_s(uint32_t a, uint32_t b, uint32_t c, Rounding rm, uint8_t& fl) {
  uint32_t r;
  if (rne(rm) && host::f32_fma<false>(a, b, c, r, fl)) return r;
  return fpu::f32_fma(a, b, c, rm, fl);
}
uint64_t add_d(uint64_t a, uint64_t b, Rounding rm, uint8_t& fl) {
  uint64_t r;
  if (rne(rm) && host::f64_add<false>(a, b, r, fl)) return r;
  return fpu::f64_add(a, b, rm, fl);
}
uint64_t mul_d(uint64_t a, uint64_t b, Rounding rm, uint8_t& fl) {
  uint64_t r;
  if (rne(rm) && host::f64_mul<false>(a, b, r, fl)) return r;
  return fpu::f64_mul(a, b, rm, fl);
}
uint64_t div_d(uint64_t a, uint64_t b, Rounding rm, uint8_t& fl) {
  uint64_t r;
  if (rne(rm) && host::f64_div<false>(a, b, r, fl)) return r;
  return fpu::f64_div(a, b, rm, fl);
}
uint64_t sqrt_d(uint64_t a, Rounding rm, uint8_t& fl) {
  uint64_t r;
  if (rne(rm) && host::f64_sqrt<false>(a, r, fl)) return r;
  return fpu::f64_sqrt(a, rm, fl);
}
uint64_t fma_d(uint64_t a, uint64_t b, uint64_t c, Rounding rm, uint8_t& fl) {
  uint64_t r;
  if (rne(rm) && host::f64_fma<false>(a, b, c, r, fl)) return r;
  return fpu::f64_fma(a, b, c, rm, fl);
}
uint32_t d_to_s(uint64_t a, Rounding rm, uint8_t& fl) {
  uint32_t r;
  if (rne(rm) && host::f64_to_f32<false>(a, r, fl)) return r;
  return fpu::f64_to_f32(a, rm, fl);
}

uint64_t sx(int32_t v) { return static_cast<uint64_t>(static_cast<int64_t>(v)); }
uint64_t sxu(uint32_t v) { return static_cast<uint64_t>(static_cast<int64_t>(static_cast<int32_t>(v))); }

// Handler bodies. `rm` and `fl` are in scope after FP_RM; FP_ON checks FS only. FP_ARITH
// is FP_RM for arithmetic with an F/D result, whose `fl` starts with the NX already accrued
// in fflags: put_s/put_d OR it back (changing nothing) and mark FS dirty anyway, and the
// host fast path need not work out whether the result is inexact (fpu_host.h).
#define FP_RM                                          \
  Rounding rm;                                         \
  if (!prologue(h, d, rm)) return h.illegal(d);        \
  uint8_t fl = 0;
#define FP_ARITH                                       \
  Rounding rm;                                         \
  if (!prologue(h, d, rm)) return h.illegal(d);        \
  uint8_t fl = h.fflags() & fpu::kNX;
#define FP_ON                                          \
  if (!h.fp_enabled()) return h.illegal(d);            \
  uint8_t fl = 0;                                      \
  (void)fl;

constexpr uint32_t kMaskFpFixed = 0xfff0707f;  // funct7 + rs2 + funct3 + opcode
constexpr uint32_t fp(uint32_t funct7, uint32_t rs2, uint32_t funct3) {
  return (funct7 << 25) | (rs2 << 20) | (funct3 << 12) | 0x53;
}

constexpr uint8_t kFFF = kRdF | kRs1F | kRs2F;
constexpr uint8_t kFF = kRdF | kRs1F;

const InsnSpec kSpecs[] = {
    // Loads and stores move raw bits: flw boxes, fsw stores the low half as is.
    INSN("flw", kMaskF3, 0x2007, kLoad, kRdF, false, {
      if (!h.fp_enabled()) return h.illegal(d);
      uint32_t v;
      if (!h.load<uint32_t>(d, h.xr(d.rs1) + SIMM, v)) return false;
      return put_s(h, d, v, 0);
    }),
    INSN("fld", kMaskF3, 0x3007, kLoad, kRdF, false, {
      if (!h.fp_enabled()) return h.illegal(d);
      uint64_t v;
      if (!h.load<uint64_t>(d, h.xr(d.rs1) + SIMM, v)) return false;
      return put_d(h, d, v, 0);
    }),
    INSN("fsw", kMaskF3, 0x2027, kStore, kRs2F, false, {
      if (!h.fp_enabled()) return h.illegal(d);
      return h.store<uint32_t>(d, h.xr(d.rs1) + SIMM, static_cast<uint32_t>(h.fr(d.rs2)));
    }),
    INSN("fsd", kMaskF3, 0x3027, kStore, kRs2F, false, {
      if (!h.fp_enabled()) return h.illegal(d);
      return h.store<uint64_t>(d, h.xr(d.rs1) + SIMM, h.fr(d.rs2));
    }),

    // Fused multiply-add: fmadd = a*b+c, fmsub = a*b-c, fnmsub = -a*b+c, fnmadd = -a*b-c.
    INSN("fmadd.s", kMaskFpR4, 0x43, kR4, kFFF | kRs3F, false, FP_ARITH
         return put_s(h, d, fma_s(fs1(h, d), fs2(h, d), fs3(h, d), rm, fl), fl);),
    INSN("fmsub.s", kMaskFpR4, 0x47, kR4, kFFF | kRs3F, false, FP_ARITH
         return put_s(h, d, fma_s(fs1(h, d), fs2(h, d), fs3(h, d) ^ 0x80000000u, rm, fl), fl);),
    INSN("fnmsub.s", kMaskFpR4, 0x4b, kR4, kFFF | kRs3F, false, FP_ARITH
         return put_s(h, d, fma_s(fs1(h, d) ^ 0x80000000u, fs2(h, d), fs3(h, d), rm, fl), fl);),
    INSN("fnmadd.s", kMaskFpR4, 0x4f, kR4, kFFF | kRs3F, false, FP_ARITH
         return put_s(h, d, fma_s(fs1(h, d) ^ 0x80000000u, fs2(h, d), fs3(h, d) ^ 0x80000000u, rm, fl), fl);),
    INSN("fmadd.d", kMaskFpR4, 0x02000043, kR4, kFFF | kRs3F, false, FP_ARITH
         return put_d(h, d, fma_d(fd1(h, d), fd2(h, d), fd3(h, d), rm, fl), fl);),
    INSN("fmsub.d", kMaskFpR4, 0x02000047, kR4, kFFF | kRs3F, false, FP_ARITH
         return put_d(h, d, fma_d(fd1(h, d), fd2(h, d), fd3(h, d) ^ (1ull << 63), rm, fl), fl);),
    INSN("fnmsub.d", kMaskFpR4, 0x0200004b, kR4, kFFF | kRs3F, false, FP_ARITH
         return put_d(h, d, fma_d(fd1(h, d) ^ (1ull << 63), fd2(h, d), fd3(h, d), rm, fl), fl);),
    INSN("fnmadd.d", kMaskFpR4, 0x0200004f, kR4, kFFF | kRs3F, false, FP_ARITH
         return put_d(h, d, fma_d(fd1(h, d) ^ (1ull << 63), fd2(h, d), fd3(h, d) ^ (1ull << 63), rm, fl), fl);),

    // ---- single ----
    INSN("fadd.s", kMaskFpR, fp(0x00, 0, 0), kR, kFFF, false, FP_ARITH
         return put_s(h, d, add_s(fs1(h, d), fs2(h, d), rm, fl), fl);),
    INSN("fsub.s", kMaskFpR, fp(0x04, 0, 0), kR, kFFF, false, FP_ARITH
         return put_s(h, d, add_s(fs1(h, d), fs2(h, d) ^ 0x80000000u, rm, fl), fl);),
    INSN("fmul.s", kMaskFpR, fp(0x08, 0, 0), kR, kFFF, false, FP_ARITH
         return put_s(h, d, mul_s(fs1(h, d), fs2(h, d), rm, fl), fl);),
    INSN("fdiv.s", kMaskFpR, fp(0x0c, 0, 0), kR, kFFF, false, FP_ARITH
         return put_s(h, d, div_s(fs1(h, d), fs2(h, d), rm, fl), fl);),
    INSN("fsqrt.s", kMaskFpR1, fp(0x2c, 0, 0), kR1, kFF, false, FP_ARITH
         return put_s(h, d, sqrt_s(fs1(h, d), rm, fl), fl);),
    INSN("fsgnj.s", kMaskF7, fp(0x10, 0, 0), kR, kFFF, false, FP_ON
         return put_s(h, d, (fs1(h, d) & 0x7fffffffu) | (fs2(h, d) & 0x80000000u), 0);),
    INSN("fsgnjn.s", kMaskF7, fp(0x10, 0, 1), kR, kFFF, false, FP_ON
         return put_s(h, d, (fs1(h, d) & 0x7fffffffu) | (~fs2(h, d) & 0x80000000u), 0);),
    INSN("fsgnjx.s", kMaskF7, fp(0x10, 0, 2), kR, kFFF, false, FP_ON
         return put_s(h, d, fs1(h, d) ^ (fs2(h, d) & 0x80000000u), 0);),
    INSN("fmin.s", kMaskF7, fp(0x14, 0, 0), kR, kFFF, false, FP_ON
         return put_s(h, d, fpu::f32_min(fs1(h, d), fs2(h, d), fl), fl);),
    INSN("fmax.s", kMaskF7, fp(0x14, 0, 1), kR, kFFF, false, FP_ON
         return put_s(h, d, fpu::f32_max(fs1(h, d), fs2(h, d), fl), fl);),
    INSN("fcvt.w.s", kMaskFpR1, fp(0x60, 0, 0), kR1, kRs1F, false, FP_RM
         return put_x(h, d, sx(fpu::f32_to_i32(fs1(h, d), rm, fl)), fl);),
    INSN("fcvt.wu.s", kMaskFpR1, fp(0x60, 1, 0), kR1, kRs1F, false, FP_RM
         return put_x(h, d, sxu(fpu::f32_to_u32(fs1(h, d), rm, fl)), fl);),
    INSN("fcvt.l.s", kMaskFpR1, fp(0x60, 2, 0), kR1, kRs1F, false, FP_RM
         return put_x(h, d, static_cast<uint64_t>(fpu::f32_to_i64(fs1(h, d), rm, fl)), fl);),
    INSN("fcvt.lu.s", kMaskFpR1, fp(0x60, 3, 0), kR1, kRs1F, false, FP_RM
         return put_x(h, d, fpu::f32_to_u64(fs1(h, d), rm, fl), fl);),
    INSN("fmv.x.w", kMaskFpFixed, fp(0x70, 0, 0), kR1, kRs1F, false, FP_ON
         return put_x(h, d, sxu(static_cast<uint32_t>(h.fr(d.rs1))), 0);),
    INSN("fclass.s", kMaskFpFixed, fp(0x70, 0, 1), kR1, kRs1F, false, FP_ON
         return put_x(h, d, fpu::f32_classify(fs1(h, d)), 0);),
    INSN("feq.s", kMaskF7, fp(0x50, 0, 2), kR, kRs1F | kRs2F, false, FP_ON
         return put_x(h, d, fpu::f32_eq(fs1(h, d), fs2(h, d), fl) ? 1 : 0, fl);),
    INSN("flt.s", kMaskF7, fp(0x50, 0, 1), kR, kRs1F | kRs2F, false, FP_ON
         return put_x(h, d, fpu::f32_lt(fs1(h, d), fs2(h, d), fl) ? 1 : 0, fl);),
    INSN("fle.s", kMaskF7, fp(0x50, 0, 0), kR, kRs1F | kRs2F, false, FP_ON
         return put_x(h, d, fpu::f32_le(fs1(h, d), fs2(h, d), fl) ? 1 : 0, fl);),
    INSN("fcvt.s.w", kMaskFpR1, fp(0x68, 0, 0), kR1, kRdF, false, FP_RM
         return put_s(h, d, fpu::i32_to_f32(static_cast<int32_t>(h.xr(d.rs1)), rm, fl), fl);),
    INSN("fcvt.s.wu", kMaskFpR1, fp(0x68, 1, 0), kR1, kRdF, false, FP_RM
         return put_s(h, d, fpu::u32_to_f32(static_cast<uint32_t>(h.xr(d.rs1)), rm, fl), fl);),
    INSN("fcvt.s.l", kMaskFpR1, fp(0x68, 2, 0), kR1, kRdF, false, FP_RM
         return put_s(h, d, fpu::i64_to_f32(static_cast<int64_t>(h.xr(d.rs1)), rm, fl), fl);),
    INSN("fcvt.s.lu", kMaskFpR1, fp(0x68, 3, 0), kR1, kRdF, false, FP_RM
         return put_s(h, d, fpu::u64_to_f32(h.xr(d.rs1), rm, fl), fl);),
    INSN("fmv.w.x", kMaskFpFixed, fp(0x78, 0, 0), kR1, kRdF, false, FP_ON
         return put_s(h, d, static_cast<uint32_t>(h.xr(d.rs1)), 0);),

    // ---- double ----
    INSN("fadd.d", kMaskFpR, fp(0x01, 0, 0), kR, kFFF, false, FP_ARITH
         return put_d(h, d, add_d(fd1(h, d), fd2(h, d), rm, fl), fl);),
    INSN("fsub.d", kMaskFpR, fp(0x05, 0, 0), kR, kFFF, false, FP_ARITH
         return put_d(h, d, add_d(fd1(h, d), fd2(h, d) ^ (1ull << 63), rm, fl), fl);),
    INSN("fmul.d", kMaskFpR, fp(0x09, 0, 0), kR, kFFF, false, FP_ARITH
         return put_d(h, d, mul_d(fd1(h, d), fd2(h, d), rm, fl), fl);),
    INSN("fdiv.d", kMaskFpR, fp(0x0d, 0, 0), kR, kFFF, false, FP_ARITH
         return put_d(h, d, div_d(fd1(h, d), fd2(h, d), rm, fl), fl);),
    INSN("fsqrt.d", kMaskFpR1, fp(0x2d, 0, 0), kR1, kFF, false, FP_ARITH
         return put_d(h, d, sqrt_d(fd1(h, d), rm, fl), fl);),
    INSN("fsgnj.d", kMaskF7, fp(0x11, 0, 0), kR, kFFF, false, FP_ON
         return put_d(h, d, (fd1(h, d) & ~(1ull << 63)) | (fd2(h, d) & (1ull << 63)), 0);),
    INSN("fsgnjn.d", kMaskF7, fp(0x11, 0, 1), kR, kFFF, false, FP_ON
         return put_d(h, d, (fd1(h, d) & ~(1ull << 63)) | (~fd2(h, d) & (1ull << 63)), 0);),
    INSN("fsgnjx.d", kMaskF7, fp(0x11, 0, 2), kR, kFFF, false, FP_ON
         return put_d(h, d, fd1(h, d) ^ (fd2(h, d) & (1ull << 63)), 0);),
    INSN("fmin.d", kMaskF7, fp(0x15, 0, 0), kR, kFFF, false, FP_ON
         return put_d(h, d, fpu::f64_min(fd1(h, d), fd2(h, d), fl), fl);),
    INSN("fmax.d", kMaskF7, fp(0x15, 0, 1), kR, kFFF, false, FP_ON
         return put_d(h, d, fpu::f64_max(fd1(h, d), fd2(h, d), fl), fl);),
    INSN("fcvt.s.d", kMaskFpR1, fp(0x20, 1, 0), kR1, kFF, false, FP_ARITH
         return put_s(h, d, d_to_s(fd1(h, d), rm, fl), fl);),
    INSN("fcvt.d.s", kMaskFpR1, fp(0x21, 0, 0), kR1, kFF, false, FP_RM
         return put_d(h, d, fpu::f32_to_f64(fs1(h, d), fl), fl);),
    INSN("fcvt.w.d", kMaskFpR1, fp(0x61, 0, 0), kR1, kRs1F, false, FP_RM
         return put_x(h, d, sx(fpu::f64_to_i32(fd1(h, d), rm, fl)), fl);),
    INSN("fcvt.wu.d", kMaskFpR1, fp(0x61, 1, 0), kR1, kRs1F, false, FP_RM
         return put_x(h, d, sxu(fpu::f64_to_u32(fd1(h, d), rm, fl)), fl);),
    INSN("fcvt.l.d", kMaskFpR1, fp(0x61, 2, 0), kR1, kRs1F, false, FP_RM
         return put_x(h, d, static_cast<uint64_t>(fpu::f64_to_i64(fd1(h, d), rm, fl)), fl);),
    INSN("fcvt.lu.d", kMaskFpR1, fp(0x61, 3, 0), kR1, kRs1F, false, FP_RM
         return put_x(h, d, fpu::f64_to_u64(fd1(h, d), rm, fl), fl);),
    INSN("fmv.x.d", kMaskFpFixed, fp(0x71, 0, 0), kR1, kRs1F, false, FP_ON
         return put_x(h, d, h.fr(d.rs1), 0);),
    INSN("fclass.d", kMaskFpFixed, fp(0x71, 0, 1), kR1, kRs1F, false, FP_ON
         return put_x(h, d, fpu::f64_classify(fd1(h, d)), 0);),
    INSN("feq.d", kMaskF7, fp(0x51, 0, 2), kR, kRs1F | kRs2F, false, FP_ON
         return put_x(h, d, fpu::f64_eq(fd1(h, d), fd2(h, d), fl) ? 1 : 0, fl);),
    INSN("flt.d", kMaskF7, fp(0x51, 0, 1), kR, kRs1F | kRs2F, false, FP_ON
         return put_x(h, d, fpu::f64_lt(fd1(h, d), fd2(h, d), fl) ? 1 : 0, fl);),
    INSN("fle.d", kMaskF7, fp(0x51, 0, 0), kR, kRs1F | kRs2F, false, FP_ON
         return put_x(h, d, fpu::f64_le(fd1(h, d), fd2(h, d), fl) ? 1 : 0, fl);),
    INSN("fcvt.d.w", kMaskFpR1, fp(0x69, 0, 0), kR1, kRdF, false, FP_RM
         return put_d(h, d, fpu::i32_to_f64(static_cast<int32_t>(h.xr(d.rs1)), rm, fl), fl);),
    INSN("fcvt.d.wu", kMaskFpR1, fp(0x69, 1, 0), kR1, kRdF, false, FP_RM
         return put_d(h, d, fpu::u32_to_f64(static_cast<uint32_t>(h.xr(d.rs1)), rm, fl), fl);),
    INSN("fcvt.d.l", kMaskFpR1, fp(0x69, 2, 0), kR1, kRdF, false, FP_RM
         return put_d(h, d, fpu::i64_to_f64(static_cast<int64_t>(h.xr(d.rs1)), rm, fl), fl);),
    INSN("fcvt.d.lu", kMaskFpR1, fp(0x69, 3, 0), kR1, kRdF, false, FP_RM
         return put_d(h, d, fpu::u64_to_f64(h.xr(d.rs1), rm, fl), fl);),
    INSN("fmv.d.x", kMaskFpFixed, fp(0x79, 0, 0), kR1, kRdF, false, FP_ON
         return put_d(h, d, h.xr(d.rs1), 0);),
};

}  // namespace

std::span<const InsnSpec> rv64fd_specs() { return kSpecs; }

}  // namespace doppel::rv64
