// The interrupt inputs of one hart that platform devices drive: MSIP and MTIP (CLINT),
// MEIP and SEIP (PLIC). The hart ORs these into its mip CSR.
//
// Threads: set() is called from any thread (vCPU threads writing CLINT/PLIC registers, the
// CLINT timer thread, device workers raising PLIC lines). The owning hart reads pending()
// once per block and sleeps in wait_for_change() during WFI, so it never busy-waits.
#pragma once

#include <atomic>
#include <cstdint>

namespace doppel::rv64 {

// mip/mie bit numbers (privileged spec 3.1.9).
constexpr uint64_t kMipSSIP = 1ull << 1;
constexpr uint64_t kMipMSIP = 1ull << 3;
constexpr uint64_t kMipSTIP = 1ull << 5;
constexpr uint64_t kMipMTIP = 1ull << 7;
constexpr uint64_t kMipSEIP = 1ull << 9;
constexpr uint64_t kMipMEIP = 1ull << 11;

class InterruptPins {
 public:
  // Bit 63 is not an interrupt: kick() sets it so a sleeping hart wakes to look at a stop
  // request. The hart clears it with take_kick().
  static constexpr uint64_t kKickBit = 1ull << 63;

  void set(uint64_t mask, bool level) {
    const uint64_t old = level ? m_bits.fetch_or(mask, std::memory_order_acq_rel)
                               : m_bits.fetch_and(~mask, std::memory_order_acq_rel);
    const uint64_t now = level ? (old | mask) : (old & ~mask);
    if (now != old) {
      // A bit rose: the running translation must look (Hart::arm_jit_limit() pairs with
      // this fence: either it sees the bit, or this store lands after its own).
      if (level && m_limit != nullptr) {
        std::atomic_thread_fence(std::memory_order_seq_cst);
        m_limit->store(0, std::memory_order_relaxed);
      }
      m_bits.notify_all();
    }
  }
  // The hart's JIT instret limit (Hart::m_jit_limit), zeroed whenever a bit rises: the
  // translations check only it on their loops and chains.
  void wake_limit(std::atomic<uint64_t>* limit) { m_limit = limit; }
  uint64_t pending() const { return m_bits.load(std::memory_order_acquire) & ~kKickBit; }

  void kick() { set(kKickBit, true); }
  bool take_kick() {
    return (m_bits.fetch_and(~kKickBit, std::memory_order_acq_rel) & kKickBit) != 0;
  }

  // Blocks until the bits differ from `seen` (a value returned by raw()).
  void wait_for_change(uint64_t seen) const { m_bits.wait(seen, std::memory_order_acquire); }
  uint64_t raw() const { return m_bits.load(std::memory_order_acquire); }

 private:
  std::atomic<uint64_t> m_bits{0};
  std::atomic<uint64_t>* m_limit = nullptr;
};

}  // namespace doppel::rv64
