// The platform's real-time counter: mtime in the CLINT and the `time` CSR read the same
// clock, which ticks at kTimebaseHz from the host's monotonic clock. Thread-safe.
#pragma once

#include <time.h>

#include <cstdint>

namespace doppel::rv64 {

constexpr uint64_t kTimebaseHz = 10'000'000;  // as QEMU virt: 10 MHz, in the device tree

class Timebase {
 public:
  Timebase() : m_origin_ns(host_ns()) {}
  uint64_t now() const { return (host_ns() - m_origin_ns) / (1'000'000'000 / kTimebaseHz); }
  // Host CLOCK_MONOTONIC nanoseconds at which now() reaches `ticks`.
  uint64_t host_ns_at(uint64_t ticks) const {
    return m_origin_ns + ticks * (1'000'000'000 / kTimebaseHz);
  }
  static uint64_t host_ns() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ull + static_cast<uint64_t>(ts.tv_nsec);
  }

 private:
  uint64_t m_origin_ns;
};

}  // namespace doppel::rv64
