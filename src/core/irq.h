// An interrupt line from a device to an interrupt controller.
#pragma once

namespace doppel {

// Threads: set_level() may be called from any thread (vCPU or device worker); an
// implementation is thread-safe. Devices model level-triggered lines: the line stays high
// while the device has a condition pending (virtio-mmio InterruptStatus != 0, UART IIR).
class IrqLine {
 public:
  virtual ~IrqLine() = default;
  virtual void set_level(bool high) = 0;
  void raise() { set_level(true); }
  void lower() { set_level(false); }
};

}  // namespace doppel
