// The device half of a virtio device (virtio 1.2 5.x): queues, config space, request
// processing. A transport (virtio_mmio.h) owns it and exposes it to the guest. Nothing here
// knows which engine runs the guest.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include <sys/uio.h>

#include "backends/rate_limiter.h"
#include "base/result.h"
#include "core/counter.h"
#include "core/guest_memory.h"
#include "devices/virtio/virtqueue.h"

namespace doppel::virtio {

// Reserved feature bits (virtio 1.2 6).
constexpr uint64_t kFIndirectDesc = 1ull << 28;
constexpr uint64_t kFEventIdx = 1ull << 29;
constexpr uint64_t kFVersion1 = 1ull << 32;

// Device status bits (virtio 1.2 2.1).
constexpr uint32_t kStatusAcknowledge = 1;
constexpr uint32_t kStatusDriver = 2;
constexpr uint32_t kStatusDriverOk = 4;
constexpr uint32_t kStatusFeaturesOk = 8;
constexpr uint32_t kStatusNeedsReset = 64;
constexpr uint32_t kStatusFailed = 128;

// A device's rate limiters in a snapshot (section "virtio.N.limits", beside the
// transport's "virtio.N"): VirtioDevice::save_limiters().
struct VirtioLimitsState {
  static constexpr uint32_t kVersion = 1;
  uint32_t version = kVersion;
  std::vector<RateLimiterState> limiters;
};

// What a device asks of its transport. Threads: any thread may call these.
class Transport {
 public:
  virtual ~Transport() = default;
  // Used buffer notification (InterruptStatus bit 0).
  virtual void signal_used() = 0;
  // Configuration change notification (bit 1); bumps ConfigGeneration.
  virtual void signal_config_change() = 0;
  // The device cannot go on (a broken ring): sets DEVICE_NEEDS_RESET and notifies.
  virtual void signal_needs_reset() = 0;
};

class VirtioDevice {
 public:
  VirtioDevice(GuestMemory& mem, unsigned num_queues, uint16_t queue_max_size);
  virtual ~VirtioDevice() = default;
  VirtioDevice(const VirtioDevice&) = delete;
  VirtioDevice& operator=(const VirtioDevice&) = delete;

  virtual std::string_view name() const = 0;
  virtual uint32_t device_id() const = 0;
  // Device-specific feature bits; the transport adds VERSION_1, EVENT_IDX, INDIRECT_DESC.
  virtual uint64_t device_features() const = 0;
  // Config space bytes at [offset, offset+out.size()); bytes past the end read as 0.
  virtual void read_config(uint64_t offset, std::span<uint8_t> out) const = 0;
  virtual void write_config(uint64_t /*offset*/, std::span<const uint8_t> /*in*/) {}
  // DRIVER_OK: features are final, queues configured. Starts any worker.
  // Threads: vCPU, under the transport lock.
  virtual void activate() {}
  // The driver made buffers available on queue q (QueueNotify or an ioeventfd).
  // Threads: any; concurrent calls for different queues are allowed.
  virtual void process_queue(unsigned q) = 0;
  // Reset or VM stop: completes in-flight requests, stops workers. When it returns no device
  // thread touches guest memory or the queues until the next activate(). Idempotent.
  virtual void quiesce() {}
  // After the transport restored a snapshot's state, before activate(): whatever the device
  // holds on the host (connections) did not come along. Threads: the VMM's, device quiescent.
  virtual void restored() {}
  // After quiesce(): makes what the device wrote to the host durable (a disk's fdatasync),
  // before the VM moves to another host. Threads: the VMM's, with the device quiescent.
  virtual Result<void> flush_to_host() { return ok(); }
  // A disk device's image locks (backends/image_lock.h), handed over by a migration: the
  // source inactivates its images at the switch-over (flushed first), the destination, which
  // opened them inactive, activates them. Threads: the VMM's, with the device quiescent.
  virtual Result<void> activate_images() { return ok(); }
  virtual void inactivate_images() {}
  // The device's rate limiters (backends/rate_limiter.h), in a fixed order per device type
  // (a disk: one; a network interface: rx, tx), for a snapshot. restore_limiters() takes
  // what save_limiters() gave. Threads: the VMM's, with the device quiescent.
  virtual std::vector<RateLimiterState> save_limiters() { return {}; }
  virtual Result<void> restore_limiters(std::span<const RateLimiterState> states);

  unsigned num_queues() const { return static_cast<unsigned>(m_queues.size()); }
  Virtqueue& queue(unsigned i) { return *m_queues.at(i); }
  uint64_t driver_features() const { return m_driver_features.load(std::memory_order_acquire); }
  bool negotiated(uint64_t feature) const { return (driver_features() & feature) != 0; }

  // Called by the transport.
  void attach(Transport& transport) { m_transport = &transport; }
  void set_driver_features(uint64_t f) { m_driver_features.store(f, std::memory_order_release); }

  // Totals over every queue since the device was created (GET /metrics): requests completed,
  // bytes the driver offered to the device (device-readable bytes of the chains popped) and
  // bytes the device returned (the used lengths), and chains or rings refused as malformed.
  Counters counters() const;

 protected:
  GuestMemory& mem() { return m_mem; }
  Transport& transport() { return *m_transport; }
  // The next chain of queue q, or nullopt if empty. A broken ring raises needs-reset.
  std::optional<DescriptorChain> pop(unsigned q);
  // Returns the chain to the driver and interrupts it if it asked for that.
  void complete(unsigned q, uint16_t head, uint32_t len);

 private:
  GuestMemory& m_mem;
  std::vector<std::unique_ptr<Virtqueue>> m_queues;
  Transport* m_transport = nullptr;
  std::atomic<uint64_t> m_driver_features{0};
  std::atomic<uint64_t> m_requests{0}, m_bytes_from_guest{0}, m_bytes_to_guest{0};
  std::atomic<uint64_t> m_bad_chains{0};
};

// iovecs for bytes [skip, skip+len) of a list of buffers (len = UINT64_MAX: to the end).
std::vector<iovec> slice(const std::vector<Buffer>& bufs, uint64_t skip, uint64_t len = UINT64_MAX);
// Copies up to out.size() bytes starting at byte `skip` of the buffers; returns bytes copied.
size_t copy_from(const std::vector<Buffer>& bufs, uint64_t skip, std::span<uint8_t> out);
// Copies `in` into the buffers starting at byte `skip`; returns bytes copied.
size_t copy_to(const std::vector<Buffer>& bufs, uint64_t skip, std::span<const uint8_t> in);
// Little-endian config-space helper: copies the window [offset, offset+out.size()) of `cfg`.
void read_config_bytes(std::span<const uint8_t> cfg, uint64_t offset, std::span<uint8_t> out);

}  // namespace doppel::virtio
