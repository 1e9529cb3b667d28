// A National Semiconductor 16550A UART: the serial console of both machines (riscv64 virt
// at 0x10000000 IRQ 10 with byte registers; x86_64 COM1 at port 0x3f8 IRQ 4).
//
// Transmission is instantaneous: a byte written to THR goes to the TX sink at once, so the
// transmitter is always empty (LSR.THRE and LSR.TEMT stay set). Reception goes through a
// 16-byte FIFO (1 byte when the guest disables FIFOs) that the host side fills with
// receive(): it takes only what fits, and the UART calls the "room" callback once it can
// take more, so the host can offer the rest (flow control: nothing is lost).
//
// Host input is accepted only while the guest's driver listens, i.e. has the receive
// interrupt enabled (IER.ERBFI) and routed to the interrupt controller (MCR.OUT2, which
// gates the IRQ line on a PC; drivers that use interrupts set it on every platform).
// Firmware and drivers reset the FIFO and discard RBR when they initialise the port
// (OpenSBI's uart8250 init, Linux's 8250 startup), and Linux's port probe briefly sets
// IER to 0x0f with OUT2 clear, so bytes given earlier would be lost; and Linux clears ERBFI
// to throttle input when its tty buffer is full.
//
// A driver that polls instead (U-Boot, bare-metal programs) is recognised by what it does
// while it waits for a key: it reads LSR again and again and touches nothing else. After
// kPollRun LSR reads in a row the UART takes input too, until the next access to another
// register. A driver that only transmits reads LSR once per THR write (waiting for THRE,
// always set here), and Linux's port startup reads it at most twice in a row before it
// discards RBR, so firmware and Linux booting never open the receiver that way.
//
// Threads: read()/write() come from vCPU threads; receive() from the console's input
// thread; save()/restore() from the VMM while vCPUs are stopped. m_mutex guards all state.
// Lock order: m_mutex -> the IrqLine's own lock (the interrupt controller never calls back
// into a device). The TX sink is called with m_mutex held, which keeps output from several
// harts in order; it must not call back into the UART. The room callback is called with no
// lock held.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <mutex>
#include <span>

#include "base/persist.h"
#include "core/device.h"
#include "core/irq.h"

namespace doppel {

struct Uart16550State {
  static constexpr uint32_t kVersion = 1;
  uint32_t version = kVersion;
  uint8_t ier = 0, lcr = 0, mcr = 0, scr = 0, dll = 0, dlm = 0, fcr = 0;
  uint8_t lsr_errors = 0;   // OE/PE/FE/BI bits latched until LSR is read
  uint8_t msr_deltas = 0;   // DCTS/DDSR/TERI/DDCD latched until MSR is read
  bool thr_interrupt = false;
  uint8_t rx_count = 0;
  std::array<uint8_t, 16> rx_fifo{};  // rx_fifo[0] is the oldest byte
};

class Uart16550 final : public Device, public Persist<Uart16550State> {
 public:
  using TxSink = std::function<void(uint8_t byte)>;

  // Register i is at offset i << reg_shift (0: consecutive bytes; 2: 32-bit spaced).
  Uart16550(IrqLine& irq, unsigned reg_shift, TxSink tx);

  std::string_view name() const override { return "uart16550"; }
  uint64_t read(uint64_t offset, unsigned size) override;
  void write(uint64_t offset, unsigned size, uint64_t value) override;

  // Host side: queue received bytes. Returns how many were taken (the FIFO's free room);
  // the caller keeps the rest until the room callback fires.
  size_t receive(std::span<const uint8_t> bytes);
  // Called (no lock held) when receive() took less than offered and the UART can now take
  // more (FIFO drained or cleared, receive interrupt enabled, loopback left).
  void set_rx_room_callback(std::function<void()> callback);

  // Back to power-on state (registers, FIFOs, interrupt line low).
  void reset();

  // Whether the driver asked for transmit interrupts (IER.ETBEI). While it has not, a THR
  // write has no effect the guest can wait for, so a VMM may batch THR writes (the KVM
  // machine coalesces them) as long as it delivers them before the guest's next access.
  bool tx_interrupt_enabled() const;

  Uart16550State save() const override;
  Result<void> restore(const Uart16550State& state) override;

  // Size of the register window on the bus.
  uint64_t window_size() const { return 8ull << m_reg_shift; }

 private:
  // Register indices (offset >> reg_shift), 16550A datasheet table 2.
  enum class Reg : uint8_t {
    kRbrThrDll = 0,  // RBR (read) / THR (write); DLL when LCR.DLAB
    kIerDlm = 1,     // interrupt enable; DLM when LCR.DLAB
    kIirFcr = 2,     // interrupt identification (read) / FIFO control (write)
    kLcr = 3,        // line control: word length, parity, stop bits, DLAB (bit 7)
    kMcr = 4,        // modem control: DTR, RTS, OUT1, OUT2, LOOP (bit 4)
    kLsr = 5,        // line status: DR, OE, PE, FE, BI, THRE, TEMT, FIFO error
    kMsr = 6,        // modem status: deltas (3:0), CTS, DSR, RI, DCD (7:4)
    kScr = 7,        // scratch
  };

  bool fifo_enabled() const { return (m_state.fcr & 0x01) != 0; }  // FCR bit 0: FIFO enable
  size_t rx_capacity() const { return fifo_enabled() ? m_state.rx_fifo.size() : 1; }
  bool rx_full() const { return m_state.rx_count >= rx_capacity(); }
  // Whether receive() would take a byte now.
  bool accepting() const;
  unsigned rx_trigger() const;
  uint8_t compute_iir() const;
  uint8_t compute_msr_lines() const;
  void set_msr_lines(uint8_t old_lines);
  void push_rx(uint8_t byte);  // loopback path: overrun sets OE when full
  uint8_t pop_rx();
  void update_irq();
  // Under the lock, after a guest access: whether the room callback is due (and clears
  // the refusal it answers). The caller calls the callback after unlocking.
  bool room_due_locked();

  IrqLine& m_irq;
  const unsigned m_reg_shift;
  TxSink m_tx;
  std::function<void()> m_room_callback;  // set before vCPUs run

  mutable std::mutex m_mutex;
  Uart16550State m_state;  // GUARDED_BY(m_mutex)
  bool m_irq_level = false;  // GUARDED_BY(m_mutex)
  bool m_rx_refused = false;  // GUARDED_BY(m_mutex): receive() left bytes with the host
  // LSR reads in a row with no other register access between them (a polling reader).
  // Not saved: a polling driver shows itself again within its next kPollRun reads.
  static constexpr unsigned kPollRun = 8;
  unsigned m_lsr_run = 0;  // GUARDED_BY(m_mutex)
};

}  // namespace doppel
