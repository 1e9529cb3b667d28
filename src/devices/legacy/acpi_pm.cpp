#include "devices/legacy/acpi_pm.h"

#include "base/log.h"

namespace doppel {

uint64_t AcpiPm::read(uint64_t /*offset*/, unsigned /*size*/) { return 0; }

void AcpiPm::write(uint64_t offset, unsigned /*size*/, uint64_t value) {
  const auto byte = static_cast<uint8_t>(value);
  switch (static_cast<Reg>(offset)) {
    case Reg::kSleepControl:
      if (!(byte & kSlpEn)) return;
      if (((byte >> 2) & 7) == m_s5) {
        m_on_action(Action::kPowerOff);
      } else {
        DOPPEL_GUEST_WARN("acpi: sleep type {} requested; only S5 (power off) is supported",
                          (byte >> 2) & 7);
      }
      return;
    case Reg::kSleepStatus:
      return;
    case Reg::kReset:
      if (byte == m_reset_value) m_on_action(Action::kReset);
      return;
  }
}

}  // namespace doppel
