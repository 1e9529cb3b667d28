#include "devices/legacy/acpi_pm.h"

#include <chrono>

#include "base/log.h"

namespace doppel {

namespace {

uint64_t steady_ns() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
}

uint8_t byte_of(uint16_t v, uint64_t i) { return static_cast<uint8_t>(v >> (8 * i)); }

void set_byte(uint16_t& v, uint64_t i, uint8_t b) {
  const unsigned shift = 8 * static_cast<unsigned>(i);
  v = static_cast<uint16_t>((v & ~(0xffu << shift)) | (unsigned{b} << shift));
}

}  // namespace

AcpiPm::AcpiPm(uint8_t s5_sleep_type, uint8_t reset_value, std::function<void(Action)> on_action,
               Clock clock)
    : m_s5(s5_sleep_type),
      m_reset_value(reset_value),
      m_on_action(std::move(on_action)),
      m_clock(clock ? std::move(clock) : Clock(steady_ns)) {}

uint8_t AcpiPm::read_byte(uint64_t offset, uint32_t timer) const {
  if (offset < kPm1aEnable) return byte_of(m_state.pm1_sts, offset - kPm1aStatus);
  if (offset < kPm1aControl) return byte_of(m_state.pm1_en, offset - kPm1aEnable);
  if (offset < kReset)  // SLP_EN reads as 0; SCI_EN as 1 (no legacy mode to switch from)
    return byte_of(static_cast<uint16_t>((m_state.pm1_cnt & ~kSlpEn) | kSciEn),
                   offset - kPm1aControl);
  if (offset >= kPmTimer && offset < kSize)
    return static_cast<uint8_t>(timer >> (8 * (offset - kPmTimer)));
  return 0;  // RESET_REG reads 0; offset 7 is a hole
}

void AcpiPm::write_byte(uint64_t offset, uint8_t byte, Action* action, bool* acted) {
  if (offset < kPm1aEnable) {
    // Write 1 to clear.
    const unsigned i = static_cast<unsigned>(offset - kPm1aStatus);
    m_state.pm1_sts = static_cast<uint16_t>(m_state.pm1_sts & ~(unsigned{byte} << (8 * i)));
  } else if (offset < kPm1aControl) {
    set_byte(m_state.pm1_en, offset - kPm1aEnable, byte);
  } else if (offset < kReset) {
    uint16_t cnt = m_state.pm1_cnt;
    set_byte(cnt, offset - kPm1aControl, byte);
    // GBL_RLS (bit 2) and SLP_EN are write-only commands; keep the rest.
    m_state.pm1_cnt = static_cast<uint16_t>(cnt & ~(kSlpEn | 0x4u));
    if (cnt & kSlpEn) {
      const unsigned type = (cnt & kSlpTypMask) >> kSlpTypShift;
      if (type == m_s5) {
        *action = Action::kPowerOff;
        *acted = true;
      } else {
        DOPPEL_GUEST_WARN("acpi: sleep type {} requested; only S5 (power off) is supported",
                          type);
      }
    }
  } else if (offset == kReset) {
    if (byte == m_reset_value) {
      *action = Action::kReset;
      *acted = true;
    }
  }
  // PM_TMR is read-only; writes to it and to the hole are ignored (rule 2).
}

uint64_t AcpiPm::read(uint64_t offset, unsigned size) {
  if (size > 8) return 0;
  // The counter wraps at 32 bits (FADT TMR_VAL_EXT).
  const unsigned __int128 ticks =
      static_cast<unsigned __int128>(m_clock()) * kPmTimerHz / 1000000000u;
  const auto timer = static_cast<uint32_t>(ticks);
  std::lock_guard lock(m_mutex);
  uint64_t value = 0;
  for (unsigned i = 0; i < size; ++i)
    value |= uint64_t{read_byte(offset + i, timer)} << (8 * i);
  return value;
}

void AcpiPm::write(uint64_t offset, unsigned size, uint64_t value) {
  if (size > 8) return;
  Action action = Action::kPowerOff;
  bool acted = false;
  {
    std::lock_guard lock(m_mutex);
    for (unsigned i = 0; i < size; ++i)
      write_byte(offset + i, static_cast<uint8_t>(value >> (8 * i)), &action, &acted);
  }
  if (acted && m_on_action) m_on_action(action);
}

AcpiPmState AcpiPm::save() const {
  std::lock_guard lock(m_mutex);
  return m_state;
}

Result<void> AcpiPm::restore(const AcpiPmState& state) {
  if (state.version != AcpiPmState::kVersion)
    return Error::format("acpi-pm: state version {} is not supported (expected {})", state.version,
                         AcpiPmState::kVersion);
  std::lock_guard lock(m_mutex);
  m_state = state;
  m_state.pm1_cnt = static_cast<uint16_t>(m_state.pm1_cnt & ~(kSlpEn | 0x4u));
  return ok();
}

}  // namespace doppel
