#include "engines/emu/riscv64/clint.h"

#include <gtest/gtest.h>

#include <chrono>
#include <thread>

namespace doppel::rv64 {
namespace {

struct ClintTest : ::testing::Test {
  Timebase timebase;
  InterruptPins hart0, hart1;
  Clint clint{timebase, {&hart0, &hart1}};

  static bool wait_for_bit(const InterruptPins& pins, uint64_t bit, bool want, int ms) {
    const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
    while (std::chrono::steady_clock::now() < end) {
      if (((pins.pending() & bit) != 0) == want) return true;
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    return ((pins.pending() & bit) != 0) == want;
  }
};

TEST_F(ClintTest, MsipDrivesEachHartsSoftwareInterrupt) {
  clint.write(Clint::kMsipBase + 4, 4, 1);
  EXPECT_EQ(hart1.pending() & kMipMSIP, kMipMSIP);
  EXPECT_EQ(hart0.pending() & kMipMSIP, 0u);
  EXPECT_EQ(clint.read(Clint::kMsipBase + 4, 4), 1u);
  clint.write(Clint::kMsipBase + 4, 4, 0);
  EXPECT_EQ(hart1.pending() & kMipMSIP, 0u);
}

TEST_F(ClintTest, MtimeFollowsTheTimebase) {
  const uint64_t a = clint.read(Clint::kMtime, 8);
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  const uint64_t b = clint.read(Clint::kMtime, 8);
  // 5 ms at 10 MHz is 50000 ticks.
  EXPECT_GE(b - a, 50'000u);
  EXPECT_LT(b - a, 50'000u * 100);
  const uint64_t lo = clint.read(Clint::kMtime, 4);
  const uint64_t hi = clint.read(Clint::kMtime + 4, 4);
  EXPECT_LE(hi, 1u);  // a fresh timebase is far from 2^32 ticks (7 minutes)
  EXPECT_GE((hi << 32) | lo, b);
}

TEST_F(ClintTest, TimerFiresAtTheDeadlineOnThatHartOnly) {
  EXPECT_EQ(clint.read(Clint::kMtimecmpBase, 8), ~0ull);  // reset: never
  const uint64_t deadline = timebase.now() + 20'000;        // 2 ms
  clint.write(Clint::kMtimecmpBase, 8, deadline);
  EXPECT_EQ(hart0.pending() & kMipMTIP, 0u);
  ASSERT_TRUE(wait_for_bit(hart0, kMipMTIP, true, 1000));
  EXPECT_GE(timebase.now(), deadline);
  EXPECT_EQ(hart1.pending() & kMipMTIP, 0u);
  // Moving mtimecmp to the future lowers MTIP at once (how a kernel acknowledges it).
  clint.write(Clint::kMtimecmpBase, 8, ~0ull);
  EXPECT_EQ(hart0.pending() & kMipMTIP, 0u);
}

TEST_F(ClintTest, PastDeadlineRaisesImmediately) {
  clint.write(Clint::kMtimecmpBase + 8, 8, 0);
  EXPECT_EQ(hart1.pending() & kMipMTIP, kMipMTIP);
}

TEST_F(ClintTest, ThirtyTwoBitHalvesComposeMtimecmp) {
  // The rv32 idiom: high word to all ones first, so no spurious interrupt in between.
  clint.write(Clint::kMtimecmpBase + 4, 4, 0xffffffff);
  clint.write(Clint::kMtimecmpBase, 4, 0x12345678);
  clint.write(Clint::kMtimecmpBase + 4, 4, 0x9);
  EXPECT_EQ(clint.read(Clint::kMtimecmpBase, 8), 0x912345678ull);
  EXPECT_EQ(clint.read(Clint::kMtimecmpBase + 4, 4), 0x9u);
  EXPECT_EQ(hart0.pending() & kMipMTIP, 0u);
}

TEST_F(ClintTest, ReprogrammingToAnEarlierDeadlineWakesTheTimerThread) {
  clint.write(Clint::kMtimecmpBase, 8, timebase.now() + 100 * kTimebaseHz);  // 100 s away
  std::this_thread::sleep_for(std::chrono::milliseconds(2));
  clint.write(Clint::kMtimecmpBase, 8, timebase.now() + 10'000);  // 1 ms
  EXPECT_TRUE(wait_for_bit(hart0, kMipMTIP, true, 500));
}

TEST_F(ClintTest, OutOfRangeAccessesAreHarmless) {
  clint.write(Clint::kMsipBase + 4 * 5, 4, 1);  // hart 5 does not exist
  clint.write(Clint::kMtimecmpBase + 8 * 7, 8, 0);
  clint.write(Clint::kMtime, 8, 0);
  EXPECT_EQ(clint.read(Clint::kMsipBase + 4 * 5, 4), 0u);
  EXPECT_EQ(hart0.pending() | hart1.pending(), 0u);
}

TEST_F(ClintTest, SaveRestoreCarriesDeadlinesAndSoftwareInterrupts) {
  clint.write(Clint::kMsipBase, 4, 1);
  clint.write(Clint::kMtimecmpBase + 8, 8, 0x1234'5678'9abcull);
  const ClintState s = clint.save();
  InterruptPins p0, p1;
  Clint other(timebase, {&p0, &p1});
  ASSERT_TRUE(other.restore(s).ok());
  EXPECT_EQ(p0.pending() & kMipMSIP, kMipMSIP);
  EXPECT_EQ(other.read(Clint::kMtimecmpBase + 8, 8), 0x1234'5678'9abcull);
  ClintState bad = s;
  bad.mtimecmp.resize(3);
  EXPECT_FALSE(other.restore(bad).ok());
}

}  // namespace
}  // namespace doppel::rv64
