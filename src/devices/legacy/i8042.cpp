#include "devices/legacy/i8042.h"

namespace doppel {

void I8042::put_output(uint8_t value) {
  m_state.output = value;
  m_state.output_full = true;
}

uint64_t I8042::read(uint64_t offset, unsigned /*size*/) {
  std::lock_guard lock(m_mutex);
  switch (static_cast<Port>(offset)) {
    case Port::kData: {
      m_state.output_full = false;
      return m_state.output;
    }
    case Port::kCommand:
      return (m_state.output_full ? kStatusOutputFull : 0) | kStatusSystemFlag |
             kStatusNotInhibited | (m_command_last ? kStatusCommandLast : 0);
  }
  return 0;
}

void I8042::write(uint64_t offset, unsigned /*size*/, uint64_t value) {
  const auto byte = static_cast<uint8_t>(value);
  bool reset = false;
  {
    std::lock_guard lock(m_mutex);
    switch (static_cast<Port>(offset)) {
      case Port::kData:
        m_command_last = false;
        if (m_state.pending_command == static_cast<uint8_t>(Command::kWriteCommandByte))
          m_state.command_byte = byte;
        else if (m_state.pending_command == static_cast<uint8_t>(Command::kWriteOutputPort))
          reset = (byte & 1) == 0;  // bit 0 is the CPU reset line, active low
        m_state.pending_command = 0;
        break;
      case Port::kCommand:
        m_command_last = true;
        m_state.pending_command = 0;
        switch (static_cast<Command>(byte)) {
          case Command::kReadCommandByte: put_output(m_state.command_byte); break;
          case Command::kWriteCommandByte:
          case Command::kWriteOutputPort: m_state.pending_command = byte; break;
          case Command::kSelfTest: put_output(0x55); break;
          case Command::kInterfaceTest: put_output(0x00); break;
          case Command::kReadOutputPort: put_output(0x01); break;  // reset line high (inactive)
          case Command::kPulseReset: reset = true; break;
          default: break;  // keyboard/mouse commands: nothing attached
        }
        break;
    }
  }
  if (reset) m_on_reset();
}

I8042State I8042::save() const {
  std::lock_guard lock(m_mutex);
  return m_state;
}

Result<void> I8042::restore(const I8042State& state) {
  if (state.version != I8042State::kVersion)
    return Error::format("i8042: state version {} is not supported", state.version);
  std::lock_guard lock(m_mutex);
  m_state = state;
  return ok();
}

}  // namespace doppel
