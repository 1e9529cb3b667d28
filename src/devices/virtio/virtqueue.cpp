#include "devices/virtio/virtqueue.h"

#include <atomic>

namespace doppel::virtio {

namespace {

constexpr uint64_t kDescSize = 16;

struct Desc {
  uint64_t addr;
  uint32_t len;
  uint16_t flags;
  uint16_t next;
};

Desc decode_desc(const uint8_t* p) {
  return Desc{load_le<uint64_t>(p), load_le<uint32_t>(p + 8), load_le<uint16_t>(p + 12),
              load_le<uint16_t>(p + 14)};
}

}  // namespace

std::string_view to_string(ChainError error) {
  switch (error) {
    case ChainError::kNone: return "none";
    case ChainError::kLoop: return "descriptor loop";
    case ChainError::kBadIndex: return "descriptor index out of range";
    case ChainError::kOutOfRam: return "buffer outside guest RAM";
    case ChainError::kWrongDirection: return "device-readable descriptor after a writable one";
    case ChainError::kTooLong: return "chain too long";
    case ChainError::kNestedIndirect: return "nested indirect descriptor";
    case ChainError::kBadIndirectTable: return "bad indirect table";
    case ChainError::kIndirectNotNegotiated: return "indirect descriptor not negotiated";
  }
  return "?";
}

void Virtqueue::set_size(uint16_t size) {
  std::lock_guard lock(m_lock);
  if (!m_ready) m_size = size;
}
void Virtqueue::set_desc_addr(uint64_t gpa) {
  std::lock_guard lock(m_lock);
  if (!m_ready) m_desc = gpa;
}
void Virtqueue::set_driver_addr(uint64_t gpa) {
  std::lock_guard lock(m_lock);
  if (!m_ready) m_driver = gpa;
}
void Virtqueue::set_device_addr(uint64_t gpa) {
  std::lock_guard lock(m_lock);
  if (!m_ready) m_device = gpa;
}

bool Virtqueue::set_ready(bool ready) {
  std::lock_guard lock(m_lock);
  if (!ready) {
    m_ready = false;
    return true;
  }
  // virtio 1.2 2.7: split queue sizes are powers of two up to the device's maximum.
  if (!is_power_of_two(m_size) || m_size > m_max_size) return false;
  m_ready = true;
  return true;
}

void Virtqueue::set_features(bool event_idx, bool indirect) {
  std::lock_guard lock(m_lock);
  m_event_idx = event_idx;
  m_indirect = indirect;
}

void Virtqueue::set_max_chain_bytes(uint64_t bytes) {
  std::lock_guard lock(m_lock);
  m_max_chain_bytes = bytes;
}

uint16_t Virtqueue::size() const {
  std::lock_guard lock(m_lock);
  return m_size;
}
bool Virtqueue::ready() const {
  std::lock_guard lock(m_lock);
  return m_ready;
}
bool Virtqueue::broken() const {
  std::lock_guard lock(m_lock);
  return m_broken;
}
uint64_t Virtqueue::desc_addr() const {
  std::lock_guard lock(m_lock);
  return m_desc;
}
uint64_t Virtqueue::driver_addr() const {
  std::lock_guard lock(m_lock);
  return m_driver;
}
uint64_t Virtqueue::device_addr() const {
  std::lock_guard lock(m_lock);
  return m_device;
}

void Virtqueue::reset() {
  std::lock_guard lock(m_lock);
  m_size = m_max_size;
  m_ready = false;
  m_broken = false;
  m_desc = m_driver = m_device = 0;
  m_last_avail = 0;
  m_used_idx = 0;
  m_event_idx = false;
  m_indirect = false;
}

bool Virtqueue::ring_addresses_ok() const {
  // virtio 1.2 2.7 table: alignment 16 / 2 / 4; sizes 16*n, 6+2*n, 6+8*n.
  const uint64_t n = m_size;
  return m_desc % 16 == 0 && m_driver % 2 == 0 && m_device % 4 == 0 &&
         m_mem.contains(m_desc, kDescSize * n) && m_mem.contains(m_driver, 6 + 2 * n) &&
         m_mem.contains(m_device, 6 + 8 * n);
}

Virtqueue::PopResult Virtqueue::pop() {
  std::lock_guard lock(m_lock);
  PopResult result;
  if (m_broken) {
    result.status = PopStatus::kBroken;
    return result;
  }
  if (!m_ready) return result;
  if (!ring_addresses_ok()) {
    m_broken = true;
    result.status = PopStatus::kBroken;
    return result;
  }
  auto avail_idx = m_mem.load_u16_acquire(m_driver + 2);
  if (!avail_idx) {
    m_broken = true;
    result.status = PopStatus::kBroken;
    return result;
  }
  uint16_t pending = static_cast<uint16_t>(*avail_idx - m_last_avail);
  if (pending == 0 && m_event_idx) {
    // 2.7.10: ask to be notified at the next addition, then look again in case the driver
    // added a buffer before it could see avail_event.
    (void)m_mem.store_u16_release(m_device + 4 + 8 * uint64_t{m_size}, *avail_idx);
    std::atomic_thread_fence(std::memory_order_seq_cst);
    avail_idx = m_mem.load_u16_acquire(m_driver + 2);
    if (!avail_idx) return result;
    pending = static_cast<uint16_t>(*avail_idx - m_last_avail);
  }
  if (pending == 0) return result;
  if (pending > m_size) {
    m_broken = true;
    result.status = PopStatus::kBroken;
    return result;
  }
  const uint64_t slot = m_driver + 4 + 2 * uint64_t{static_cast<uint16_t>(m_last_avail % m_size)};
  const auto head = m_mem.read_le<uint16_t>(slot);
  if (!head || *head >= m_size) {
    m_broken = true;
    result.status = PopStatus::kBroken;
    return result;
  }
  m_last_avail++;
  result.status = PopStatus::kChain;
  result.chain.head = *head;
  walk(*head, result.chain);
  if (result.chain.error != ChainError::kNone) result.chain.tail = find_tail(*head);
  return result;
}

void Virtqueue::unpop() {
  std::lock_guard lock(m_lock);
  m_last_avail--;
}

bool Virtqueue::add_buffer(uint64_t gpa, uint32_t len, bool writable,
                           DescriptorChain& chain) const {
  if (!writable && !chain.writable.empty()) {
    chain.error = ChainError::kWrongDirection;
    return false;
  }
  if (chain.readable_len + chain.writable_len + len > m_max_chain_bytes) {
    chain.error = ChainError::kTooLong;
    return false;
  }
  // A device-writable buffer is marked dirty now, before the device writes it: dirty pages
  // are read and cleared only with the devices quiesced, when every popped chain is done.
  uint8_t* host = writable ? m_mem.host_ptr_for_write(gpa, len) : m_mem.host_ptr(gpa, len);
  if (!host) {
    chain.error = ChainError::kOutOfRam;
    return false;
  }
  if (len == 0) return true;
  if (writable) {
    chain.writable.push_back(Buffer{gpa, len, host});
    chain.writable_len += len;
  } else {
    chain.readable.push_back(Buffer{gpa, len, host});
    chain.readable_len += len;
  }
  return true;
}

void Virtqueue::walk(uint16_t head, DescriptorChain& chain) const {
  const uint8_t* table = m_mem.host_ptr(m_desc, kDescSize * m_size);  // checked by caller
  uint32_t table_size = m_size;
  bool indirect = false;
  uint32_t idx = head;
  uint32_t count = 0;
  for (;;) {
    if (idx >= table_size) {
      chain.error = ChainError::kBadIndex;
      return;
    }
    if (++count > table_size) {
      chain.error = ChainError::kLoop;
      return;
    }
    // One copy out of guest RAM; the guest may rewrite the table meanwhile.
    const Desc d = decode_desc(table + kDescSize * idx);
    if (d.flags & kDescFIndirect) {
      // 2.7.5.3.1: no nesting, no INDIRECT|NEXT, a whole number of descriptors.
      if (indirect) {
        chain.error = ChainError::kNestedIndirect;
        return;
      }
      if (!m_indirect) {
        chain.error = ChainError::kIndirectNotNegotiated;
        return;
      }
      if ((d.flags & kDescFNext) || d.len == 0 || d.len % kDescSize != 0 ||
          d.len / kDescSize > kMaxQueueSize) {
        chain.error = ChainError::kBadIndirectTable;
        return;
      }
      table = m_mem.host_ptr(d.addr, d.len);
      if (!table) {
        chain.error = ChainError::kOutOfRam;
        return;
      }
      table_size = d.len / static_cast<uint32_t>(kDescSize);
      indirect = true;
      idx = 0;
      count = 0;
      continue;
    }
    if (!add_buffer(d.addr, d.len, (d.flags & kDescFWrite) != 0, chain)) return;
    if (!(d.flags & kDescFNext)) return;
    idx = d.next;
  }
}

std::optional<Buffer> Virtqueue::find_tail(uint16_t head) const {
  const uint8_t* table = m_mem.host_ptr(m_desc, kDescSize * m_size);
  uint32_t table_size = m_size;
  bool indirect = false;
  uint32_t idx = head;
  uint32_t count = 0;
  for (;;) {
    if (idx >= table_size || ++count > table_size) return std::nullopt;
    const Desc d = decode_desc(table + kDescSize * idx);
    if (d.flags & kDescFIndirect) {
      if (indirect || !m_indirect || (d.flags & kDescFNext) || d.len == 0 ||
          d.len % kDescSize != 0 || d.len / kDescSize > kMaxQueueSize)
        return std::nullopt;
      table = m_mem.host_ptr(d.addr, d.len);
      if (!table) return std::nullopt;
      table_size = d.len / static_cast<uint32_t>(kDescSize);
      indirect = true;
      idx = 0;
      count = 0;
      continue;
    }
    if (!(d.flags & kDescFNext)) {
      if (!(d.flags & kDescFWrite) || d.len == 0) return std::nullopt;
      uint8_t* host = m_mem.host_ptr_for_write(d.addr, d.len);  // for a status byte
      if (!host) return std::nullopt;
      return Buffer{d.addr, d.len, host};
    }
    idx = d.next;
  }
}

bool Virtqueue::push(uint16_t head, uint32_t len) {
  std::lock_guard lock(m_lock);
  if (!m_ready || m_broken || head >= m_size || !ring_addresses_ok()) return false;
  const uint64_t elem = m_device + 4 + 8 * uint64_t{static_cast<uint16_t>(m_used_idx % m_size)};
  (void)m_mem.write_le<uint32_t>(elem, head);
  (void)m_mem.write_le<uint32_t>(elem + 4, len);
  const uint16_t old_idx = m_used_idx;
  m_used_idx++;
  (void)m_mem.store_u16_release(m_device + 2, m_used_idx);
  // The index must be visible before we read the driver's suppression state (2.7.7.2).
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (m_event_idx) {
    const auto used_event = m_mem.load_u16_acquire(m_driver + 4 + 2 * uint64_t{m_size});
    if (!used_event) return true;
    // vring_need_event(): did new_idx step past used_event?
    return static_cast<uint16_t>(m_used_idx - *used_event - 1) <
           static_cast<uint16_t>(m_used_idx - old_idx);
  }
  const auto flags = m_mem.load_u16_acquire(m_driver);
  return !flags || !(*flags & kAvailFNoInterrupt);
}

Virtqueue::State Virtqueue::save() const {
  std::lock_guard lock(m_lock);
  return State{m_size, m_ready, m_desc, m_driver, m_device, m_last_avail, m_used_idx, m_broken};
}

void Virtqueue::restore(const State& s) {
  std::lock_guard lock(m_lock);
  m_size = s.size;
  m_ready = s.ready && is_power_of_two(s.size) && s.size <= m_max_size;
  m_desc = s.desc;
  m_driver = s.driver;
  m_device = s.device;
  m_last_avail = s.last_avail;
  m_used_idx = s.used_idx;
  m_broken = s.broken;
}

}  // namespace doppel::virtio
