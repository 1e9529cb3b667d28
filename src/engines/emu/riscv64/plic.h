// The platform-level interrupt controller ("riscv,plic0", RISC-V PLIC spec 1.0.0 layout).
//
//   +0x000000 + 4*s              priority of source s (1..sources-1; 0 never interrupts)
//   +0x001000 + 4*w              pending bits, sources 32w..32w+31 (read-only)
//   +0x002000 + 0x80*c + 4*w     enable bits of context c
//   +0x200000 + 0x1000*c         priority threshold of context c
//   +0x200004 + 0x1000*c         claim (read) / complete (write) of context c
//
// Context 2h is hart h's M-mode (drives MEIP), context 2h+1 its S-mode (drives SEIP).
// Sources are level-triggered: a source is pending while its device holds the line high,
// except between claim and complete (the gateway forwards one request at a time); at
// complete, a line still high is pending again at once.
//
// Threads: read()/write() from vCPU threads; source lines' set_level() from any thread.
// m_mutex guards all state; pins are set with it held (InterruptPins is lock-free). Lock
// order: device lock -> m_mutex; the PLIC never calls out to a device.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "base/persist.h"
#include "core/device.h"
#include "core/irq.h"
#include "engines/emu/riscv64/interrupt_pins.h"

namespace doppel::rv64 {

struct PlicState {
  static constexpr uint32_t kVersion = 1;
  uint32_t version = kVersion;
  std::vector<uint32_t> priority;   // per source
  std::vector<uint8_t> level;       // per source: the device's line
  std::vector<uint8_t> pending;     // per source
  std::vector<uint8_t> claimed;     // per source: claimed, not yet completed
  std::vector<uint32_t> enable;     // per context, (sources + 31) / 32 words each
  std::vector<uint32_t> threshold;  // per context
};

class Plic final : public Device, public Persist<PlicState> {
 public:
  static constexpr uint32_t kMaxPriority = 7;
  static constexpr uint64_t kPendingBase = 0x1000;
  static constexpr uint64_t kEnableBase = 0x2000;
  static constexpr uint64_t kEnableStride = 0x80;
  static constexpr uint64_t kContextBase = 0x200000;
  static constexpr uint64_t kContextStride = 0x1000;

  // `sources` counts source 0 (which does not exist), so ids are 1..sources-1; at most 1024.
  // Two contexts per hart (M, S). The pins must outlive the Plic.
  Plic(unsigned sources, std::vector<InterruptPins*> harts);
  ~Plic() override;

  std::string_view name() const override { return "plic"; }
  uint64_t read(uint64_t offset, unsigned size) override;
  void write(uint64_t offset, unsigned size, uint64_t value) override;

  // The line of source id (1..sources-1) for a device to drive.
  IrqLine& line(unsigned id);
  unsigned sources() const { return m_sources; }
  unsigned contexts() const { return static_cast<unsigned>(m_harts.size() * 2); }

  void reset();
  PlicState save() const override;
  Result<void> restore(const PlicState& state) override;

 private:
  class Line;
  void set_level(unsigned id, bool high);
  // The id claim would return for context c (0: none).
  unsigned best_locked(unsigned context) const;
  void update_pins_locked();
  unsigned words() const { return (m_sources + 31) / 32; }

  const unsigned m_sources;
  const std::vector<InterruptPins*> m_harts;
  std::vector<std::unique_ptr<Line>> m_lines;

  mutable std::mutex m_mutex;
  PlicState m_state;  // GUARDED_BY(m_mutex)
};

}  // namespace doppel::rv64
