// The hardware-reduced ACPI sleep and reset registers doppel's FADT points at
// (boot/x86_64/acpi.h), on 3 consecutive I/O ports:
//   offset 0  SLEEP_CONTROL_REG: SLP_TYPx in bits 4:2, SLP_EN bit 5 (ACPI 6.4 4.8.3.7).
//             SLP_EN with the S5 sleep type powers off.
//   offset 1  SLEEP_STATUS_REG: WAK_STS bit 7; reads 0 (the machine never sleeps).
//   offset 2  RESET_REG: writing the FADT's RESET_VALUE resets the machine.
// Threads: any vCPU thread; the callbacks run on it, without locks held.
#pragma once

#include <cstdint>
#include <functional>

#include "core/device.h"

namespace doppel {

class AcpiPm final : public Device {
 public:
  enum class Action { kPowerOff, kReset };
  AcpiPm(uint8_t s5_sleep_type, uint8_t reset_value, std::function<void(Action)> on_action)
      : m_s5(s5_sleep_type), m_reset_value(reset_value), m_on_action(std::move(on_action)) {}

  std::string_view name() const override { return "acpi-pm"; }
  uint64_t read(uint64_t offset, unsigned size) override;
  void write(uint64_t offset, unsigned size, uint64_t value) override;

  static constexpr uint64_t kSize = 3;

 private:
  enum class Reg : uint64_t {
    kSleepControl = 0,  // SLP_TYPx (4:2), SLP_EN (5)
    kSleepStatus = 1,   // WAK_STS (7)
    kReset = 2,         // RESET_VALUE resets
  };
  static constexpr uint8_t kSlpEn = 1u << 5;

  const uint8_t m_s5;
  const uint8_t m_reset_value;
  std::function<void(Action)> m_on_action;
};

}  // namespace doppel
