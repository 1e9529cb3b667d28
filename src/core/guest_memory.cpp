#include "core/guest_memory.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

namespace doppel {

Result<std::unique_ptr<GuestMemory>> GuestMemory::create(std::vector<RegionSpec> specs) {
  const auto page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  std::sort(specs.begin(), specs.end(),
            [](const RegionSpec& a, const RegionSpec& b) { return a.gpa < b.gpa; });
  for (size_t i = 0; i < specs.size(); ++i) {
    const auto& s = specs[i];
    if (s.size == 0) return Error::format("memory region at {:#x}: size is zero", s.gpa);
    if (s.gpa % page || s.size % page)
      return Error::format("memory region {:#x}+{:#x}: not page-aligned", s.gpa, s.size);
    if (s.gpa + s.size < s.gpa)
      return Error::format("memory region {:#x}+{:#x}: wraps the address space", s.gpa, s.size);
    if (i > 0 && specs[i - 1].gpa + specs[i - 1].size > s.gpa)
      return Error::format("memory region {:#x}+{:#x} overlaps the one at {:#x}", s.gpa, s.size,
                           specs[i - 1].gpa);
  }
  std::vector<MemoryRegion> regions;
  for (const auto& s : specs) {
    // Host addresses congruent with guest addresses modulo 2 MiB, and transparent huge
    // pages asked for: KVM can then map guest RAM with 2 MiB pages (fewer nested page
    // faults and TLB misses), and the emulator's accesses miss the host TLB less often.
    constexpr uint64_t kHuge = 2 * MiB;
    const uint64_t slack = s.size >= kHuge ? kHuge : 0;
    void* p = mmap(nullptr, s.size + slack, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) {
      const int e = errno;
      for (auto& r : regions) munmap(r.host, r.size);
      return Error::from_errno(fmt::format("guest memory: mmap of {} MiB", s.size >> 20), e);
    }
    auto* host = static_cast<uint8_t*>(p);
    if (slack) {
      const auto at = reinterpret_cast<uint64_t>(p);
      const uint64_t want = (s.gpa % kHuge);
      const uint64_t skip = (want - at % kHuge + kHuge) % kHuge;
      if (skip) munmap(host, skip);
      if (slack - skip) munmap(host + skip + s.size, slack - skip);
      host += skip;
      madvise(host, s.size, MADV_HUGEPAGE);
    }
    regions.push_back({s.gpa, s.size, host});
  }
  return std::unique_ptr<GuestMemory>(new GuestMemory(std::move(regions)));
}

GuestMemory::~GuestMemory() {
  for (auto& r : m_regions) munmap(r.host, r.size);
}

uint64_t GuestMemory::total_size() const {
  uint64_t total = 0;
  for (const auto& r : m_regions) total += r.size;
  return total;
}

bool GuestMemory::read(uint64_t gpa, std::span<uint8_t> out) const {
  const uint8_t* p = host_ptr(gpa, out.size());
  if (!p) return false;
  std::memcpy(out.data(), p, out.size());
  return true;
}

bool GuestMemory::write(uint64_t gpa, std::span<const uint8_t> in) {
  uint8_t* p = host_ptr(gpa, in.size());
  if (!p) return false;
  std::memcpy(p, in.data(), in.size());
  return true;
}

std::optional<uint16_t> GuestMemory::load_u16_acquire(uint64_t gpa) const {
  if (gpa % 2) return std::nullopt;
  uint8_t* p = host_ptr(gpa, 2);
  if (!p) return std::nullopt;
  return std::atomic_ref<uint16_t>(*reinterpret_cast<uint16_t*>(p))
      .load(std::memory_order_acquire);
}

bool GuestMemory::store_u16_release(uint64_t gpa, uint16_t value) {
  if (gpa % 2) return false;
  uint8_t* p = host_ptr(gpa, 2);
  if (!p) return false;
  std::atomic_ref<uint16_t>(*reinterpret_cast<uint16_t*>(p))
      .store(value, std::memory_order_release);
  return true;
}

}  // namespace doppel
