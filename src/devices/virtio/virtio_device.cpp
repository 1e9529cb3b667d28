#include "devices/virtio/virtio_device.h"

#include <algorithm>
#include <cstring>

#include "base/log.h"

namespace doppel::virtio {

Result<void> VirtioDevice::restore_limiters(std::span<const RateLimiterState> states) {
  if (!states.empty())
    return Error::format("{}: the snapshot has {} rate limiters for a device that has none",
                         name(), states.size());
  return ok();
}

VirtioDevice::VirtioDevice(GuestMemory& mem, unsigned num_queues, uint16_t queue_max_size)
    : m_mem(mem) {
  for (unsigned i = 0; i < num_queues; i++) {
    m_queues.push_back(std::make_unique<Virtqueue>(mem, queue_max_size));
    m_queues.back()->reset();
  }
}

std::optional<DescriptorChain> VirtioDevice::pop(unsigned q) {
  auto r = queue(q).pop();
  switch (r.status) {
    case Virtqueue::PopStatus::kEmpty: return std::nullopt;
    case Virtqueue::PopStatus::kChain:
      m_bytes_from_guest.fetch_add(r.chain.readable_len, std::memory_order_relaxed);
      if (r.chain.error != ChainError::kNone) {
        m_bad_chains.fetch_add(1, std::memory_order_relaxed);
        DOPPEL_GUEST_WARN("{}: queue {}: bad descriptor chain at head {}: {}", name(), q,
                          r.chain.head, to_string(r.chain.error));
      }
      return std::move(r.chain);
    case Virtqueue::PopStatus::kBroken:
      m_bad_chains.fetch_add(1, std::memory_order_relaxed);
      DOPPEL_GUEST_WARN("{}: queue {}: ring is corrupt, device needs reset", name(), q);
      if (m_transport) m_transport->signal_needs_reset();
      return std::nullopt;
  }
  return std::nullopt;
}

void VirtioDevice::complete(unsigned q, uint16_t head, uint32_t len) {
  m_requests.fetch_add(1, std::memory_order_relaxed);
  m_bytes_to_guest.fetch_add(len, std::memory_order_relaxed);
  if (queue(q).push(head, len) && m_transport) m_transport->signal_used();
}

Counters VirtioDevice::counters() const {
  return {{"virtio_requests", m_requests.load(std::memory_order_relaxed)},
          {"virtio_bytes_from_guest", m_bytes_from_guest.load(std::memory_order_relaxed)},
          {"virtio_bytes_to_guest", m_bytes_to_guest.load(std::memory_order_relaxed)},
          {"virtio_bad_chains", m_bad_chains.load(std::memory_order_relaxed)}};
}

std::vector<iovec> slice(const std::vector<Buffer>& bufs, uint64_t skip, uint64_t len) {
  std::vector<iovec> out;
  for (const auto& b : bufs) {
    if (len == 0) break;
    if (skip >= b.len) {
      skip -= b.len;
      continue;
    }
    const uint64_t n = std::min<uint64_t>(b.len - skip, len);
    out.push_back(iovec{b.host + skip, static_cast<size_t>(n)});
    if (len != UINT64_MAX) len -= n;
    skip = 0;
  }
  return out;
}

size_t copy_from(const std::vector<Buffer>& bufs, uint64_t skip, std::span<uint8_t> out) {
  size_t done = 0;
  for (const auto& v : slice(bufs, skip, out.size())) {
    std::memcpy(out.data() + done, v.iov_base, v.iov_len);
    done += v.iov_len;
  }
  return done;
}

size_t copy_to(const std::vector<Buffer>& bufs, uint64_t skip, std::span<const uint8_t> in) {
  size_t done = 0;
  for (const auto& v : slice(bufs, skip, in.size())) {
    std::memcpy(v.iov_base, in.data() + done, v.iov_len);
    done += v.iov_len;
  }
  return done;
}

void read_config_bytes(std::span<const uint8_t> cfg, uint64_t offset, std::span<uint8_t> out) {
  for (size_t i = 0; i < out.size(); i++) {
    const uint64_t at = offset + i;
    out[i] = at < cfg.size() ? cfg[at] : 0;
  }
}

}  // namespace doppel::virtio
