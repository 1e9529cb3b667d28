// virtio-blk (virtio 1.2 5.2), device id 2, backed by any disk image (backends/disk_backend.h:
// raw or qcow2; the device never knows which).
//
// Requests are parsed on the notifying thread and executed on a worker pool, so a vCPU never
// blocks on host I/O. quiesce() waits for every submitted request to complete and has the
// backend write back what it caches, so a snapshot's disk file holds every completed write.
//
// A rate limiter (backends/rate_limiter.h), when configured, admits each request before it
// reaches the pool: 1 op each, plus the data bytes of reads and writes (Firecracker's
// accounting). Requests over the limit wait, in order, in a ThrottleQueue whose timer thread
// releases them; quiesce() releases them all at once, so a pause leaves none behind. The
// buckets (their configuration, as PATCHed, and their budgets) are saved with a snapshot.
#pragma once

#include <memory>
#include <string>

#include "backends/disk_backend.h"
#include "backends/throttle_queue.h"
#include "backends/worker_pool.h"
#include "devices/virtio/virtio_device.h"

namespace doppel::virtio {

// Feature bits (5.2.3).
constexpr uint64_t kBlkFSegMax = 1ull << 2;
constexpr uint64_t kBlkFRo = 1ull << 5;
constexpr uint64_t kBlkFBlkSize = 1ull << 6;
constexpr uint64_t kBlkFFlush = 1ull << 9;
constexpr uint64_t kBlkFDiscard = 1ull << 13;
constexpr uint64_t kBlkFWriteZeroes = 1ull << 14;

// Request types (5.2.6).
constexpr uint32_t kBlkTIn = 0;
constexpr uint32_t kBlkTOut = 1;
constexpr uint32_t kBlkTFlush = 4;
constexpr uint32_t kBlkTGetId = 8;
constexpr uint32_t kBlkTDiscard = 11;
constexpr uint32_t kBlkTWriteZeroes = 13;
// Status values.
constexpr uint8_t kBlkSOk = 0;
constexpr uint8_t kBlkSIoErr = 1;
constexpr uint8_t kBlkSUnsupp = 2;

constexpr uint32_t kBlkIdBytes = 20;
constexpr uint32_t kBlkMaxDiscardSectors = 0x3fffff;
constexpr uint32_t kBlkMaxDiscardSegments = 16;

class VirtioBlk final : public VirtioDevice {
 public:
  static constexpr uint16_t kQueueSize = 256;

  VirtioBlk(GuestMemory& mem, std::unique_ptr<DiskBackend> disk, std::string name,
            const RateLimiterConfig& limits = {});
  ~VirtioBlk() override;

  std::string_view name() const override { return m_name; }
  uint32_t device_id() const override { return 2; }
  uint64_t device_features() const override;
  void read_config(uint64_t offset, std::span<uint8_t> out) const override;
  void process_queue(unsigned q) override;
  void quiesce() override;
  Result<void> flush_to_host() override;
  Result<void> activate_images() override { return m_disk->activate(); }
  void inactivate_images() override { m_disk->inactivate(); }

  uint64_t capacity_sectors() const { return m_disk->size() / DiskBackend::kSectorSize; }
  // Replaces the rate limiter's buckets the patch gives (an API PATCH). Threads: any.
  void set_rate_limiter(const RateLimiterPatch& patch);
  std::vector<RateLimiterState> save_limiters() override { return {m_throttle->save()}; }
  Result<void> restore_limiters(std::span<const RateLimiterState> states) override;

 private:
  void handle(const DescriptorChain& chain);
  uint8_t execute(const DescriptorChain& chain, uint32_t type, uint64_t sector,
                  uint32_t& written);
  uint8_t discard_or_zero(const DescriptorChain& chain, uint32_t type);
  // The data bytes a request moves, as the rate limiter counts them.
  uint64_t data_bytes(const DescriptorChain& chain) const;

  std::unique_ptr<DiskBackend> m_disk;
  std::string m_name;
  std::unique_ptr<WorkerPool> m_pool;
  // Declared after the pool: destroyed first, its queued requests go to a live pool.
  std::unique_ptr<ThrottleQueue> m_throttle;  // passes everything at once when unlimited
};

}  // namespace doppel::virtio
