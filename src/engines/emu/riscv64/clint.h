// The core-local interruptor (SiFive CLINT, "riscv,clint0"): software interrupts (msip) and
// the machine timer (mtime, mtimecmp) of every hart.
//
//   +0x0000 + 4*h   msip[h]      bit 0 drives hart h's MSIP
//   +0x4000 + 8*h   mtimecmp[h]  MTIP of hart h is (mtime >= mtimecmp[h])
//   +0xbff8         mtime        the Timebase (read-only here: the `time` CSR reads the same
//                                clock, and a writable mtime would make them disagree)
//
// A timer thread sleeps until the earliest mtimecmp deadline among harts whose MTIP is low
// and raises MTIP then; a write to mtimecmp re-evaluates MTIP at once (raising or lowering
// it) and wakes the thread to recompute its deadline.
//
// Threads: read()/write() from vCPU threads; the timer thread; save()/restore() with the
// harts stopped. m_mutex guards m_mtimecmp and m_msip; it is taken before a pin is set
// (InterruptPins is lock-free), so lock order is m_mutex -> nothing.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

#include "base/persist.h"
#include "core/device.h"
#include "engines/emu/riscv64/interrupt_pins.h"
#include "engines/emu/riscv64/timebase.h"

namespace doppel::rv64 {

struct ClintState {
  static constexpr uint32_t kVersion = 1;
  uint32_t version = kVersion;
  std::vector<uint64_t> mtimecmp;
  std::vector<uint32_t> msip;
};

class Clint final : public Device, public Persist<ClintState> {
 public:
  static constexpr uint64_t kMsipBase = 0x0;
  static constexpr uint64_t kMtimecmpBase = 0x4000;
  static constexpr uint64_t kMtime = 0xbff8;
  static constexpr uint64_t kSize = 0x10000;

  // One pins pointer per hart; they must outlive the Clint. Starts the timer thread.
  Clint(const Timebase& timebase, std::vector<InterruptPins*> harts);
  ~Clint() override;
  Clint(const Clint&) = delete;
  Clint& operator=(const Clint&) = delete;

  std::string_view name() const override { return "clint"; }
  uint64_t read(uint64_t offset, unsigned size) override;
  void write(uint64_t offset, unsigned size, uint64_t value) override;

  // Power-on state: msip 0, mtimecmp all ones (no timer interrupt), pins lowered.
  void reset();
  // The Timebase was frozen, thawed or set: re-evaluate MTIP and the timer thread's
  // deadline. Any thread.
  void timebase_changed();

  ClintState save() const override;
  Result<void> restore(const ClintState& state) override;

 private:
  // Sets MTIP of every hart from mtime vs mtimecmp; returns the earliest future deadline
  // (in ticks) among harts whose MTIP is low, or UINT64_MAX.
  uint64_t evaluate_timers_locked();
  void timer_loop();

  const Timebase& m_timebase;
  const std::vector<InterruptPins*> m_harts;

  mutable std::mutex m_mutex;
  std::condition_variable m_cv;
  std::vector<uint64_t> m_mtimecmp;  // GUARDED_BY(m_mutex)
  std::vector<uint32_t> m_msip;      // GUARDED_BY(m_mutex)
  uint64_t m_generation = 0;         // GUARDED_BY(m_mutex): bumped when a deadline changes
  bool m_stop = false;               // GUARDED_BY(m_mutex)
  std::thread m_thread;
};

}  // namespace doppel::rv64
