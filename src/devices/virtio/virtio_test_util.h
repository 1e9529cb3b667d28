// Test fakes for virtio devices (used by *_test.cpp and *_fuzz.cpp only): a small guest RAM,
// a recording IRQ line, and a driver that negotiates features and builds descriptor chains
// the way a guest driver would.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "core/guest_memory.h"
#include "core/irq.h"
#include "devices/virtio/virtio_mmio.h"

namespace doppel::virtio::testing {

class RecordingIrq : public IrqLine {
 public:
  void set_level(bool high) override {
    if (high && !m_level) m_raises++;
    m_level = high;
  }
  bool level() const { return m_level; }
  int raises() const { return m_raises; }

 private:
  bool m_level = false;
  int m_raises = 0;
};

constexpr uint64_t kRamBase = 0x80000000;
constexpr uint64_t kRamSize = 4 * MiB;

inline std::unique_ptr<GuestMemory> make_ram() {
  auto mem = GuestMemory::create({{kRamBase, kRamSize}});
  return mem.release_value();
}

struct Seg {
  uint64_t gpa;
  uint32_t len;
  bool writable;
};

// Drives a VirtioMmio through its registers like a guest driver.
class TestDriver {
 public:
  static constexpr uint16_t kQueueSize = 16;

  TestDriver(VirtioMmio& dev, GuestMemory& mem) : m_dev(dev), m_mem(mem) {}

  uint32_t reg(MmioReg r) { return static_cast<uint32_t>(m_dev.read(static_cast<uint64_t>(r), 4)); }
  void set(MmioReg r, uint32_t v) { m_dev.write(static_cast<uint64_t>(r), 4, v); }

  uint64_t device_features() {
    set(MmioReg::kDeviceFeaturesSel, 0);
    uint64_t f = reg(MmioReg::kDeviceFeatures);
    set(MmioReg::kDeviceFeaturesSel, 1);
    return f | (uint64_t{reg(MmioReg::kDeviceFeatures)} << 32);
  }

  // The 3.1.1 sequence; returns whether FEATURES_OK stuck.
  bool init(uint64_t features, uint16_t queue_size = kQueueSize) {
    set(MmioReg::kStatus, 0);
    set(MmioReg::kStatus, kStatusAcknowledge);
    set(MmioReg::kStatus, kStatusAcknowledge | kStatusDriver);
    set(MmioReg::kDriverFeaturesSel, 0);
    set(MmioReg::kDriverFeatures, static_cast<uint32_t>(features));
    set(MmioReg::kDriverFeaturesSel, 1);
    set(MmioReg::kDriverFeatures, static_cast<uint32_t>(features >> 32));
    set(MmioReg::kStatus, kStatusAcknowledge | kStatusDriver | kStatusFeaturesOk);
    if (!(reg(MmioReg::kStatus) & kStatusFeaturesOk)) return false;
    m_size = queue_size;
    for (uint32_t q = 0; q < m_dev.device().num_queues(); q++) {
      // Fresh, zeroed rings, as a driver allocates them.
      const std::vector<uint8_t> zero(0x10000, 0);
      (void)m_mem.write(desc(q), zero);
      set(MmioReg::kQueueSel, q);
      set(MmioReg::kQueueNum, queue_size);
      set(MmioReg::kQueueDescLow, static_cast<uint32_t>(desc(q)));
      set(MmioReg::kQueueDescHigh, static_cast<uint32_t>(desc(q) >> 32));
      set(MmioReg::kQueueDriverLow, static_cast<uint32_t>(avail(q)));
      set(MmioReg::kQueueDriverHigh, static_cast<uint32_t>(avail(q) >> 32));
      set(MmioReg::kQueueDeviceLow, static_cast<uint32_t>(used(q)));
      set(MmioReg::kQueueDeviceHigh, static_cast<uint32_t>(used(q) >> 32));
      set(MmioReg::kQueueReady, 1);
    }
    m_next_desc.assign(m_dev.device().num_queues(), 0);
    m_avail_idx.assign(m_dev.device().num_queues(), 0);
    set(MmioReg::kStatus, kStatusAcknowledge | kStatusDriver | kStatusFeaturesOk | kStatusDriverOk);
    return true;
  }

  static uint64_t desc(uint32_t q) { return kRamBase + q * 0x10000ull; }
  static uint64_t avail(uint32_t q) { return desc(q) + 0x4000; }
  static uint64_t used(uint32_t q) { return desc(q) + 0x8000; }

  // Bump allocator for data buffers, above the rings.
  uint64_t alloc(uint64_t len) {
    const uint64_t at = m_heap;
    m_heap = align_up(m_heap + len, 16);
    return at;
  }

  void write_desc(uint32_t q, uint64_t table, uint32_t idx, uint64_t addr, uint32_t len,
                  uint16_t flags, uint16_t next) {
    const uint64_t d = table + 16ull * idx;
    (void)q;
    (void)m_mem.write_le<uint64_t>(d, addr);
    (void)m_mem.write_le<uint32_t>(d + 8, len);
    (void)m_mem.write_le<uint16_t>(d + 12, flags);
    (void)m_mem.write_le<uint16_t>(d + 14, next);
  }

  // Puts head into the avail ring and bumps avail idx (does not notify).
  void publish(uint32_t q, uint16_t head) {
    (void)m_mem.write_le<uint16_t>(avail(q) + 4 + 2ull * (m_avail_idx[q] % m_size), head);
    m_avail_idx[q]++;
    (void)m_mem.store_u16_release(avail(q) + 2, m_avail_idx[q]);
  }

  // Builds a direct chain from consecutive descriptors; returns its head.
  uint16_t add_chain(uint32_t q, const std::vector<Seg>& segs) {
    const uint16_t head = static_cast<uint16_t>(m_next_desc[q] % m_size);
    for (size_t i = 0; i < segs.size(); i++) {
      const uint32_t idx = (m_next_desc[q] + static_cast<uint32_t>(i)) % m_size;
      const bool more = i + 1 < segs.size();
      write_desc(q, desc(q), idx, segs[i].gpa, segs[i].len,
                 static_cast<uint16_t>((segs[i].writable ? kDescFWrite : 0) | (more ? kDescFNext : 0)),
                 static_cast<uint16_t>((idx + 1) % m_size));
    }
    m_next_desc[q] += static_cast<uint32_t>(segs.size());
    publish(q, head);
    return head;
  }

  // One descriptor pointing at an indirect table holding segs.
  uint16_t add_indirect_chain(uint32_t q, const std::vector<Seg>& segs) {
    const uint64_t table = alloc(16 * segs.size());
    for (size_t i = 0; i < segs.size(); i++) {
      const bool more = i + 1 < segs.size();
      write_desc(q, table, static_cast<uint32_t>(i), segs[i].gpa, segs[i].len,
                 static_cast<uint16_t>((segs[i].writable ? kDescFWrite : 0) | (more ? kDescFNext : 0)),
                 static_cast<uint16_t>(i + 1));
    }
    const uint16_t head = static_cast<uint16_t>(m_next_desc[q]++ % m_size);
    write_desc(q, desc(q), head, table, static_cast<uint32_t>(16 * segs.size()), kDescFIndirect, 0);
    publish(q, head);
    return head;
  }

  void notify(uint32_t q) { set(MmioReg::kQueueNotify, q); }

  uint16_t used_idx(uint32_t q) { return *m_mem.read_le<uint16_t>(used(q) + 2); }
  uint32_t used_id(uint32_t q, uint16_t i) { return *m_mem.read_le<uint32_t>(used(q) + 4 + 8ull * (i % m_size)); }
  uint32_t used_len(uint32_t q, uint16_t i) { return *m_mem.read_le<uint32_t>(used(q) + 8 + 8ull * (i % m_size)); }
  void set_used_event(uint32_t q, uint16_t v) { (void)m_mem.write_le<uint16_t>(avail(q) + 4 + 2ull * m_size, v); }
  uint16_t avail_event(uint32_t q) { return *m_mem.read_le<uint16_t>(used(q) + 4 + 8ull * m_size); }
  void set_avail_flags(uint32_t q, uint16_t v) { (void)m_mem.write_le<uint16_t>(avail(q), v); }
  void ack_all() { set(MmioReg::kInterruptAck, reg(MmioReg::kInterruptStatus)); }

  GuestMemory& mem() { return m_mem; }
  std::vector<uint8_t> bytes(uint64_t gpa, size_t len) {
    std::vector<uint8_t> v(len);
    (void)m_mem.read(gpa, v);
    return v;
  }

 private:
  VirtioMmio& m_dev;
  GuestMemory& m_mem;
  uint16_t m_size = kQueueSize;
  uint64_t m_heap = kRamBase + 0x100000;
  std::vector<uint32_t> m_next_desc;
  std::vector<uint16_t> m_avail_idx;
};

}  // namespace doppel::virtio::testing
