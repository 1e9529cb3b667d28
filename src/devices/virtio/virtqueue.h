// A split virtqueue (virtio 1.2 2.7): descriptor table, available ring, used ring, with
// VIRTIO_F_INDIRECT_DESC and VIRTIO_F_EVENT_IDX.
//
// Everything the guest wrote is hostile: every descriptor is copied once out of guest RAM,
// then validated (index, address, length, direction, chain length, indirect table). A bad
// chain is returned to the device as a chain with an error so it can fail that request; a
// bad ring (avail index jumped by more than the queue size, a head index out of range, rings
// outside RAM) breaks the queue: pop() answers kBroken and the transport sets
// DEVICE_NEEDS_RESET.
//
// Threads: every public method may be called from any thread (vCPU, ioeventfd handler,
// device worker). m_lock guards all mutable state. Lock order: transport lock, then queue
// lock, then the transport's interrupt lock.
#pragma once

#include <cstdint>
#include <mutex>
#include <optional>
#include <string_view>
#include <vector>

#include "core/guest_memory.h"

namespace doppel::virtio {

// Descriptor flags (virtio 1.2 2.7.5).
constexpr uint16_t kDescFNext = 1;
constexpr uint16_t kDescFWrite = 2;
constexpr uint16_t kDescFIndirect = 4;
// Available ring flags (2.7.6) and used ring flags (2.7.8).
constexpr uint16_t kAvailFNoInterrupt = 1;

constexpr uint16_t kMaxQueueSize = 32768;  // 2.7: Queue Size is at most 32768

// One guest buffer of a chain, already checked to lie inside one RAM region. Device-writable
// buffers (DescriptorChain::writable, ::tail) are marked dirty in GuestMemory when the chain
// is popped, so a device writes through `host` without marking anything itself.
struct Buffer {
  uint64_t gpa;
  uint32_t len;
  uint8_t* host;  // guest RAM behind [gpa, gpa+len)
};

enum class ChainError {
  kNone,
  kLoop,                // more descriptors than the queue (or table) holds
  kBadIndex,            // a next index >= queue size
  kOutOfRam,            // a buffer or indirect table outside guest RAM
  kWrongDirection,      // a device-readable descriptor after a device-writable one
  kTooLong,             // the chain's total length exceeds the queue's limit
  kNestedIndirect,      // an indirect descriptor inside an indirect table
  kBadIndirectTable,    // indirect table length 0 / not a multiple of 16 / INDIRECT|NEXT
  kIndirectNotNegotiated,
};
std::string_view to_string(ChainError error);

struct DescriptorChain {
  uint16_t head = 0;
  std::vector<Buffer> readable;   // device-readable, in order
  std::vector<Buffer> writable;   // device-writable, in order
  uint64_t readable_len = 0;
  uint64_t writable_len = 0;
  ChainError error = ChainError::kNone;  // when set, the buffers are those read before it
  // With an error: the chain's last descriptor, if it is device-writable, non-empty and in
  // RAM (where a device like virtio-blk can still report a status byte).
  std::optional<Buffer> tail;
};

class Virtqueue {
 public:
  enum class PopStatus { kEmpty, kChain, kBroken };
  struct PopResult {
    PopStatus status = PopStatus::kEmpty;
    DescriptorChain chain;
  };

  // Saved with the transport (rule 9).
  struct State {
    uint16_t size = 0;
    bool ready = false;
    uint64_t desc = 0, driver = 0, device = 0;
    uint16_t last_avail = 0, used_idx = 0;
    bool broken = false;
  };

  Virtqueue(GuestMemory& mem, uint16_t max_size) : m_mem(mem), m_max_size(max_size) {}
  Virtqueue(const Virtqueue&) = delete;
  Virtqueue& operator=(const Virtqueue&) = delete;

  // Configuration, written by the transport while the queue is not ready.
  uint16_t max_size() const { return m_max_size; }
  void set_size(uint16_t size);
  void set_desc_addr(uint64_t gpa);
  void set_driver_addr(uint64_t gpa);
  void set_device_addr(uint64_t gpa);
  // Enables the queue: false (and stays disabled) if the size is not a power of two.
  bool set_ready(bool ready);
  // Negotiated features that change ring behaviour.
  void set_features(bool event_idx, bool indirect);
  // Requests whose chain is longer than this fail with kTooLong (default 256 MiB).
  void set_max_chain_bytes(uint64_t bytes);

  uint16_t size() const;
  bool ready() const;
  bool broken() const;
  uint64_t desc_addr() const;
  uint64_t driver_addr() const;
  uint64_t device_addr() const;

  // Back to the reset state (ready = 0, indices 0, size = max).
  void reset();

  // The next available chain. With EVENT_IDX, an empty queue publishes avail_event so the
  // driver notifies on its next addition (and re-checks, so no addition is missed).
  PopResult pop();
  // Returns a chain the device did not use (net RX with no packet after all).
  void unpop();

  // Puts (head, len) into the used ring and publishes the index with release ordering.
  // Returns true if the driver wants an interrupt for it (EVENT_IDX used_event, else the
  // NO_INTERRUPT flag). Does nothing (returns false) on a queue that is not ready.
  bool push(uint16_t head, uint32_t len);

  State save() const;
  void restore(const State& state);

 private:
  bool ring_addresses_ok() const;  // caller holds m_lock
  void walk(uint16_t head, DescriptorChain& chain) const;
  std::optional<Buffer> find_tail(uint16_t head) const;
  bool add_buffer(uint64_t gpa, uint32_t len, bool writable, DescriptorChain& chain) const;

  GuestMemory& m_mem;
  const uint16_t m_max_size;
  mutable std::mutex m_lock;
  // All below GUARDED_BY(m_lock).
  uint16_t m_size = 0;
  bool m_ready = false;
  bool m_broken = false;
  uint64_t m_desc = 0, m_driver = 0, m_device = 0;
  uint16_t m_last_avail = 0;
  uint16_t m_used_idx = 0;
  bool m_event_idx = false;
  bool m_indirect = false;
  uint64_t m_max_chain_bytes = 256 * MiB;
};

}  // namespace doppel::virtio
