// The i8042 keyboard controller, as far as a VM needs it: the status and command ports
// Linux polls, the command byte, and the CPU reset line (command 0xFE "pulse output
// port bit 0", or writing the output port with bit 0 clear). No keyboard is attached.
//
// Occupies ports 0x60 (offset 0: data) to 0x64 (offset 4: status read / command write);
// offsets 1-3 (0x61 and friends) are not part of this device and must not be mapped to it.
// Threads: read()/write() from vCPU threads, under m_mutex; on_reset is called without it.
#pragma once

#include <cstdint>
#include <functional>
#include <mutex>

#include "base/persist.h"
#include "core/device.h"

namespace doppel {

struct I8042State {
  static constexpr uint32_t kVersion = 1;
  uint32_t version = kVersion;
  uint8_t command_byte = 0;
  uint8_t output = 0;         // output buffer contents
  bool output_full = false;   // status bit 0
  uint8_t pending_command = 0;  // a command waiting for its data byte on port 0x60
};

class I8042 final : public Device, public Persist<I8042State> {
 public:
  explicit I8042(std::function<void()> on_reset) : m_on_reset(std::move(on_reset)) {}

  std::string_view name() const override { return "i8042"; }
  uint64_t read(uint64_t offset, unsigned size) override;
  void write(uint64_t offset, unsigned size, uint64_t value) override;

  I8042State save() const override;
  Result<void> restore(const I8042State& state) override;

 private:
  enum class Port : uint64_t {
    kData = 0,    // 0x60: output buffer (read) / data for a pending command (write)
    kCommand = 4, // 0x64: status (read) / command (write)
  };
  enum class Command : uint8_t {
    kReadCommandByte = 0x20,   // command byte -> output buffer
    kWriteCommandByte = 0x60,  // next data byte -> command byte
    kSelfTest = 0xaa,          // 0x55 -> output buffer
    kInterfaceTest = 0xab,     // 0x00 -> output buffer
    kReadOutputPort = 0xd0,    // output port -> output buffer
    kWriteOutputPort = 0xd1,   // next data byte -> output port (bit 0 clear: CPU reset)
    kPulseReset = 0xfe,        // pulse output port bit 0: CPU reset
  };
  static constexpr uint8_t kStatusOutputFull = 0x01;
  static constexpr uint8_t kStatusSystemFlag = 0x04;
  static constexpr uint8_t kStatusCommandLast = 0x08;
  static constexpr uint8_t kStatusNotInhibited = 0x10;  // keyboard lock switch off

  void put_output(uint8_t value);

  std::function<void()> m_on_reset;
  mutable std::mutex m_mutex;
  I8042State m_state;  // GUARDED_BY(m_mutex)
  bool m_command_last = false;  // GUARDED_BY(m_mutex)
};

}  // namespace doppel
