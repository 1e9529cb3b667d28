// What an engine offers the VMM: vCPUs that run until something needs the VMM's attention.
// An engine never includes a device; devices reach the guest through core types only.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "core/counter.h"
#include "core/vcpu_debug.h"

namespace doppel {

struct VcpuExit {
  enum class Reason {
    kMmioRead,   // addr, size: the VMM dispatches to the MMIO bus, then set_io_result()
    kMmioWrite,  // addr, size, data
    kPioRead,    // addr (port), size
    kPioWrite,   // addr (port), size, data
    kKicked,     // another thread called kick(): the run loop checks whether to stop
    kPowerOff,   // the guest asked the machine to power off
    kReset,      // the guest asked for a reboot (or triple-faulted on x86: see detail)
    kCrash,      // the guest cannot continue: detail says why
    kDebug,      // a debugger's breakpoint, watchpoint (addr) or single step: see debug
  };
  Reason reason = Reason::kKicked;
  uint64_t addr = 0;
  unsigned size = 0;
  uint64_t data = 0;
  std::string detail;
  DebugStopKind debug = DebugStopKind::kBreakpoint;  // kDebug only
};

// Threads: run() and set_io_result() are called only from this vCPU's own thread.
// kick() may be called from any thread.
class Vcpu {
 public:
  virtual ~Vcpu() = default;
  virtual unsigned index() const = 0;
  // Runs guest code until an exit the VMM must handle.
  virtual Result<VcpuExit> run() = 0;
  // The value for the last kMmioRead/kPioRead exit, before the next run().
  virtual void set_io_result(uint64_t data) = 0;
  // Makes a running (or sleeping) run() return kKicked soon.
  virtual void kick() = 0;
  // What the engine counted for this vCPU (instructions, caches), for GET /metrics.
  // Threads: any, while the vCPU runs; values may lag the vCPU by a few milliseconds.
  virtual Counters counters() const { return {}; }

  // ---- Debugger support (core/vcpu_debug.h) ----
  // Threads: any thread, but only while this vCPU is parked (not inside run()). An engine
  // without it answers errors; set_debug() with an inactive control always succeeds.
  // Registers, numbered as debug_arch() lists them; each little-endian, bits/8 bytes.
  virtual const DebugArch* debug_arch() const { return nullptr; }
  virtual Result<std::vector<uint8_t>> debug_read_registers() {
    return Error("this engine has no debugger support");
  }
  virtual Result<void> debug_write_register(unsigned /*index*/, std::span<const uint8_t>) {
    return Error("this engine has no debugger support");
  }
  // A guest virtual address to a physical one through the vCPU's current translation (no
  // accessed/dirty bits set, no permission checks); an error when it is not mapped.
  virtual Result<uint64_t> debug_translate(uint64_t /*va*/) {
    return Error("this engine has no debugger support");
  }
  // Breakpoints, watchpoints and single-step for the following run() calls; a stop comes
  // back as a kDebug exit at an instruction boundary.
  virtual Result<void> set_debug(const DebugControl& control) {
    if (control.active()) return Error("this engine has no debugger support");
    return ok();
  }
  // The debugger wrote guest memory (code may have changed).
  virtual void debug_memory_written() {}
  // Every register the vCPU has (CSRs, control registers), for a monitor's "info registers".
  virtual std::string debug_describe() { return "this engine has no debugger support\n"; }
};

class Engine {
 public:
  virtual ~Engine() = default;
  virtual std::string_view name() const = 0;
  virtual Result<std::unique_ptr<Vcpu>> create_vcpu(unsigned index) = 0;
};

}  // namespace doppel
