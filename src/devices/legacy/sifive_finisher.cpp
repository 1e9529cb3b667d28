#include "devices/legacy/sifive_finisher.h"

#include "base/log.h"

namespace doppel {

uint64_t SifiveFinisher::read(uint64_t, unsigned) { return 0; }

void SifiveFinisher::write(uint64_t offset, unsigned size, uint64_t value) {
  if (offset != 0 || size < 2) {
    DOPPEL_GUEST_WARN("sifive_finisher: ignored {}-byte write at offset {:#x}", size, offset);
    return;
  }
  const auto command = static_cast<Command>(value & 0xffff);
  const auto code = static_cast<uint16_t>(size >= 4 ? (value >> 16) & 0xffff : 0);
  switch (command) {
    case Command::kPass:
      if (m_handler) m_handler(Action::kPowerOff, code);
      return;
    case Command::kReset:
      if (m_handler) m_handler(Action::kReset, code);
      return;
    case Command::kFail:
      if (m_handler) m_handler(Action::kFail, code);
      return;
  }
  DOPPEL_GUEST_WARN("sifive_finisher: unknown command {:#x}", value);
}

}  // namespace doppel
