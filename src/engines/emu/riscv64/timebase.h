// The platform's real-time counter: mtime in the CLINT and the `time` CSR read the same
// clock, which ticks at kTimebaseHz from the host's monotonic clock while the VM runs.
//
// A paused VM's clock stands still (freeze/thaw), so the guest does not see the paused
// time pass; a restored VM's clock goes on from the value it had when it was saved (set()).
//
// Threads: now() and host_ns_at() from any thread (harts, the CLINT's timer thread).
// freeze(), thaw() and set() from the VMM while every hart is parked; whoever sleeps on
// host_ns_at() (the CLINT) must be told afterwards (Clint::timebase_changed()).
#pragma once

#include <time.h>

#include <atomic>
#include <cstdint>

namespace doppel::rv64 {

constexpr uint64_t kTimebaseHz = 10'000'000;  // as QEMU virt: 10 MHz, in the device tree

// The Timebase in a snapshot (rule 9): the guest's mtime when it was saved.
struct TimebaseState {
  static constexpr uint32_t kVersion = 1;
  uint32_t version = kVersion;
  uint64_t ticks = 0;
};

class Timebase {
 public:
  static constexpr uint64_t kNsPerTick = 1'000'000'000 / kTimebaseHz;

  Timebase() : m_origin_ns(host_ns()) {}

  uint64_t now() const {
    const uint64_t frozen = m_frozen_ticks.load(std::memory_order_acquire);
    if (frozen != kRunning) return frozen;
    return (host_ns() - m_origin_ns.load(std::memory_order_acquire)) / kNsPerTick;
  }
  // Host CLOCK_MONOTONIC nanoseconds at which now() reaches `ticks`; "never" (UINT64_MAX)
  // while the clock is frozen.
  uint64_t host_ns_at(uint64_t ticks) const {
    if (m_frozen_ticks.load(std::memory_order_acquire) != kRunning) return UINT64_MAX;
    return m_origin_ns.load(std::memory_order_acquire) + ticks * kNsPerTick;
  }

  // Stops the clock at its current value (idempotent).
  void freeze() {
    if (frozen()) return;
    m_frozen_ticks.store(now(), std::memory_order_release);
  }
  // Lets a frozen clock go on from where it stopped.
  void thaw() {
    const uint64_t ticks = m_frozen_ticks.load(std::memory_order_acquire);
    if (ticks == kRunning) return;
    m_origin_ns.store(host_ns() - ticks * kNsPerTick, std::memory_order_release);
    m_frozen_ticks.store(kRunning, std::memory_order_release);
  }
  // The clock reads `ticks` now (a restore); it stays frozen if it was.
  void set(uint64_t ticks) {
    if (frozen()) m_frozen_ticks.store(ticks, std::memory_order_release);
    else m_origin_ns.store(host_ns() - ticks * kNsPerTick, std::memory_order_release);
  }
  bool frozen() const { return m_frozen_ticks.load(std::memory_order_acquire) != kRunning; }

  static uint64_t host_ns() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ull + static_cast<uint64_t>(ts.tv_nsec);
  }

 private:
  static constexpr uint64_t kRunning = UINT64_MAX;
  std::atomic<uint64_t> m_origin_ns;
  std::atomic<uint64_t> m_frozen_ticks{kRunning};
};

}  // namespace doppel::rv64
