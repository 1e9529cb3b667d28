// (File named sifive_finisher, not sifive_test: the build treats *_test.cpp as unit tests.)
// SiFive's test "finisher" ("sifive,test1", as in QEMU virt): the guest writes a 32-bit
// command at offset 0 to power off, reboot, or power off reporting failure. OpenSBI's
// generic platform drives it for SBI SRST, which is how Linux powers off and reboots.
//
//   value[15:0] = 0x5555 pass (poweroff), 0x7777 reset, 0x3333 fail; value[31:16] = code
//
// The device does not know the machine: it calls the handler given at construction.
// Threads: write() from vCPU threads; the handler runs on that thread and must only
// request the stop (e.g. kick the harts), not wait for it.
#pragma once

#include <cstdint>
#include <functional>

#include "core/device.h"

namespace doppel {

class SifiveFinisher final : public Device {
 public:
  enum class Action { kPowerOff, kReset, kFail };
  static constexpr uint64_t kSize = 0x1000;
  using Handler = std::function<void(Action action, uint16_t code)>;

  explicit SifiveFinisher(Handler handler) : m_handler(std::move(handler)) {}

  std::string_view name() const override { return "sifive_finisher"; }
  uint64_t read(uint64_t offset, unsigned size) override;
  void write(uint64_t offset, unsigned size, uint64_t value) override;

 private:
  // Command values in the low half-word of the register at offset 0.
  enum class Command : uint16_t {
    kFail = 0x3333,  // stop, reporting failure (code in bits 31:16)
    kPass = 0x5555,  // stop, success: poweroff
    kReset = 0x7777, // reset the system
  };
  Handler m_handler;
};

}  // namespace doppel
