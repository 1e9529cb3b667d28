// A device as a bus sees it: register reads and writes at offsets from its own base.
#pragma once

#include <cstdint>
#include <string_view>

#include "core/counter.h"

namespace doppel {

// Threads: read() and write() are called from vCPU threads, possibly several at once.
// A device guards its own state with its own mutex.
class Device {
 public:
  virtual ~Device() = default;
  virtual std::string_view name() const = 0;
  // size is 1, 2, 4 or 8; offset is relative to the device's base on the bus. A device
  // answers accesses it does not implement by reading 0 and ignoring writes (rule 2).
  virtual uint64_t read(uint64_t offset, unsigned size) = 0;
  virtual void write(uint64_t offset, unsigned size, uint64_t value) = 0;
  // What the device counted beyond register accesses (the bus counts those), for GET
  // /metrics. Threads: any; values are read without stopping the device.
  virtual Counters counters() const { return {}; }
};

}  // namespace doppel
