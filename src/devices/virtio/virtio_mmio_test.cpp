// The virtio-mmio transport walked through like the spec's register table (virtio 1.2
// 4.2.2), using virtio-rng as the simplest device behind it.
#include "devices/virtio/virtio_mmio.h"

#include <gtest/gtest.h>

#include "devices/virtio/virtio_rng.h"
#include "devices/virtio/virtio_test_util.h"

namespace doppel::virtio {
namespace {

class VirtioMmioTest : public ::testing::Test {
 protected:
  VirtioMmioTest()
      : m_mem(testing::make_ram()),
        m_mmio(std::make_unique<VirtioRng>(*m_mem, "virtio-rng"), m_irq),
        m_drv(m_mmio, *m_mem) {}

  std::unique_ptr<GuestMemory> m_mem;
  testing::RecordingIrq m_irq;
  VirtioMmio m_mmio;
  testing::TestDriver m_drv;
};

TEST_F(VirtioMmioTest, IdentifiesAsModernVirtioMmio) {
  EXPECT_EQ(m_drv.reg(MmioReg::kMagicValue), 0x74726976u);
  EXPECT_EQ(m_drv.reg(MmioReg::kVersion), 2u);
  EXPECT_EQ(m_drv.reg(MmioReg::kDeviceId), 4u);
  EXPECT_EQ(m_drv.reg(MmioReg::kVendorId), kMmioVendorId);
  m_drv.set(MmioReg::kQueueSel, 0);
  EXPECT_EQ(m_drv.reg(MmioReg::kQueueNumMax), VirtioRng::kQueueSize);
  m_drv.set(MmioReg::kQueueSel, 1);
  EXPECT_EQ(m_drv.reg(MmioReg::kQueueNumMax), 0u);  // no such queue
  EXPECT_EQ(m_drv.reg(MmioReg::kShmLenLow), 0xffffffffu);
}

TEST_F(VirtioMmioTest, OffersVersion1EventIdxAndIndirect) {
  const uint64_t f = m_drv.device_features();
  EXPECT_TRUE(f & kFVersion1);
  EXPECT_TRUE(f & kFEventIdx);
  EXPECT_TRUE(f & kFIndirectDesc);
  m_drv.set(MmioReg::kDeviceFeaturesSel, 2);
  EXPECT_EQ(m_drv.reg(MmioReg::kDeviceFeatures), 0u);
}

TEST_F(VirtioMmioTest, RefusesLegacyDriverAndUnofferedFeatures) {
  EXPECT_FALSE(m_drv.init(0));                       // no VERSION_1
  EXPECT_FALSE(m_drv.init(kFVersion1 | (1ull << 40)));  // not offered
  EXPECT_TRUE(m_drv.init(kFVersion1 | kFEventIdx));
  EXPECT_EQ(m_mmio.device().driver_features(), kFVersion1 | kFEventIdx);
  EXPECT_TRUE(m_drv.reg(MmioReg::kStatus) & kStatusDriverOk);
}

TEST_F(VirtioMmioTest, FeaturesAreFrozenAfterFeaturesOk) {
  ASSERT_TRUE(m_drv.init(kFVersion1));
  m_drv.set(MmioReg::kDriverFeaturesSel, 0);
  m_drv.set(MmioReg::kDriverFeatures, static_cast<uint32_t>(kFEventIdx));
  EXPECT_EQ(m_mmio.save().driver_features, kFVersion1);
}

TEST_F(VirtioMmioTest, QueueSizeMustBePowerOfTwo) {
  m_drv.set(MmioReg::kStatus, kStatusAcknowledge | kStatusDriver);
  m_drv.set(MmioReg::kQueueSel, 0);
  m_drv.set(MmioReg::kQueueNum, 12);
  m_drv.set(MmioReg::kQueueReady, 1);
  EXPECT_EQ(m_drv.reg(MmioReg::kQueueReady), 0u);
  m_drv.set(MmioReg::kQueueNum, 1024);  // above QueueNumMax
  m_drv.set(MmioReg::kQueueReady, 1);
  EXPECT_EQ(m_drv.reg(MmioReg::kQueueReady), 0u);
  m_drv.set(MmioReg::kQueueNum, 8);
  m_drv.set(MmioReg::kQueueReady, 1);
  EXPECT_EQ(m_drv.reg(MmioReg::kQueueReady), 1u);
}

TEST_F(VirtioMmioTest, InterruptLineFollowsInterruptStatus) {
  ASSERT_TRUE(m_drv.init(kFVersion1));
  const uint64_t buf = m_drv.alloc(16);
  m_drv.add_chain(0, {{buf, 16, true}});
  EXPECT_FALSE(m_irq.level());
  m_drv.notify(0);
  EXPECT_TRUE(m_irq.level());
  EXPECT_EQ(m_drv.reg(MmioReg::kInterruptStatus), kInterruptUsedBuffer);
  m_drv.set(MmioReg::kInterruptAck, kInterruptConfigChange);  // not the pending bit
  EXPECT_TRUE(m_irq.level());
  m_drv.set(MmioReg::kInterruptAck, kInterruptUsedBuffer);
  EXPECT_FALSE(m_irq.level());
  EXPECT_EQ(m_drv.reg(MmioReg::kInterruptStatus), 0u);
}

TEST_F(VirtioMmioTest, NotifyBeforeDriverOkOrForMissingQueueIsIgnored) {
  m_drv.set(MmioReg::kQueueNotify, 0);
  m_drv.set(MmioReg::kQueueNotify, 7);
  EXPECT_FALSE(m_irq.level());
  ASSERT_TRUE(m_drv.init(kFVersion1));
  m_drv.set(MmioReg::kQueueNotify, 7);
  EXPECT_FALSE(m_irq.level());
}

TEST_F(VirtioMmioTest, ResetClearsEverything) {
  ASSERT_TRUE(m_drv.init(kFVersion1 | kFEventIdx));
  const uint64_t buf = m_drv.alloc(16);
  m_drv.add_chain(0, {{buf, 16, true}});
  m_drv.notify(0);
  ASSERT_TRUE(m_irq.level());
  m_drv.set(MmioReg::kStatus, 0);
  EXPECT_EQ(m_drv.reg(MmioReg::kStatus), 0u);
  EXPECT_FALSE(m_irq.level());
  EXPECT_EQ(m_drv.reg(MmioReg::kInterruptStatus), 0u);
  EXPECT_EQ(m_drv.reg(MmioReg::kQueueReady), 0u);
  EXPECT_EQ(m_mmio.device().driver_features(), 0u);
  EXPECT_EQ(m_mmio.device().queue(0).save().used_idx, 0u);
  // And the device comes back up from scratch.
  ASSERT_TRUE(m_drv.init(kFVersion1));
  m_drv.add_chain(0, {{buf, 16, true}});
  m_drv.notify(0);
  EXPECT_EQ(m_drv.used_idx(0), 1u);
}

TEST_F(VirtioMmioTest, QueueCanBeDisabledAfterDriverOkButNotReconfigured) {
  ASSERT_TRUE(m_drv.init(kFVersion1));
  m_drv.set(MmioReg::kQueueSel, 0);
  m_drv.set(MmioReg::kQueueNum, 4);  // ignored: the device is live
  EXPECT_EQ(m_mmio.device().queue(0).size(), testing::TestDriver::kQueueSize);
  m_drv.set(MmioReg::kQueueReady, 0);
  EXPECT_EQ(m_drv.reg(MmioReg::kQueueReady), 0u);
  m_drv.add_chain(0, {{m_drv.alloc(8), 8, true}});
  m_drv.notify(0);
  EXPECT_EQ(m_drv.used_idx(0), 0u);  // a disabled queue is not processed
}

TEST_F(VirtioMmioTest, OddSizedRegisterAccessesAreIgnored) {
  EXPECT_EQ(m_mmio.read(0, 2), 0u);
  EXPECT_EQ(m_mmio.read(2, 4), 0u);
  m_mmio.write(static_cast<uint64_t>(MmioReg::kStatus), 1, kStatusAcknowledge);
  EXPECT_EQ(m_drv.reg(MmioReg::kStatus), 0u);
  m_mmio.write(0x1000, 4, 1);  // outside everything: config space past its end
  EXPECT_EQ(m_mmio.read(0x1f8, 8), 0u);
}

TEST_F(VirtioMmioTest, CorruptRingSetsNeedsResetAndRaisesConfigInterrupt) {
  ASSERT_TRUE(m_drv.init(kFVersion1));
  const uint32_t gen = m_drv.reg(MmioReg::kConfigGeneration);
  // avail idx jumps by more than the queue size.
  (void)m_mem->store_u16_release(testing::TestDriver::avail(0) + 2, 100);
  m_drv.notify(0);
  EXPECT_TRUE(m_drv.reg(MmioReg::kStatus) & kStatusNeedsReset);
  EXPECT_TRUE(m_drv.reg(MmioReg::kInterruptStatus) & kInterruptConfigChange);
  EXPECT_TRUE(m_irq.level());
  EXPECT_EQ(m_drv.used_idx(0), 0u);
  (void)gen;
  // Reset recovers.
  ASSERT_TRUE(m_drv.init(kFVersion1));
  EXPECT_FALSE(m_drv.reg(MmioReg::kStatus) & kStatusNeedsReset);
}

TEST_F(VirtioMmioTest, HeadIndexOutOfRangeBreaksTheQueue) {
  ASSERT_TRUE(m_drv.init(kFVersion1));
  m_drv.publish(0, 500);
  m_drv.notify(0);
  EXPECT_TRUE(m_drv.reg(MmioReg::kStatus) & kStatusNeedsReset);
}

TEST_F(VirtioMmioTest, RingsOutsideRamBreakTheQueue) {
  m_drv.set(MmioReg::kStatus, 0);
  m_drv.set(MmioReg::kStatus, kStatusAcknowledge | kStatusDriver);
  m_drv.set(MmioReg::kDriverFeaturesSel, 1);
  m_drv.set(MmioReg::kDriverFeatures, 1);
  m_drv.set(MmioReg::kStatus, kStatusAcknowledge | kStatusDriver | kStatusFeaturesOk);
  m_drv.set(MmioReg::kQueueNum, 16);
  m_drv.set(MmioReg::kQueueDescLow, 0x1000);  // below RAM
  m_drv.set(MmioReg::kQueueReady, 1);
  m_drv.set(MmioReg::kStatus, kStatusAcknowledge | kStatusDriver | kStatusFeaturesOk | kStatusDriverOk);
  m_drv.notify(0);
  EXPECT_TRUE(m_drv.reg(MmioReg::kStatus) & kStatusNeedsReset);
}

TEST_F(VirtioMmioTest, SaveRestoreContinuesWhereItLeftOff) {
  ASSERT_TRUE(m_drv.init(kFVersion1 | kFEventIdx));
  const uint64_t buf = m_drv.alloc(16);
  m_drv.add_chain(0, {{buf, 16, true}});
  m_drv.notify(0);
  const VirtioMmioState state = m_mmio.save();
  EXPECT_EQ(state.queues.at(0).used_idx, 1u);

  testing::RecordingIrq irq2;
  VirtioMmio other(std::make_unique<VirtioRng>(*m_mem, "virtio-rng"), irq2);
  ASSERT_TRUE(other.restore(state).ok());
  EXPECT_TRUE(irq2.level());  // the pending interrupt came along
  EXPECT_EQ(other.status(), state.status);
  m_drv.add_chain(0, {{buf, 16, true}});
  other.notify(0);
  EXPECT_EQ(m_drv.used_idx(0), 2u);

  VirtioMmioState bad = state;
  bad.version = 99;
  auto r = other.restore(bad);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("version 99"), std::string::npos);
}

}  // namespace
}  // namespace doppel::virtio
