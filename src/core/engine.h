// What an engine offers the VMM: vCPUs that run until something needs the VMM's attention.
// An engine never includes a device; devices reach the guest through core types only.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "base/result.h"
#include "core/counter.h"

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
  };
  Reason reason = Reason::kKicked;
  uint64_t addr = 0;
  unsigned size = 0;
  uint64_t data = 0;
  std::string detail;
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
};

class Engine {
 public:
  virtual ~Engine() = default;
  virtual std::string_view name() const = 0;
  virtual Result<std::unique_ptr<Vcpu>> create_vcpu(unsigned index) = 0;
};

}  // namespace doppel
