// virtio-net (virtio 1.2 5.1), device id 1, one queue pair on a NetBackend: a TAP
// (backends/tap.h) or user-mode networking (backends/slirp.h).
//
// TX runs on the notifying thread (a non-blocking write per frame). RX runs on a worker
// thread that polls the TAP only while the guest has receive buffers posted; when it runs
// out it stops reading the TAP (the kernel queues or drops) until the driver adds buffers.
// Frames carry the 12-byte virtio_net_hdr unchanged between guest and TAP.
//
// Rate limiters (backends/rate_limiter.h), one per direction, count frames as ops and their
// bytes (the virtio header excluded) as bandwidth. TX frames over the limit wait, in order,
// in a ThrottleQueue whose timer thread sends them; RX stops reading the TAP while its
// buckets are empty (the kernel queues, as when the guest posts no buffers) and resumes on a
// poll timeout when they have refilled. Nothing is dropped. The buckets are not part of the
// saved state: a restored VM starts with full buckets.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "backends/net_backend.h"
#include "backends/rate_limiter.h"
#include "backends/tap.h"
#include "backends/throttle_queue.h"
#include "base/unique_fd.h"
#include "devices/virtio/virtio_device.h"

namespace doppel::virtio {

// Feature bits (5.1.3).
constexpr uint64_t kNetFCsum = 1ull << 0;
constexpr uint64_t kNetFGuestCsum = 1ull << 1;
constexpr uint64_t kNetFMac = 1ull << 5;
constexpr uint64_t kNetFGuestTso4 = 1ull << 7;
constexpr uint64_t kNetFGuestTso6 = 1ull << 8;
constexpr uint64_t kNetFGuestEcn = 1ull << 9;
constexpr uint64_t kNetFHostTso4 = 1ull << 11;
constexpr uint64_t kNetFHostTso6 = 1ull << 12;
constexpr uint64_t kNetFHostEcn = 1ull << 13;
constexpr uint64_t kNetFStatus = 1ull << 16;

class VirtioNet final : public VirtioDevice {
 public:
  static constexpr uint16_t kQueueSize = 256;
  static constexpr unsigned kRxQ = 0;
  static constexpr unsigned kTxQ = 1;

  static Result<std::unique_ptr<VirtioNet>> create(GuestMemory& mem, std::unique_ptr<NetBackend> tap,
                                                   std::array<uint8_t, 6> mac, std::string name,
                                                   const RateLimiterConfig& rx_limits = {},
                                                   const RateLimiterConfig& tx_limits = {});
  ~VirtioNet() override;

  std::string_view name() const override { return m_name; }
  uint32_t device_id() const override { return 1; }
  uint64_t device_features() const override;
  void read_config(uint64_t offset, std::span<uint8_t> out) const override;
  void activate() override;
  void process_queue(unsigned q) override;
  void quiesce() override;

  uint64_t tx_dropped() const { return m_tx_dropped.load(); }
  // Replaces the buckets the patches give (an API PATCH). Threads: any.
  void set_rate_limiters(const RateLimiterPatch& rx, const RateLimiterPatch& tx);
  std::vector<RateLimiterState> save_limiters() override;  // rx, tx
  Result<void> restore_limiters(std::span<const RateLimiterState> states) override;

 private:
  VirtioNet(GuestMemory& mem, std::unique_ptr<NetBackend> tap, std::array<uint8_t, 6> mac, std::string name);
  void rx_loop();
  void wake();
  void transmit(const DescriptorChain& chain);

  std::unique_ptr<NetBackend> m_tap;  // the backend: a TAP or user networking
  std::array<uint8_t, 6> m_mac;
  std::string m_name;
  UniqueFd m_wake;
  std::thread m_rx_thread;
  std::atomic<bool> m_stop{false};
  std::atomic<bool> m_rx_blocked{false};
  std::atomic<uint64_t> m_tx_dropped{0};
  std::mutex m_rx_limit_lock;
  RateLimiter m_rx_limiter;                      // GUARDED_BY(m_rx_limit_lock)
  std::unique_ptr<ThrottleQueue> m_tx_throttle;  // passes everything at once when unlimited
};

}  // namespace doppel::virtio
