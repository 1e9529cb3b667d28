// The ACPI fixed-hardware registers doppel's FADT points at (boot/x86_64/acpi.h), on 12
// consecutive I/O ports, laid out as on a PC chipset's power-management block:
//   offset 0  PM1a_STS (16 bits): fixed event status, write 1 to clear (ACPI 6.4 4.8.3.1.1)
//   offset 2  PM1a_EN  (16 bits): fixed event enables
//   offset 4  PM1a_CNT (16 bits): SCI_EN (bit 0, always 1: the machine is always in ACPI
//             mode), SLP_TYPx (12:10), SLP_EN (13, write-only). SLP_EN with the S5 sleep
//             type powers off (ACPI 6.4 4.8.3.2.1, 16.1.7).
//   offset 6  RESET_REG (8 bits): writing the FADT's RESET_VALUE resets the machine.
//   offset 8  PM_TMR (32 bits, read-only): free-running 3.579545 MHz counter (4.8.3.3).
// No event ever becomes pending: there are no buttons, no wake sources and no SCI.
// Accesses of any width at any offset work byte by byte, as on the ISA bus.
//
// Threads: read()/write() from any vCPU thread, under m_mutex; the action callback runs on
// that thread with no lock held.
#pragma once

#include <cstdint>
#include <functional>
#include <mutex>

#include "base/persist.h"
#include "core/device.h"

namespace doppel {

struct AcpiPmState {
  static constexpr uint32_t kVersion = 1;
  uint32_t version = kVersion;
  uint16_t pm1_sts = 0;
  uint16_t pm1_en = 0;
  uint16_t pm1_cnt = 0;  // SLP_TYPx as last written (SCI_EN and SLP_EN are not stored)
};

class AcpiPm final : public Device, public Persist<AcpiPmState> {
 public:
  enum class Action { kPowerOff, kReset };
  // Monotonic nanoseconds, for the PM timer (tests pass a fake clock).
  using Clock = std::function<uint64_t()>;

  AcpiPm(uint8_t s5_sleep_type, uint8_t reset_value, std::function<void(Action)> on_action,
         Clock clock = {});

  std::string_view name() const override { return "acpi-pm"; }
  uint64_t read(uint64_t offset, unsigned size) override;
  void write(uint64_t offset, unsigned size, uint64_t value) override;

  AcpiPmState save() const override;
  Result<void> restore(const AcpiPmState& state) override;

  // Register offsets from the block's base, and its size on the bus.
  static constexpr uint64_t kPm1aStatus = 0;
  static constexpr uint64_t kPm1aEnable = 2;
  static constexpr uint64_t kPm1aControl = 4;
  static constexpr uint64_t kReset = 6;
  static constexpr uint64_t kPmTimer = 8;
  static constexpr uint64_t kSize = 12;

  static constexpr uint16_t kSciEn = 1u << 0;
  static constexpr unsigned kSlpTypShift = 10;
  static constexpr uint16_t kSlpTypMask = 7u << kSlpTypShift;
  static constexpr uint16_t kSlpEn = 1u << 13;
  static constexpr uint64_t kPmTimerHz = 3579545;

 private:
  // Under m_mutex. write_byte() sets *action when the byte asks for one.
  uint8_t read_byte(uint64_t offset, uint32_t timer) const;
  void write_byte(uint64_t offset, uint8_t byte, Action* action, bool* acted);

  const uint8_t m_s5;
  const uint8_t m_reset_value;
  std::function<void(Action)> m_on_action;
  Clock m_clock;

  mutable std::mutex m_mutex;
  AcpiPmState m_state;  // GUARDED_BY(m_mutex)
};

}  // namespace doppel
