#include "devices/virtio/virtio_net.h"

#include <linux/if_tun.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>

#include "base/log.h"
#include "base/thread_seal.h"

namespace doppel::virtio {

Result<std::unique_ptr<VirtioNet>> VirtioNet::create(GuestMemory& mem, std::unique_ptr<NetBackend> tap,
                                                     std::array<uint8_t, 6> mac, std::string name,
                                                     const RateLimiterConfig& rx_limits,
                                                     const RateLimiterConfig& tx_limits) {
  auto dev = std::unique_ptr<VirtioNet>(new VirtioNet(mem, std::move(tap), mac, std::move(name)));
  dev->m_rx_limiter = RateLimiter(rx_limits, monotonic_ns());
  dev->m_tx_throttle = std::make_unique<ThrottleQueue>(tx_limits, dev->m_name + "-tx");
  dev->m_wake.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!dev->m_wake.valid()) return Error::from_errno(fmt::format("{}: eventfd", dev->m_name));
  return dev;
}

VirtioNet::VirtioNet(GuestMemory& mem, std::unique_ptr<NetBackend> tap, std::array<uint8_t, 6> mac,
                     std::string name)
    : VirtioDevice(mem, 2, kQueueSize), m_tap(std::move(tap)), m_mac(mac), m_name(std::move(name)) {}

VirtioNet::~VirtioNet() { quiesce(); }

void VirtioNet::set_rate_limiters(const RateLimiterPatch& rx, const RateLimiterPatch& tx) {
  {
    std::lock_guard lock(m_rx_limit_lock);
    m_rx_limiter.apply(rx, monotonic_ns());
  }
  m_tx_throttle->set_limits(tx);
  wake();  // the RX thread may be waiting for the old buckets
}

std::vector<RateLimiterState> VirtioNet::save_limiters() {
  std::lock_guard lock(m_rx_limit_lock);
  return {m_rx_limiter.save(monotonic_ns()), m_tx_throttle->save()};
}

Result<void> VirtioNet::restore_limiters(std::span<const RateLimiterState> states) {
  if (states.size() != 2)
    return Error::format("{}: a network interface has two rate limiters (rx, tx), the snapshot "
                         "has {}", m_name, states.size());
  RateLimiter rx = TRY(RateLimiter::restore(states[0], monotonic_ns()).context(m_name + ": rx rate limiter"));
  TRY(m_tx_throttle->restore(states[1]).context(m_name + ": tx rate limiter"));
  {
    std::lock_guard lock(m_rx_limit_lock);
    m_rx_limiter = rx;
  }
  wake();
  return ok();
}

uint64_t VirtioNet::device_features() const {
  // A TAP with a vnet header always accepts partial checksums and GSO frames from us.
  uint64_t f = kNetFMac | kNetFStatus;
  if (m_tap->accepts_offloads()) f |= kNetFCsum | kNetFHostTso4 | kNetFHostTso6 | kNetFHostEcn;
  if (m_tap->supports_offloads())
    f |= kNetFGuestCsum | kNetFGuestTso4 | kNetFGuestTso6 | kNetFGuestEcn;
  return f;
}

void VirtioNet::read_config(uint64_t offset, std::span<uint8_t> out) const {
  // struct virtio_net_config: mac[6], status, max_virtqueue_pairs, mtu.
  std::array<uint8_t, 12> cfg{};
  std::copy(m_mac.begin(), m_mac.end(), cfg.begin());
  store_le<uint16_t>(&cfg[6], 1);  // VIRTIO_NET_S_LINK_UP
  store_le<uint16_t>(&cfg[8], 1);
  read_config_bytes(cfg, offset, out);
}

void VirtioNet::wake() {
  const uint64_t one = 1;
  (void)!::write(m_wake.get(), &one, sizeof one);
}

void VirtioNet::activate() {
  // Tell the TAP which offloaded frames the guest accepts (5.1.6.4).
  unsigned tun = 0;
  if (negotiated(kNetFGuestCsum)) {
    tun |= TUN_F_CSUM;
    if (negotiated(kNetFGuestTso4)) tun |= TUN_F_TSO4;
    if (negotiated(kNetFGuestTso6)) tun |= TUN_F_TSO6;
    if (negotiated(kNetFGuestEcn)) tun |= TUN_F_TSO_ECN;
  }
  if (auto r = m_tap->set_offloads(tun); !r.ok()) spdlog::warn("{}: {}", m_name, r.error().message());
  if (m_rx_thread.joinable()) return;
  m_stop = false;
  m_rx_blocked = false;
  m_rx_thread = std::thread([this] { rx_loop(); });
}

void VirtioNet::quiesce() {
  if (m_tx_throttle) m_tx_throttle->drain_now();
  if (!m_rx_thread.joinable()) return;
  m_stop = true;
  wake();
  m_rx_thread.join();
}

void VirtioNet::process_queue(unsigned q) {
  if (q == kRxQ) {
    m_rx_blocked = false;
    wake();
    return;
  }
  if (q != kTxQ) return;
  while (auto chain = pop(kTxQ)) {
    const uint64_t bytes = chain->readable_len > NetBackend::kVnetHdrSize ? chain->readable_len - NetBackend::kVnetHdrSize : 0;
    m_tx_throttle->submit(bytes, [this, c = std::move(*chain)] { transmit(c); });
  }
}

void VirtioNet::transmit(const DescriptorChain& chain) {
  if (chain.error != ChainError::kNone || chain.readable_len < NetBackend::kVnetHdrSize) {
    m_tx_dropped++;
  } else {
    const auto iov = slice(chain.readable, 0);
    if (iov.size() > IOV_MAX || ::writev(m_tap->fd(), iov.data(), static_cast<int>(iov.size())) < 0)
      m_tx_dropped++;
  }
  complete(kTxQ, chain.head, 0);
}

void VirtioNet::rx_loop() {
  enter_thread(ThreadKind::kNetRx);
  while (!m_stop) {
    std::array<pollfd, 2> fds{};
    nfds_t n = 0;
    fds[n++] = {m_wake.get(), POLLIN, 0};
    int timeout_ms = -1;
    uint64_t limit_wait = 0;
    {
      // Over the RX limit: leave the TAP alone until the buckets hold a frame's op and a byte.
      std::lock_guard lock(m_rx_limit_lock);
      limit_wait = m_rx_limiter.wait_ns(1, monotonic_ns());
    }
    if (limit_wait != 0) timeout_ms = static_cast<int>(std::min<uint64_t>((limit_wait + 999'999) / 1'000'000, 1000));
    else if (!m_rx_blocked) fds[n++] = {m_tap->fd(), POLLIN, 0};
    if (::poll(fds.data(), n, timeout_ms) < 0) continue;
    if (fds[0].revents) {
      uint64_t v;
      (void)!::read(m_wake.get(), &v, sizeof v);
    }
    if (n < 2 || !fds[1].revents) continue;
    // Deliver what the TAP has, one frame per chain, until it runs dry or we run out.
    while (!m_stop) {
      auto chain = pop(kRxQ);
      if (!chain) {
        m_rx_blocked = true;
        if (queue(kRxQ).pop().status == Virtqueue::PopStatus::kChain) {
          queue(kRxQ).unpop();
          m_rx_blocked = false;
          continue;
        }
        break;
      }
      if (chain->error != ChainError::kNone || chain->writable_len < NetBackend::kVnetHdrSize) {
        complete(kRxQ, chain->head, 0);
        continue;
      }
      const auto iov = slice(chain->writable, 0);
      const ssize_t got =
          ::readv(m_tap->fd(), iov.data(), static_cast<int>(std::min<size_t>(iov.size(), IOV_MAX)));
      if (got < 0 && (errno == EAGAIN || errno == EINTR)) {
        queue(kRxQ).unpop();
        break;
      }
      if (got < static_cast<ssize_t>(NetBackend::kVnetHdrSize)) {
        complete(kRxQ, chain->head, 0);  // an error or a runt: give the buffer back empty
        continue;
      }
      // num_buffers (the header's last field) is 1 without MRG_RXBUF (5.1.6.4).
      const std::array<uint8_t, 2> one{1, 0};
      (void)copy_to(chain->writable, 10, one);
      complete(kRxQ, chain->head, static_cast<uint32_t>(got));
      {
        // The frame's size is known only now: it is charged as it came (a debt the next
        // frames wait for), and reading stops while the buckets are empty.
        std::lock_guard lock(m_rx_limit_lock);
        const uint64_t now = monotonic_ns();
        m_rx_limiter.consume_anyway(static_cast<uint64_t>(got) - NetBackend::kVnetHdrSize, now);
        if (m_rx_limiter.wait_ns(1, now) != 0) break;
      }
    }
  }
}

}  // namespace doppel::virtio
