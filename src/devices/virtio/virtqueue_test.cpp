// Split virtqueue behaviour: descriptor validation, indirect tables, EVENT_IDX.
#include "devices/virtio/virtqueue.h"

#include <gtest/gtest.h>

#include "devices/virtio/virtio_rng.h"
#include "devices/virtio/virtio_test_util.h"

namespace doppel::virtio {
namespace {

using testing::TestDriver;

class VirtqueueTest : public ::testing::Test {
 protected:
  VirtqueueTest()
      : m_mem(testing::make_ram()),
        m_mmio(std::make_unique<VirtioRng>(*m_mem, "virtio-rng"), m_irq),
        m_drv(m_mmio, *m_mem) {}

  Virtqueue& q() { return m_mmio.device().queue(0); }
  // Pops one chain directly from the queue (bypassing the device).
  DescriptorChain pop_chain() {
    auto r = q().pop();
    EXPECT_EQ(r.status, Virtqueue::PopStatus::kChain);
    return r.chain;
  }

  std::unique_ptr<GuestMemory> m_mem;
  testing::RecordingIrq m_irq;
  VirtioMmio m_mmio;
  TestDriver m_drv;
};

TEST_F(VirtqueueTest, ChainSplitsReadableAndWritable) {
  ASSERT_TRUE(m_drv.init(kFVersion1));
  const uint64_t a = m_drv.alloc(10), b = m_drv.alloc(20), c = m_drv.alloc(30);
  const uint16_t head = m_drv.add_chain(0, {{a, 10, false}, {b, 20, true}, {c, 30, true}});
  auto chain = pop_chain();
  EXPECT_EQ(chain.error, ChainError::kNone);
  EXPECT_EQ(chain.head, head);
  EXPECT_EQ(chain.readable_len, 10u);
  EXPECT_EQ(chain.writable_len, 50u);
  ASSERT_EQ(chain.writable.size(), 2u);
  EXPECT_EQ(chain.writable[1].gpa, c);
  EXPECT_EQ(q().pop().status, Virtqueue::PopStatus::kEmpty);
}

TEST_F(VirtqueueTest, DeviceWritableBuffersAndTheUsedRingAreMarkedDirty) {
  constexpr uint64_t kPage = GuestMemory::kDirtyPageSize;
  ASSERT_TRUE(m_drv.init(kFVersion1));
  const uint64_t base = align_up(m_drv.alloc(4 * kPage), kPage);
  // Readable on one page; writable on the next, its last 100 bytes spilling onto a third.
  const uint16_t head =
      m_drv.add_chain(0, {{base, 64, false}, {base + 2 * kPage - 100, 200, true}});
  m_mem->clear_dirty();
  auto chain = pop_chain();
  ASSERT_EQ(chain.error, ChainError::kNone);
  EXPECT_FALSE(m_mem->is_dirty(base)) << "the device only reads it";
  EXPECT_TRUE(m_mem->is_dirty(base + kPage));
  EXPECT_TRUE(m_mem->is_dirty(base + 2 * kPage));
  EXPECT_FALSE(m_mem->is_dirty(TestDriver::used(0)));
  (void)q().push(head, 200);
  EXPECT_TRUE(m_mem->is_dirty(TestDriver::used(0)));
}

TEST_F(VirtqueueTest, DescriptorLoopIsDetected) {
  ASSERT_TRUE(m_drv.init(kFVersion1));
  const uint64_t a = m_drv.alloc(8);
  m_drv.write_desc(0, TestDriver::desc(0), 0, a, 8, kDescFNext, 1);
  m_drv.write_desc(0, TestDriver::desc(0), 1, a, 8, kDescFNext, 0);
  m_drv.publish(0, 0);
  EXPECT_EQ(pop_chain().error, ChainError::kLoop);
}

TEST_F(VirtqueueTest, NextIndexOutOfRangeIsDetected) {
  ASSERT_TRUE(m_drv.init(kFVersion1));
  m_drv.write_desc(0, TestDriver::desc(0), 0, m_drv.alloc(8), 8, kDescFNext, 16);
  m_drv.publish(0, 0);
  EXPECT_EQ(pop_chain().error, ChainError::kBadIndex);
}

TEST_F(VirtqueueTest, BuffersOutsideRamAreRejected) {
  ASSERT_TRUE(m_drv.init(kFVersion1));
  m_drv.add_chain(0, {{0, 8, true}});
  EXPECT_EQ(pop_chain().error, ChainError::kOutOfRam);
  m_drv.add_chain(0, {{testing::kRamBase + testing::kRamSize - 4, 8, true}});
  EXPECT_EQ(pop_chain().error, ChainError::kOutOfRam);
  m_drv.add_chain(0, {{~0ull - 3, 8, true}});  // would wrap
  EXPECT_EQ(pop_chain().error, ChainError::kOutOfRam);
}

TEST_F(VirtqueueTest, ReadableAfterWritableIsWrongDirection) {
  ASSERT_TRUE(m_drv.init(kFVersion1));
  const uint64_t a = m_drv.alloc(8);
  m_drv.add_chain(0, {{a, 8, true}, {a, 8, false}});
  EXPECT_EQ(pop_chain().error, ChainError::kWrongDirection);
}

TEST_F(VirtqueueTest, OversizeChainIsRejected) {
  ASSERT_TRUE(m_drv.init(kFVersion1));
  q().set_max_chain_bytes(4096);
  const uint64_t a = m_drv.alloc(8192);
  m_drv.add_chain(0, {{a, 4096, true}, {a, 1, true}});
  EXPECT_EQ(pop_chain().error, ChainError::kTooLong);
  m_drv.add_chain(0, {{a, 0xffffffff, true}});  // a single huge descriptor
  EXPECT_NE(pop_chain().error, ChainError::kNone);
}

TEST_F(VirtqueueTest, IndirectTableIsFollowed) {
  ASSERT_TRUE(m_drv.init(kFVersion1 | kFIndirectDesc));
  const uint64_t a = m_drv.alloc(16), b = m_drv.alloc(32);
  m_drv.add_indirect_chain(0, {{a, 16, false}, {b, 32, true}});
  auto chain = pop_chain();
  EXPECT_EQ(chain.error, ChainError::kNone);
  EXPECT_EQ(chain.readable_len, 16u);
  EXPECT_EQ(chain.writable_len, 32u);
}

TEST_F(VirtqueueTest, IndirectWithoutNegotiationIsRejected) {
  ASSERT_TRUE(m_drv.init(kFVersion1));
  m_drv.add_indirect_chain(0, {{m_drv.alloc(8), 8, true}});
  EXPECT_EQ(pop_chain().error, ChainError::kIndirectNotNegotiated);
}

TEST_F(VirtqueueTest, NestedIndirectIsRejected) {
  ASSERT_TRUE(m_drv.init(kFVersion1 | kFIndirectDesc));
  const uint64_t inner = m_drv.alloc(16), outer = m_drv.alloc(16);
  m_drv.write_desc(0, inner, 0, m_drv.alloc(8), 8, kDescFWrite, 0);
  m_drv.write_desc(0, outer, 0, inner, 16, kDescFIndirect, 0);
  m_drv.write_desc(0, TestDriver::desc(0), 0, outer, 16, kDescFIndirect, 0);
  m_drv.publish(0, 0);
  EXPECT_EQ(pop_chain().error, ChainError::kNestedIndirect);
}

TEST_F(VirtqueueTest, BadIndirectTablesAreRejected) {
  ASSERT_TRUE(m_drv.init(kFVersion1 | kFIndirectDesc));
  const uint64_t table = m_drv.alloc(64);
  m_drv.write_desc(0, table, 0, m_drv.alloc(8), 8, kDescFWrite, 0);
  struct Case {
    uint64_t addr;
    uint32_t len;
    uint16_t flags;
    ChainError want;
  } cases[] = {
      {table, 24, kDescFIndirect, ChainError::kBadIndirectTable},               // not 16*n
      {table, 0, kDescFIndirect, ChainError::kBadIndirectTable},                // empty
      {table, 16, kDescFIndirect | kDescFNext, ChainError::kBadIndirectTable},  // + NEXT
      {0x2000, 16, kDescFIndirect, ChainError::kOutOfRam},                      // outside RAM
  };
  for (uint16_t i = 0; i < 4; i++) {
    m_drv.write_desc(0, TestDriver::desc(0), i, cases[i].addr, cases[i].len, cases[i].flags, 0);
    m_drv.publish(0, i);
    EXPECT_EQ(pop_chain().error, cases[i].want) << "case " << i;
  }
  // A loop inside an indirect table.
  const uint64_t looped = m_drv.alloc(32);
  m_drv.write_desc(0, looped, 0, m_drv.alloc(8), 8, kDescFNext, 1);
  m_drv.write_desc(0, looped, 1, m_drv.alloc(8), 8, kDescFNext, 0);
  m_drv.write_desc(0, TestDriver::desc(0), 4, looped, 32, kDescFIndirect, 0);
  m_drv.publish(0, 4);
  EXPECT_EQ(pop_chain().error, ChainError::kLoop);
}

TEST_F(VirtqueueTest, RngFillsBuffersAndReportsLength) {
  ASSERT_TRUE(m_drv.init(kFVersion1));
  const uint64_t a = m_drv.alloc(64), b = m_drv.alloc(64);
  m_drv.add_chain(0, {{a, 64, true}, {b, 64, true}});
  m_drv.notify(0);
  ASSERT_EQ(m_drv.used_idx(0), 1u);
  EXPECT_EQ(m_drv.used_len(0, 0), 128u);
  EXPECT_NE(m_drv.bytes(a, 64), std::vector<uint8_t>(64, 0));
  EXPECT_NE(m_drv.bytes(b, 64), std::vector<uint8_t>(64, 0));
  EXPECT_NE(m_drv.bytes(a, 64), m_drv.bytes(b, 64));
  EXPECT_TRUE(m_irq.level());
}

TEST_F(VirtqueueTest, MalformedRngRequestCompletesEmpty) {
  ASSERT_TRUE(m_drv.init(kFVersion1));
  const uint64_t a = m_drv.alloc(64);
  m_drv.add_chain(0, {{a, 64, true}, {0x10, 64, true}});
  m_drv.notify(0);
  ASSERT_EQ(m_drv.used_idx(0), 1u);
  EXPECT_EQ(m_drv.used_len(0, 0), 0u);
  EXPECT_EQ(m_drv.bytes(a, 64), std::vector<uint8_t>(64, 0));
}

TEST_F(VirtqueueTest, EventIdxSuppressesInterruptsUntilUsedEvent) {
  ASSERT_TRUE(m_drv.init(kFVersion1 | kFEventIdx));
  const uint64_t a = m_drv.alloc(8);
  m_drv.set_used_event(0, 2);  // interrupt once used ring entry 2 is written
  for (int i = 0; i < 2; i++) {
    m_drv.add_chain(0, {{a, 8, true}});
    m_drv.notify(0);
    EXPECT_FALSE(m_irq.level()) << "completion " << i;
  }
  m_drv.add_chain(0, {{a, 8, true}});
  m_drv.notify(0);
  EXPECT_TRUE(m_irq.level());
  EXPECT_EQ(m_drv.used_idx(0), 3u);
  // The device asked to be notified at the next avail index.
  EXPECT_EQ(m_drv.avail_event(0), 3u);
}

TEST_F(VirtqueueTest, NoInterruptFlagSuppressesWithoutEventIdx) {
  ASSERT_TRUE(m_drv.init(kFVersion1));
  const uint64_t a = m_drv.alloc(8);
  m_drv.set_avail_flags(0, kAvailFNoInterrupt);
  m_drv.add_chain(0, {{a, 8, true}});
  m_drv.notify(0);
  EXPECT_EQ(m_drv.used_idx(0), 1u);
  EXPECT_FALSE(m_irq.level());
  m_drv.set_avail_flags(0, 0);
  m_drv.add_chain(0, {{a, 8, true}});
  m_drv.notify(0);
  EXPECT_TRUE(m_irq.level());
}

TEST_F(VirtqueueTest, IndicesWrapAround) {
  ASSERT_TRUE(m_drv.init(kFVersion1));
  const uint64_t a = m_drv.alloc(8);
  for (int i = 0; i < 70000; i++) {
    m_drv.add_chain(0, {{a, 8, true}});
    m_drv.notify(0);
  }
  EXPECT_EQ(m_drv.used_idx(0), static_cast<uint16_t>(70000));
  EXPECT_FALSE(m_drv.reg(MmioReg::kStatus) & kStatusNeedsReset);
}

}  // namespace
}  // namespace doppel::virtio
