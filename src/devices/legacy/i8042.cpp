#include "devices/legacy/i8042.h"

#include <algorithm>

namespace doppel {

namespace {

// Ctrl, Alt, Delete down, then up in reverse order. Set 2 is what the keyboard sends;
// set 1 is what the controller hands on when it translates (command byte bit 6), and what
// Linux's atkbd expects on a port it found translating.
constexpr uint8_t kCtrlAltDelSet2[] = {
    0x14, 0x11, 0xe0, 0x71,               // make: Ctrl, Alt, E0 Delete
    0xe0, 0xf0, 0x71, 0xf0, 0x11, 0xf0, 0x14,  // break: E0 F0 Delete, F0 Alt, F0 Ctrl
};
constexpr uint8_t kCtrlAltDelSet1[] = {
    0x1d, 0x38, 0xe0, 0x53,  // make
    0xe0, 0xd3, 0xb8, 0x9d,  // break: make | 0x80
};

}  // namespace

void I8042::put_output(uint8_t value) {
  m_state.output = value;
  m_state.output_full = true;
}

bool I8042::queue_keyboard(std::span<const uint8_t> bytes) {
  if (bytes.size() > I8042State::kQueueSize - m_state.queue_count) return false;
  for (uint8_t b : bytes) m_state.queue[m_state.queue_count++] = b;
  deliver_keyboard();
  return true;
}

void I8042::deliver_keyboard() {
  if (m_state.output_full || m_state.queue_count == 0 ||
      (m_state.command_byte & kCommandKeyboardDisabled) != 0)
    return;
  put_output(m_state.queue[0]);
  std::copy(m_state.queue.begin() + 1, m_state.queue.begin() + m_state.queue_count,
            m_state.queue.begin());
  m_state.queue[--m_state.queue_count] = 0;
  // An ISA edge: Linux's handler reads one byte per interrupt.
  if ((m_state.command_byte & kCommandKeyboardInterrupt) != 0) {
    m_irq.raise();
    m_irq.lower();
  }
}

uint64_t I8042::read(uint64_t offset, unsigned /*size*/) {
  std::lock_guard lock(m_mutex);
  switch (static_cast<Port>(offset)) {
    case Port::kData: {
      const uint8_t value = m_state.output;
      m_state.output_full = false;
      deliver_keyboard();
      return value;
    }
    case Port::kCommand:
      return (m_state.output_full ? kStatusOutputFull : 0) | kStatusSystemFlag |
             kStatusNotInhibited | (m_command_last ? kStatusCommandLast : 0);
  }
  return 0;
}

// A byte for the keyboard itself. A keyboard clears its buffer when it gets a command, so
// the answer is the next thing the guest reads.
void I8042::keyboard_write(uint8_t byte) {
  if (m_state.keyboard_command != 0) {
    const auto command = static_cast<KeyboardCommand>(m_state.keyboard_command);
    m_state.keyboard_command = 0;
    if (command == KeyboardCommand::kScanCodeSet && byte == 0) {
      const uint8_t answer[] = {kAck, 0x02};  // set 2, the only one this keyboard speaks
      (void)queue_keyboard(answer);
    } else {
      (void)queue_keyboard(std::span(&kAck, 1));
    }
    return;
  }
  m_state.queue_count = 0;
  m_state.queue.fill(0);
  switch (static_cast<KeyboardCommand>(byte)) {
    case KeyboardCommand::kSetLeds:
    case KeyboardCommand::kScanCodeSet:
    case KeyboardCommand::kTypematic:
      m_state.keyboard_command = byte;
      (void)queue_keyboard(std::span(&kAck, 1));
      return;
    case KeyboardCommand::kEcho: {
      const uint8_t echo = 0xee;
      (void)queue_keyboard(std::span(&echo, 1));
      return;
    }
    case KeyboardCommand::kGetId: {
      const uint8_t answer[] = {kAck, 0xab, 0x83};
      (void)queue_keyboard(answer);
      return;
    }
    case KeyboardCommand::kReset: {
      const uint8_t answer[] = {kAck, 0xaa};
      (void)queue_keyboard(answer);
      return;
    }
  }
  // 0xf4 enable, 0xf5 disable, 0xf6 defaults, 0xf7-0xfd set 3 key types, 0xfe resend: ACK.
  if (byte >= 0xf4) {
    (void)queue_keyboard(std::span(&kAck, 1));
    return;
  }
  (void)queue_keyboard(std::span(&kResend, 1));  // not a command: "resend"
}

void I8042::write_data(uint8_t byte, bool& reset) {
  m_command_last = false;
  const auto pending = static_cast<Command>(m_state.pending_command);
  m_state.pending_command = 0;
  switch (pending) {
    case Command::kWriteCommandByte:
      m_state.command_byte = byte;
      deliver_keyboard();  // the keyboard may just have been enabled
      return;
    case Command::kWriteOutputPort:
      reset = (byte & 1) == 0;  // bit 0 is the CPU reset line, active low
      return;
    case Command::kWriteKeyboardBuffer:
      (void)queue_keyboard(std::span(&byte, 1));
      return;
    case Command::kWriteAuxBuffer:
      put_output(byte);
      return;
    default:
      keyboard_write(byte);
      return;
  }
}

void I8042::write_command(uint8_t byte, bool& reset) {
  m_command_last = true;
  m_state.pending_command = 0;
  switch (static_cast<Command>(byte)) {
    case Command::kReadCommandByte: put_output(m_state.command_byte); break;
    case Command::kWriteCommandByte:
    case Command::kWriteOutputPort:
    case Command::kWriteKeyboardBuffer:
    case Command::kWriteAuxBuffer: m_state.pending_command = byte; break;
    case Command::kDisableAux: m_state.command_byte |= kCommandAuxDisabled; break;
    case Command::kEnableAux: m_state.command_byte &= ~kCommandAuxDisabled; break;
    case Command::kAuxTest: put_output(0x01); break;
    case Command::kSelfTest: put_output(0x55); break;
    case Command::kInterfaceTest: put_output(0x00); break;
    case Command::kDisableKeyboard: m_state.command_byte |= kCommandKeyboardDisabled; break;
    case Command::kEnableKeyboard:
      m_state.command_byte &= ~kCommandKeyboardDisabled;
      deliver_keyboard();
      break;
    case Command::kReadOutputPort: put_output(0x01); break;  // reset line high (inactive)
    case Command::kPulseReset: reset = true; break;
    default: break;  // nothing else is modelled
  }
}

void I8042::write(uint64_t offset, unsigned /*size*/, uint64_t value) {
  const auto byte = static_cast<uint8_t>(value);
  bool reset = false;
  {
    std::lock_guard lock(m_mutex);
    switch (static_cast<Port>(offset)) {
      case Port::kData: write_data(byte, reset); break;
      case Port::kCommand: write_command(byte, reset); break;
    }
  }
  if (reset) m_on_reset();
}

Result<void> I8042::send_ctrl_alt_del() {
  std::lock_guard lock(m_mutex);
  const bool translate = (m_state.command_byte & kCommandTranslate) != 0;
  const bool queued = translate ? queue_keyboard(kCtrlAltDelSet1) : queue_keyboard(kCtrlAltDelSet2);
  if (!queued)
    return Error::format("i8042: the keyboard buffer has {} of {} bytes taken: the guest is not "
                         "reading its keyboard", m_state.queue_count, I8042State::kQueueSize);
  return ok();
}

I8042State I8042::save() const {
  std::lock_guard lock(m_mutex);
  return m_state;
}

Result<void> I8042::restore(const I8042State& state) {
  if (state.version < I8042State::kOldestVersion || state.version > I8042State::kVersion)
    return Error::format("i8042: state version {} is not supported", state.version);
  if (state.queue_count > I8042State::kQueueSize)
    return Error::format("i8042: keyboard queue count {} is more than {}", state.queue_count,
                         I8042State::kQueueSize);
  std::lock_guard lock(m_mutex);
  m_state = state;
  if (state.version < 2) {  // no keyboard then
    m_state.keyboard_command = 0;
    m_state.queue_count = 0;
    m_state.queue.fill(0);
  }
  m_state.version = I8042State::kVersion;
  return ok();
}

}  // namespace doppel
