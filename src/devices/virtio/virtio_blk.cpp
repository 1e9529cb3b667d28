#include "devices/virtio/virtio_blk.h"

#include <algorithm>
#include <array>
#include <cstring>

#include "base/log.h"

namespace doppel::virtio {

namespace {
constexpr uint64_t kHeaderBytes = 16;  // le32 type, le32 reserved, le64 sector
constexpr uint64_t kSegmentBytes = 16;  // le64 sector, le32 num_sectors, le32 flags
}  // namespace

VirtioBlk::VirtioBlk(GuestMemory& mem, std::unique_ptr<DiskBackend> disk, std::string name,
                     const RateLimiterConfig& limits)
    : VirtioDevice(mem, 1, kQueueSize),
      m_disk(std::move(disk)),
      m_name(std::move(name)),
      m_pool(std::make_unique<WorkerPool>(2, "virtio-blk")) {
  // Unlimited disks get one too (it passes everything at once), so that a PATCH can set a
  // limit on a running VM without swapping objects under a vCPU.
  m_throttle = std::make_unique<ThrottleQueue>(limits, m_name + "-rl");
}

VirtioBlk::~VirtioBlk() { quiesce(); }

uint64_t VirtioBlk::device_features() const {
  uint64_t f = kBlkFSegMax | kBlkFBlkSize | kBlkFFlush;
  if (m_disk->read_only()) {
    f |= kBlkFRo;
  } else {
    if (m_disk->supports_discard()) f |= kBlkFDiscard;
    if (m_disk->supports_write_zeroes()) f |= kBlkFWriteZeroes;
  }
  return f;
}

void VirtioBlk::read_config(uint64_t offset, std::span<uint8_t> out) const {
  // struct virtio_blk_config (5.2.4).
  std::array<uint8_t, 72> cfg{};
  store_le<uint64_t>(&cfg[0], capacity_sectors());                  // capacity
  store_le<uint32_t>(&cfg[12], kQueueSize - 2);                      // seg_max
  store_le<uint32_t>(&cfg[20], DiskBackend::kSectorSize);            // blk_size
  store_le<uint16_t>(&cfg[34], 1);                                   // num_queues
  store_le<uint32_t>(&cfg[36], kBlkMaxDiscardSectors);               // max_discard_sectors
  store_le<uint32_t>(&cfg[40], kBlkMaxDiscardSegments);              // max_discard_seg
  store_le<uint32_t>(&cfg[44], static_cast<uint32_t>(                // discard_sector_alignment
      std::max<uint64_t>(1, m_disk->discard_alignment() / DiskBackend::kSectorSize)));
  store_le<uint32_t>(&cfg[48], kBlkMaxDiscardSectors);               // max_write_zeroes_sectors
  store_le<uint32_t>(&cfg[52], kBlkMaxDiscardSegments);              // max_write_zeroes_seg
  cfg[56] = 1;                                                       // write_zeroes_may_unmap
  read_config_bytes(cfg, offset, out);
}

void VirtioBlk::process_queue(unsigned q) {
  if (q != 0) return;
  while (auto chain = pop(0)) {
    // The chain's buffers are guest RAM, valid for the VM's lifetime; the job owns the list.
    const uint64_t bytes = data_bytes(*chain);
    m_throttle->submit(bytes, [this, c = std::move(*chain)] { m_pool->submit([this, c] { handle(c); }); });
  }
}

uint64_t VirtioBlk::data_bytes(const DescriptorChain& chain) const {
  std::array<uint8_t, kHeaderBytes> hdr{};
  if (chain.error != ChainError::kNone || copy_from(chain.readable, 0, hdr) != kHeaderBytes) return 0;
  switch (load_le<uint32_t>(&hdr[0])) {
    case kBlkTIn: return chain.writable_len > 0 ? chain.writable_len - 1 : 0;
    case kBlkTOut: return chain.readable_len - kHeaderBytes;
    default: return 0;
  }
}

void VirtioBlk::set_rate_limiter(const RateLimiterPatch& patch) { m_throttle->set_limits(patch); }

Result<void> VirtioBlk::restore_limiters(std::span<const RateLimiterState> states) {
  if (states.size() != 1)
    return Error::format("{}: a disk has one rate limiter, the snapshot has {}", m_name, states.size());
  return m_throttle->restore(states[0]).context(fmt::format("{}: rate limiter", m_name));
}

Result<void> VirtioBlk::flush_to_host() {
  if (int r = m_disk->flush(); r != 0)
    return Error::format("{}: flushing the disk: {}", m_name, strerror(-r));
  return ok();
}

void VirtioBlk::quiesce() {
  m_throttle->drain_now();
  m_pool->drain();
  // A snapshot taken now must find every completed write in the file (qcow2 caches tables).
  if (int r = m_disk->settle(); r != 0) spdlog::error("{}: writing back the disk's metadata: {}", m_name, strerror(-r));
}

void VirtioBlk::handle(const DescriptorChain& chain) {
  // The status byte is the last byte of the last device-writable buffer (5.2.6).
  if (chain.error != ChainError::kNone) {
    if (chain.tail) *(chain.tail->host + chain.tail->len - 1) = kBlkSIoErr;
    complete(0, chain.head, chain.tail ? 1 : 0);
    return;
  }
  if (chain.writable_len == 0) {
    DOPPEL_GUEST_WARN("{}: request at head {} has no status byte", m_name, chain.head);
    complete(0, chain.head, 0);
    return;
  }
  const Buffer& last = chain.writable.back();
  uint8_t* status = last.host + last.len - 1;
  uint32_t written = 0;
  uint8_t result = kBlkSIoErr;
  std::array<uint8_t, kHeaderBytes> hdr{};
  if (copy_from(chain.readable, 0, hdr) != kHeaderBytes) {
    DOPPEL_GUEST_WARN("{}: request at head {} has a short header", m_name, chain.head);
  } else {
    result = execute(chain, load_le<uint32_t>(&hdr[0]), load_le<uint64_t>(&hdr[8]), written);
  }
  *status = result;
  complete(0, chain.head, written + 1);
}

uint8_t VirtioBlk::execute(const DescriptorChain& chain, uint32_t type, uint64_t sector,
                           uint32_t& written) {
  const uint64_t capacity = capacity_sectors();
  auto range_ok = [&](uint64_t bytes) {
    return bytes % DiskBackend::kSectorSize == 0 && sector <= capacity &&
           bytes / DiskBackend::kSectorSize <= capacity - sector;
  };
  switch (type) {
    case kBlkTIn: {
      const uint64_t len = chain.writable_len - 1;
      if (!range_ok(len)) {
        DOPPEL_GUEST_WARN("{}: read of {} bytes at sector {} is outside the disk", m_name, len, sector);
        return kBlkSIoErr;
      }
      const auto iov = slice(chain.writable, 0, len);
      if (m_disk->read(iov, sector * DiskBackend::kSectorSize) != 0) return kBlkSIoErr;
      written = static_cast<uint32_t>(len);
      return kBlkSOk;
    }
    case kBlkTOut: {
      if (m_disk->read_only()) return kBlkSIoErr;
      const uint64_t len = chain.readable_len - kHeaderBytes;
      if (!range_ok(len)) {
        DOPPEL_GUEST_WARN("{}: write of {} bytes at sector {} is outside the disk", m_name, len, sector);
        return kBlkSIoErr;
      }
      const auto iov = slice(chain.readable, kHeaderBytes, len);
      return m_disk->write(iov, sector * DiskBackend::kSectorSize) == 0 ? kBlkSOk : kBlkSIoErr;
    }
    case kBlkTFlush: return m_disk->flush() == 0 ? kBlkSOk : kBlkSIoErr;
    case kBlkTGetId: {
      std::array<uint8_t, kBlkIdBytes> id{};
      const auto& serial = m_disk->serial();
      std::copy_n(serial.begin(), std::min<size_t>(serial.size(), id.size()), id.begin());
      const uint64_t room = std::min<uint64_t>(chain.writable_len - 1, kBlkIdBytes);
      written = static_cast<uint32_t>(
          copy_to(chain.writable, 0, std::span<const uint8_t>(id.data(), room)));
      return kBlkSOk;
    }
    case kBlkTDiscard:
    case kBlkTWriteZeroes:
      if (m_disk->read_only()) return kBlkSIoErr;
      return discard_or_zero(chain, type);
    default:
      DOPPEL_GUEST_WARN("{}: unsupported request type {}", m_name, type);
      return kBlkSUnsupp;
  }
}

uint8_t VirtioBlk::discard_or_zero(const DescriptorChain& chain, uint32_t type) {
  const uint64_t len = chain.readable_len - kHeaderBytes;
  if (len == 0 || len % kSegmentBytes != 0 || len / kSegmentBytes > kBlkMaxDiscardSegments)
    return kBlkSIoErr;
  const uint64_t capacity = capacity_sectors();
  for (uint64_t off = 0; off < len; off += kSegmentBytes) {
    std::array<uint8_t, kSegmentBytes> seg{};
    (void)copy_from(chain.readable, kHeaderBytes + off, seg);
    const uint64_t sector = load_le<uint64_t>(&seg[0]);
    const uint32_t count = load_le<uint32_t>(&seg[8]);
    const uint32_t flags = load_le<uint32_t>(&seg[12]);
    // 5.2.6.2: flags other than unmap are reserved; unmap is only meaningful for zeroing.
    if ((flags & ~1u) != 0 || (type == kBlkTDiscard && flags != 0)) return kBlkSUnsupp;
    if (count > kBlkMaxDiscardSectors || sector > capacity || count > capacity - sector)
      return kBlkSIoErr;
    const uint64_t off_bytes = sector * DiskBackend::kSectorSize;
    const uint64_t len_bytes = uint64_t{count} * DiskBackend::kSectorSize;
    if (len_bytes == 0) continue;
    const int r = type == kBlkTDiscard ? m_disk->discard(off_bytes, len_bytes)
                                       : m_disk->write_zeroes(off_bytes, len_bytes, flags & 1);
    if (r == -EOPNOTSUPP) return kBlkSUnsupp;
    if (r != 0) return kBlkSIoErr;
  }
  return kBlkSOk;
}

}  // namespace doppel::virtio
