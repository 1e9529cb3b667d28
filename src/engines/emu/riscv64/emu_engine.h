// The emulation engine for riscv64: N harts interpreting guest code, one host thread each.
//
// Contract between the CPU (engines/emu/riscv64/*) and the platform that assembles a
// machine (vmm/machine_riscv64.*). The engine sees RAM through GuestMemory and everything
// else (CLINT, PLIC, UART, virtio-mmio, the test/poweroff device) through the MMIO Bus:
// a load or store that is not in RAM goes to bus.read()/bus.write() directly from the
// hart's thread; an address that no device covers raises an access fault in the guest.
#pragma once

#include <cstdint>
#include <memory>

#include "base/result.h"
#include "core/bus.h"
#include "core/engine.h"
#include "core/guest_memory.h"
#include "engines/emu/riscv64/interrupt_pins.h"
#include "engines/emu/riscv64/timebase.h"

namespace doppel::rv64 {

class Hart;  // hart.h

// Register state at reset, in M-mode (the platform's boot code: fw_dynamic's convention is
// a0 = hartid, a1 = device tree address, a2 = fw_dynamic_info address).
struct HartResetState {
  uint64_t pc = 0;
  uint64_t a0 = 0;
  uint64_t a1 = 0;
  uint64_t a2 = 0;
};

class EmuEngine final : public Engine {
 public:
  // The engine keeps references to memory, mmio and timebase; the Machine owns them and
  // outlives the engine.
  static Result<std::unique_ptr<EmuEngine>> create(GuestMemory& memory, const Bus& mmio,
                                                   const Timebase& timebase, unsigned harts);
  ~EmuEngine() override;

  std::string_view name() const override { return "emu"; }

  // Pins of hart i, for the CLINT and PLIC to drive. Valid for the engine's lifetime.
  InterruptPins& pins(unsigned hart);
  unsigned hart_count() const;

  // Before create_vcpu(i): where hart i starts.
  void set_reset_state(unsigned hart, const HartResetState& state);

  // Vcpu::run() on a hart returns only for kKicked (after kick()) and kCrash (the hart
  // cannot continue, e.g. an internal error); MMIO is handled inside the engine. WFI sleeps
  // on the hart's InterruptPins. Poweroff and reset come from a platform device (the
  // machine stops the harts with kick()).
  Result<std::unique_ptr<Vcpu>> create_vcpu(unsigned index) override;

  // Every hart runs translated code (Hart::enable_jit), each with cache_bytes / harts of
  // code cache.
  Result<void> enable_jit(uint64_t cache_bytes);

  // Direct access to hart i (tests, debuggers, snapshot). Only from the hart's own thread
  // while it runs.
  Hart& hart(unsigned index);

 private:
  struct Impl;
  explicit EmuEngine(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> m_impl;
};

}  // namespace doppel::rv64
