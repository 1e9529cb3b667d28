// A Bus maps address ranges (MMIO or port I/O) to devices.
//
// Threads: the machine inserts every device before any vCPU runs; after that the Bus is
// read-only and lookups need no lock.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "base/result.h"
#include "core/device.h"

namespace doppel {

class Bus {
 public:
  // Accesses dispatched to one mapping (metrics); counted from any thread.
  struct Counters {
    std::atomic<uint64_t> reads{0};
    std::atomic<uint64_t> writes{0};
  };
  struct Mapping {
    uint64_t base;
    uint64_t size;
    Device* device;  // not owned: Machine owns devices (rule 4)
    std::shared_ptr<Counters> counters;
  };

  explicit Bus(std::string name) : m_name(std::move(name)) {}

  // Fails if size is zero, the range wraps, or it overlaps an existing mapping.
  Result<void> insert(uint64_t base, uint64_t size, Device& device);

  // The mapping containing addr, or nullptr.
  const Mapping* find(uint64_t addr) const;

  // Dispatch an access; false if no device covers [addr, addr+size).
  bool read(uint64_t addr, unsigned size, uint64_t& value) const;
  bool write(uint64_t addr, unsigned size, uint64_t value) const;

  const std::vector<Mapping>& mappings() const { return m_mappings; }

 private:
  std::string m_name;
  std::vector<Mapping> m_mappings;  // sorted by base
};

}  // namespace doppel
