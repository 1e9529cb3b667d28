// Guest physical memory: a set of host-mmapped RAM regions, and bounds-checked access to them.
//
// Threads: the layout is fixed at creation, so any thread (vCPUs, device workers) may read
// and write concurrently without locks, as on real hardware. Ordering between guest and
// device is the guest driver's business (memory barriers it issues); devices that publish
// data to the guest use the *_release / *_acquire helpers where the virtio spec asks.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "base/bits.h"
#include "base/result.h"

namespace doppel {

struct MemoryRegion {
  uint64_t gpa;     // guest physical base
  uint64_t size;    // bytes, page-aligned
  uint8_t* host;    // host mapping of gpa
};

class GuestMemory {
 public:
  struct RegionSpec {
    uint64_t gpa;
    uint64_t size;
  };

  // Maps anonymous, private, zeroed memory for each region. Regions must be page-aligned,
  // non-empty and must not overlap.
  static Result<std::unique_ptr<GuestMemory>> create(std::vector<RegionSpec> regions);
  ~GuestMemory();
  GuestMemory(const GuestMemory&) = delete;
  GuestMemory& operator=(const GuestMemory&) = delete;

  const std::vector<MemoryRegion>& regions() const { return m_regions; }
  uint64_t total_size() const;

  // Host pointer for [gpa, gpa+len) if the whole range lies inside one region, else nullptr.
  // len == 0 is valid and returns a pointer if gpa is inside (or at the end of) a region.
  uint8_t* host_ptr(uint64_t gpa, uint64_t len) const {
    for (const auto& r : m_regions) {
      // Written so that no addition can overflow: gpa and len are guest-controlled.
      if (gpa >= r.gpa && gpa - r.gpa <= r.size && len <= r.size - (gpa - r.gpa))
        return r.host + (gpa - r.gpa);
    }
    return nullptr;
  }
  bool contains(uint64_t gpa, uint64_t len) const { return host_ptr(gpa, len) != nullptr; }

  // Copy in/out; false (and nothing copied) if any byte is outside guest RAM.
  [[nodiscard]] bool read(uint64_t gpa, std::span<uint8_t> out) const;
  [[nodiscard]] bool write(uint64_t gpa, std::span<const uint8_t> in);

  template <typename T>
  std::optional<T> read_le(uint64_t gpa) const {
    const uint8_t* p = host_ptr(gpa, sizeof(T));
    if (!p) return std::nullopt;
    return load_le<T>(p);
  }
  template <typename T>
  [[nodiscard]] bool write_le(uint64_t gpa, T value) {
    uint8_t* p = host_ptr(gpa, sizeof(T));
    if (!p) return false;
    store_le<T>(p, value);
    return true;
  }

  // Aligned atomic accesses for fields shared with a running guest (virtqueue indices).
  // Return nullopt/false if out of range or misaligned.
  std::optional<uint16_t> load_u16_acquire(uint64_t gpa) const;
  [[nodiscard]] bool store_u16_release(uint64_t gpa, uint16_t value);

 private:
  explicit GuestMemory(std::vector<MemoryRegion> regions) : m_regions(std::move(regions)) {}
  std::vector<MemoryRegion> m_regions;
};

}  // namespace doppel
