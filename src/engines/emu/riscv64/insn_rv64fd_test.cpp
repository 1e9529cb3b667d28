// F/D instruction semantics owned by the hart: mstatus.FS, rounding-mode resolution,
// fflags accumulation, NaN-boxing, sign injection and moves (arithmetic itself is fpu.h's).
#include <gtest/gtest.h>

#include "engines/emu/riscv64/test_asm.h"

namespace doppel::rv64 {
namespace {

using namespace testasm;

constexpr uint64_t kBox = 0xffffffff00000000ull;
constexpr uint32_t kOne = 0x3f800000, kThree = 0x40400000;  // 1.0f, 3.0f
constexpr uint32_t kRne = 0, kRtz = 1, kRup = 3, kDyn = 7;

class FpTest : public HartFixture {
 protected:
  void enable_fp() { ASSERT_TRUE(hart->write_csr(kMstatus, 1ull << 13)); }  // FS = Initial
  uint64_t fs() { return (csr(kMstatus) >> 13) & 3; }
};

TEST_F(FpTest, FsOffMakesFpInstructionsAndCsrsIllegal) {
  hart->set_exit_on_trap(true);
  load({FADD_S(1, 2, 3, kRne)});
  StepResult r = hart->step(1);
  ASSERT_EQ(r.kind, StepResult::Kind::kTrap);
  EXPECT_EQ(r.trap.cause, static_cast<uint64_t>(Exception::kIllegalInsn));
  load({CSRRS(a0, kFflags, zero)});
  r = hart->step(1);
  ASSERT_EQ(r.kind, StepResult::Kind::kTrap);
  EXPECT_EQ(r.trap.cause, static_cast<uint64_t>(Exception::kIllegalInsn));
}

TEST_F(FpTest, FdivRoundsPerInstructionAndDynamicMode) {
  enable_fp();
  hart->set_f(1, kBox | kOne);
  hart->set_f(2, kBox | kThree);
  ASSERT_TRUE(hart->write_csr(kFrm, kRup));
  load({FDIV_S(3, 1, 2, kRne), FDIV_S(4, 1, 2, kRtz), FDIV_S(5, 1, 2, kDyn)});
  hart->step(3);
  EXPECT_EQ(hart->f(3), kBox | 0x3eaaaaabu);  // 1/3 to nearest
  EXPECT_EQ(hart->f(4), kBox | 0x3eaaaaaau);  // toward zero
  EXPECT_EQ(hart->f(5), kBox | 0x3eaaaaabu);  // DYN = frm = RUP
  EXPECT_EQ(csr(kFflags), 1u);                // NX
  EXPECT_EQ(fs(), 3u);                        // Dirty
  EXPECT_NE(csr(kMstatus) & Hart::kMstatusSD, 0u);
}

TEST_F(FpTest, FflagsAccumulate) {
  enable_fp();
  hart->set_f(1, kBox | kOne);
  hart->set_f(2, kBox | 0);  // +0
  hart->set_f(6, kBox | kThree);
  load({FDIV_S(3, 1, 2, kRne), FDIV_S(4, 1, 6, kRne), CSRRS(a0, kFflags, zero)});
  hart->step(3);
  EXPECT_EQ(hart->f(3), kBox | 0x7f800000u);  // 1/0 = +inf
  EXPECT_EQ(hart->x(a0), 8u | 1u);            // DZ then NX: both stay set
}

TEST_F(FpTest, ReservedDynamicRoundingModeIsIllegal) {
  enable_fp();
  ASSERT_TRUE(hart->write_csr(kFrm, 5));
  hart->set_exit_on_trap(true);
  load({FADD_S(1, 2, 3, kDyn), FADD_S(1, 2, 3, 6)});
  StepResult r = hart->step(1);
  ASSERT_EQ(r.kind, StepResult::Kind::kTrap);
  EXPECT_EQ(r.trap.cause, static_cast<uint64_t>(Exception::kIllegalInsn));
  hart->set_pc(kRamBase + 4);  // rm = 6 in the instruction: reserved too
  r = hart->step(1);
  ASSERT_EQ(r.kind, StepResult::Kind::kTrap);
}

TEST_F(FpTest, ImproperlyBoxedSinglesReadAsCanonicalNan) {
  enable_fp();
  hart->set_x(a1, kOne);  // fmv.d.x: upper half zero, so not a boxed single
  hart->set_f(2, kBox | kOne);
  load({FMV_D_X(1, a1), FADD_S(3, 1, 2, kRne), FMV_X_W(a2, 1), FMV_W_X(4, a1)});
  hart->step(4);
  EXPECT_EQ(hart->f(3), kBox | 0x7fc00000u);
  EXPECT_EQ(hart->x(a2), kOne);  // fmv.x.w moves raw low bits, no unboxing
  EXPECT_EQ(hart->f(4), kBox | kOne);
}

TEST_F(FpTest, SignInjectionAndConversions) {
  enable_fp();
  hart->set_f(1, kBox | kThree);
  hart->set_f(2, kBox | 0x7fc00000u);  // NaN
  hart->set_x(a1, static_cast<uint64_t>(-7));
  load({FSGNJN_S(3, 1, 1), FCVT_W_S(a0, 2, kRne), FCVT_S_W(4, a1, kRne), FCVT_D_W(5, a1, kRne),
        FEQ_S(a2, 1, 1), FCVT_W_S(a3, 1, kRtz)});
  hart->step(6);
  EXPECT_EQ(hart->f(3), kBox | 0xc0400000u);  // -3.0f
  EXPECT_EQ(hart->x(a0), 0x7fffffffu);        // NaN converts to the largest int
  EXPECT_EQ(hart->f(4), kBox | 0xc0e00000u);  // -7.0f
  EXPECT_EQ(hart->f(5), 0xc01c000000000000ull);
  EXPECT_EQ(hart->x(a2), 1u);
  EXPECT_EQ(hart->x(a3), 3u);
  EXPECT_TRUE(csr(kFflags) & 16u);  // NV from the NaN conversion
}

TEST_F(FpTest, LoadsAndStoresMoveRawBits) {
  enable_fp();
  const uint64_t data = kRamBase + 0x1000;
  ASSERT_TRUE(memory->write_le<uint64_t>(data, 0x400921fb54442d18ull));  // pi
  hart->set_x(a1, data);
  load({FLD(1, a1, 0), FSD(1, a1, 8), FLW(2, a1, 0)});
  hart->step(3);
  EXPECT_EQ(hart->f(1), 0x400921fb54442d18ull);
  EXPECT_EQ(mem64(data + 8), 0x400921fb54442d18ull);
  EXPECT_EQ(hart->f(2), kBox | 0x54442d18u);
}

TEST_F(FpTest, FcsrPacksFrmAndFflags) {
  enable_fp();
  ASSERT_TRUE(hart->write_csr(kFcsr, (3u << 5) | 0x11));
  EXPECT_EQ(csr(kFrm), 3u);
  EXPECT_EQ(csr(kFflags), 0x11u);
  EXPECT_EQ(csr(kFcsr), (3u << 5) | 0x11u);
}

}  // namespace
}  // namespace doppel::rv64
