#include "engines/emu/riscv64/plic.h"

#include <gtest/gtest.h>

namespace doppel::rv64 {
namespace {

constexpr uint64_t priority(unsigned id) { return 4ull * id; }
constexpr uint64_t enable(unsigned ctx) { return Plic::kEnableBase + Plic::kEnableStride * ctx; }
constexpr uint64_t threshold(unsigned ctx) { return Plic::kContextBase + Plic::kContextStride * ctx; }
constexpr uint64_t claim(unsigned ctx) { return threshold(ctx) + 4; }

struct PlicTest : ::testing::Test {
  InterruptPins hart0, hart1;
  Plic plic{32, {&hart0, &hart1}};
  uint64_t rd(uint64_t off) { return plic.read(off, 4); }
  void wr(uint64_t off, uint64_t v) { plic.write(off, 4, v); }
};

TEST_F(PlicTest, DisabledOrZeroPrioritySourceDoesNotInterrupt) {
  plic.line(10).raise();
  EXPECT_EQ(rd(Plic::kPendingBase), 1u << 10);
  EXPECT_EQ(hart0.pending() & (kMipMEIP | kMipSEIP), 0u);
  wr(enable(1), 1u << 10);  // enabled for hart 0 S-mode, priority still 0
  EXPECT_EQ(hart0.pending() & kMipSEIP, 0u);
  wr(priority(10), 1);
  EXPECT_EQ(hart0.pending() & kMipSEIP, kMipSEIP);
  EXPECT_EQ(hart0.pending() & kMipMEIP, 0u);  // M context not enabled
  EXPECT_EQ(hart1.pending(), 0u);
}

TEST_F(PlicTest, ClaimCompleteCycleForALevelLine) {
  wr(priority(10), 1);
  wr(enable(3), 1u << 10);  // hart 1 S-mode
  plic.line(10).raise();
  EXPECT_EQ(hart1.pending() & kMipSEIP, kMipSEIP);
  EXPECT_EQ(rd(claim(3)), 10u);
  EXPECT_EQ(hart1.pending() & kMipSEIP, 0u);  // in service
  EXPECT_EQ(rd(claim(3)), 0u);                 // nothing else to claim
  // Device still asserting at completion: pending again at once.
  wr(claim(3), 10);
  EXPECT_EQ(hart1.pending() & kMipSEIP, kMipSEIP);
  EXPECT_EQ(rd(claim(3)), 10u);
  plic.line(10).lower();
  wr(claim(3), 10);
  EXPECT_EQ(hart1.pending() & kMipSEIP, 0u);
  EXPECT_EQ(rd(Plic::kPendingBase), 0u);
}

TEST_F(PlicTest, HighestPriorityWinsAndTiesGoToTheLowestId) {
  wr(enable(1), (1u << 1) | (1u << 2) | (1u << 10));
  wr(priority(1), 2);
  wr(priority(2), 2);
  wr(priority(10), 5);
  plic.line(1).raise();
  plic.line(2).raise();
  plic.line(10).raise();
  EXPECT_EQ(rd(claim(1)), 10u);
  EXPECT_EQ(rd(claim(1)), 1u);
  EXPECT_EQ(rd(claim(1)), 2u);
}

TEST_F(PlicTest, ThresholdMasksPrioritiesAtOrBelowIt) {
  wr(priority(5), 3);
  wr(enable(0), 1u << 5);
  wr(threshold(0), 3);
  plic.line(5).raise();
  EXPECT_EQ(hart0.pending() & kMipMEIP, 0u);
  EXPECT_EQ(rd(claim(0)), 0u);
  wr(threshold(0), 2);
  EXPECT_EQ(hart0.pending() & kMipMEIP, kMipMEIP);
  EXPECT_EQ(rd(threshold(0)), 2u);
}

TEST_F(PlicTest, LineDroppedBeforeClaimIsNoLongerPending) {
  wr(priority(3), 1);
  wr(enable(1), 1u << 3);
  plic.line(3).raise();
  plic.line(3).lower();
  EXPECT_EQ(hart0.pending() & kMipSEIP, 0u);
  EXPECT_EQ(rd(claim(1)), 0u);
}

TEST_F(PlicTest, RegistersHoldWhatTheyShouldAndNoMore) {
  wr(priority(4), 0xffffffff);
  EXPECT_EQ(rd(priority(4)), Plic::kMaxPriority);
  wr(priority(0), 5);
  EXPECT_EQ(rd(priority(0)), 0u);
  wr(enable(0), 0xffffffff);
  EXPECT_EQ(rd(enable(0)), 0xfffffffeu);  // source 0 does not exist
  wr(Plic::kPendingBase, 0xffffffff);      // read-only
  EXPECT_EQ(rd(Plic::kPendingBase), 0u);
}

TEST_F(PlicTest, HostileAccessesAreIgnored) {
  wr(claim(99), 10);            // no such context
  wr(claim(0), 12345);          // no such source
  wr(claim(0), 10);             // never claimed
  wr(enable(0) + 0x7c, 0xffff);  // beyond this PLIC's sources
  EXPECT_EQ(rd(claim(99)), 0u);
  EXPECT_EQ(rd(priority(1000)), 0u);
  EXPECT_EQ(plic.read(Plic::kContextBase - 4, 4), 0u);
  EXPECT_EQ(hart0.pending() | hart1.pending(), 0u);
}

TEST_F(PlicTest, SaveRestoreKeepsAnInServiceInterrupt) {
  wr(priority(7), 1);
  wr(enable(1), 1u << 7);
  plic.line(7).raise();
  ASSERT_EQ(rd(claim(1)), 7u);
  const PlicState s = plic.save();
  InterruptPins p0, p1;
  Plic other(32, {&p0, &p1});
  ASSERT_TRUE(other.restore(s).ok());
  EXPECT_EQ(p0.pending() & kMipSEIP, 0u);
  other.write(claim(1), 4, 7);  // completing it in the restored PLIC works
  EXPECT_EQ(p0.pending() & kMipSEIP, kMipSEIP);
  Plic small(8, {&p0});
  EXPECT_FALSE(small.restore(s).ok());
}

}  // namespace
}  // namespace doppel::rv64
