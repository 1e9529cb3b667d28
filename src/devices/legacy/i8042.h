// The i8042 keyboard controller, as far as a VM needs it: the status and command ports
// Linux polls, the command byte, the CPU reset line (command 0xFE "pulse output port bit
// 0", or writing the output port with bit 0 clear), and a minimal AT keyboard behind it
// whose only keys are the ones the host types: Ctrl-Alt-Del (Firecracker's SendCtrlAltDel).
//
// The keyboard: a queue of bytes behind the output buffer. A byte moves into the output
// buffer when it is empty and the keyboard interface is enabled (command byte bit 4 clear),
// sets status bit 0 and, with the command byte's keyboard interrupt bit 0 set, pulses IRQ 1
// (an ISA edge). It answers the AT keyboard commands Linux's atkbd sends when it probes
// (ACK 0xFA, ID 0xAB 0x83, reset 0xAA), so the driver attaches with or without
// i8042.dumbkbd. There is no auxiliary (mouse) port.
//
// Occupies ports 0x60 (offset 0: data) to 0x64 (offset 4: status read / command write);
// offsets 1-3 (0x61 and friends) are not part of this device and must not be mapped to it.
// Threads: read()/write() from vCPU threads, send_ctrl_alt_del() from the API thread, all
// under m_mutex; the IRQ line is pulsed under it (an IrqLine never calls back); on_reset is
// called without it.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <mutex>
#include <span>

#include "base/persist.h"
#include "base/result.h"
#include "core/device.h"
#include "core/irq.h"

namespace doppel {

struct I8042State {
  // Version 1 had no keyboard: it restores as version 2 with an empty queue.
  static constexpr uint32_t kVersion = 2;
  static constexpr uint32_t kOldestVersion = 1;
  // With the output buffer, 16 bytes: as many as Linux's i8042_flush() drains before it
  // calls the controller stuck.
  static constexpr size_t kQueueSize = 15;
  uint32_t version = kVersion;
  uint8_t command_byte = 0;
  uint8_t output = 0;         // output buffer contents
  bool output_full = false;   // status bit 0
  uint8_t pending_command = 0;  // a command waiting for its data byte on port 0x60
  // Since version 2: the keyboard.
  uint8_t keyboard_command = 0;  // a keyboard command waiting for its data byte
  uint8_t queue_count = 0;       // at most kQueueSize
  std::array<uint8_t, kQueueSize> queue{};  // keyboard bytes behind the output buffer, oldest first
};

class I8042 final : public Device, public Persist<I8042State> {
 public:
  I8042(IrqLine& keyboard_irq, std::function<void()> on_reset)
      : m_irq(keyboard_irq), m_on_reset(std::move(on_reset)) {}

  std::string_view name() const override { return "i8042"; }
  uint64_t read(uint64_t offset, unsigned size) override;
  void write(uint64_t offset, unsigned size, uint64_t value) override;

  // Types Ctrl-Alt-Del: the make codes of Ctrl, Alt and Delete, then their break codes, in
  // scan code set 2, or set 1 if the command byte asks the controller to translate (bit 6).
  // Fails, typing nothing, when the keyboard buffer has no room for the whole sequence
  // (the guest is not reading its keyboard).
  Result<void> send_ctrl_alt_del();

  I8042State save() const override;
  Result<void> restore(const I8042State& state) override;

 private:
  enum class Port : uint64_t {
    kData = 0,    // 0x60: output buffer (read) / keyboard or command data (write)
    kCommand = 4, // 0x64: status (read) / command (write)
  };
  enum class Command : uint8_t {
    kReadCommandByte = 0x20,   // command byte -> output buffer
    kWriteCommandByte = 0x60,  // next data byte -> command byte
    kDisableAux = 0xa7,        // command byte bit 5 set
    kEnableAux = 0xa8,         // command byte bit 5 clear
    kAuxTest = 0xa9,           // aux interface test: 0x01 "clock line stuck low" (no aux port)
    kSelfTest = 0xaa,          // 0x55 -> output buffer
    kInterfaceTest = 0xab,     // 0x00 -> output buffer
    kDisableKeyboard = 0xad,   // command byte bit 4 set
    kEnableKeyboard = 0xae,    // command byte bit 4 clear
    kReadOutputPort = 0xd0,    // output port -> output buffer
    kWriteOutputPort = 0xd1,   // next data byte -> output port (bit 0 clear: CPU reset)
    kWriteKeyboardBuffer = 0xd2,  // next data byte -> output buffer, as if from the keyboard
    kWriteAuxBuffer = 0xd3,    // aux loopback: comes back without status bit 5 (no aux port)
    kPulseReset = 0xfe,        // pulse output port bit 0: CPU reset
  };
  // AT keyboard commands (written to port 0x60 with no controller command pending).
  enum class KeyboardCommand : uint8_t {
    kSetLeds = 0xed,       // + data byte
    kEcho = 0xee,          // answers 0xee
    kScanCodeSet = 0xf0,   // + data byte; 0: report the set
    kGetId = 0xf2,         // ACK, 0xab 0x83 (MF2 keyboard)
    kTypematic = 0xf3,     // + data byte
    kReset = 0xff,         // ACK, 0xaa (self-test passed)
  };
  static constexpr uint8_t kAck = 0xfa;
  static constexpr uint8_t kResend = 0xfe;

  static constexpr uint8_t kStatusOutputFull = 0x01;
  static constexpr uint8_t kStatusSystemFlag = 0x04;
  static constexpr uint8_t kStatusCommandLast = 0x08;
  static constexpr uint8_t kStatusNotInhibited = 0x10;  // keyboard lock switch off

  static constexpr uint8_t kCommandKeyboardInterrupt = 0x01;
  static constexpr uint8_t kCommandKeyboardDisabled = 0x10;
  static constexpr uint8_t kCommandAuxDisabled = 0x20;
  static constexpr uint8_t kCommandTranslate = 0x40;

  void put_output(uint8_t value);
  void write_data(uint8_t byte, bool& reset);
  void write_command(uint8_t byte, bool& reset);
  void keyboard_write(uint8_t byte);
  // Appends keyboard bytes: all of them, or none when they do not fit.
  bool queue_keyboard(std::span<const uint8_t> bytes);
  // Moves the next keyboard byte into an empty output buffer and pulses IRQ 1.
  void deliver_keyboard();

  IrqLine& m_irq;
  std::function<void()> m_on_reset;
  mutable std::mutex m_mutex;
  I8042State m_state;  // GUARDED_BY(m_mutex)
  bool m_command_last = false;  // GUARDED_BY(m_mutex)
};

}  // namespace doppel
