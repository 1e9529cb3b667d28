// libFuzzer: the guest-visible legacy devices (16550 UART in both register layouts, i8042,
// ACPI PM registers, SiFive finisher) driven by an arbitrary sequence of register reads,
// writes and host-side receives (UART bytes, i8042 Ctrl-Alt-Del), as a hostile guest and a fast typist would.
//
// Input: a stream of 11-byte operations: op (device and kind), offset, size, value.
// Invariants checked beyond "no crash, no UB": the UART never takes more bytes than it was
// offered, and reads return no more bits than the access size.
#include <array>
#include <cstdlib>
#include <memory>
#include <span>

#include "devices/legacy/acpi_pm.h"
#include "devices/legacy/i8042.h"
#include "devices/legacy/sifive_finisher.h"
#include "devices/legacy/uart_16550.h"

using namespace doppel;

namespace {

class FuzzIrq final : public IrqLine {
 public:
  void set_level(bool high) override { m_level = high; }

 private:
  bool m_level = false;
};

void check(bool ok) {
  if (!ok) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzIrq uart_irq, uart_irq_wide, keyboard_irq;
  Uart16550 uart(uart_irq, 0, [](uint8_t) {});
  Uart16550 uart_wide(uart_irq_wide, 2, [](uint8_t) {});
  I8042 i8042(keyboard_irq, [] {});
  AcpiPm acpi(5, 0x0e, [](AcpiPm::Action) {});
  SifiveFinisher finisher([](SifiveFinisher::Action, uint16_t) {});
  std::array<Device*, 5> devices{&uart, &uart_wide, &i8042, &acpi, &finisher};
  int room_calls = 0;
  uart.set_rx_room_callback([&] { ++room_calls; });

  constexpr size_t kOpSize = 11;
  for (size_t at = 0; at + kOpSize <= size; at += kOpSize) {
    const uint8_t* op = data + at;
    const unsigned kind = op[0] % 3;  // 0 read, 1 write, 2 host receive (UART)
    Device& device = *devices[(op[0] / 3) % devices.size()];
    const uint64_t offset = op[1];
    const unsigned access = 1u << (op[2] % 4);
    uint64_t value = 0;
    for (int i = 0; i < 8; ++i) value |= static_cast<uint64_t>(op[3 + i]) << (8 * i);
    switch (kind) {
      case 0: {
        const uint64_t got = device.read(offset, access);
        if (access < 8) check(got >> (8 * access) == 0);
        break;
      }
      case 1:
        device.write(offset, access, value);
        break;
      case 2: {
        const size_t offered = op[2] % 9;
        const size_t taken = uart.receive(std::span<const uint8_t>(op + 3, offered));
        check(taken <= offered);
        // The host types Ctrl-Alt-Del too; a full keyboard buffer refuses it.
        if (op[1] & 1) (void)i8042.send_ctrl_alt_del();
        check(i8042.save().queue_count <= I8042State::kQueueSize);
        break;
      }
    }
  }
  uart.reset();
  return 0;
}
