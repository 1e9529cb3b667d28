#include "devices/legacy/uart_16550.h"

#include <algorithm>

namespace doppel {

namespace {

// IER bits.
constexpr uint8_t kIerRda = 0x01;   // received data available (and character timeout)
constexpr uint8_t kIerThre = 0x02;  // transmitter holding register empty
constexpr uint8_t kIerRls = 0x04;   // receiver line status
constexpr uint8_t kIerMs = 0x08;    // modem status
// IIR values, highest priority first (datasheet table 4).
constexpr uint8_t kIirNone = 0x01;
constexpr uint8_t kIirRls = 0x06;
constexpr uint8_t kIirRda = 0x04;
constexpr uint8_t kIirTimeout = 0x0c;
constexpr uint8_t kIirThre = 0x02;
constexpr uint8_t kIirMs = 0x00;
constexpr uint8_t kIirFifoEnabled = 0xc0;
// FCR bits.
constexpr uint8_t kFcrClearRx = 0x02;
// LCR bits.
constexpr uint8_t kLcrDlab = 0x80;
// MCR bits.
constexpr uint8_t kMcrDtr = 0x01, kMcrRts = 0x02, kMcrOut1 = 0x04, kMcrOut2 = 0x08;
constexpr uint8_t kMcrLoop = 0x10;
// LSR bits.
constexpr uint8_t kLsrDr = 0x01;
constexpr uint8_t kLsrOe = 0x02;
constexpr uint8_t kLsrErrors = 0x1e;  // OE | PE | FE | BI
constexpr uint8_t kLsrThre = 0x20;
constexpr uint8_t kLsrTemt = 0x40;
constexpr uint8_t kLsrFifoError = 0x80;
// MSR bits.
constexpr uint8_t kMsrDcts = 0x01, kMsrDdsr = 0x02, kMsrTeri = 0x04, kMsrDdcd = 0x08;
constexpr uint8_t kMsrCts = 0x10, kMsrDsr = 0x20, kMsrRi = 0x40, kMsrDcd = 0x80;

}  // namespace

Uart16550::Uart16550(IrqLine& irq, unsigned reg_shift, TxSink tx)
    : m_irq(irq), m_reg_shift(reg_shift), m_tx(std::move(tx)) {}

void Uart16550::set_rx_room_callback(std::function<void()> callback) {
  m_room_callback = std::move(callback);
}

void Uart16550::reset() {
  std::lock_guard lock(m_mutex);
  m_state = Uart16550State{};
  update_irq();
  // Nothing is accepted until a driver enables the receive interrupt again.
}

bool Uart16550::tx_interrupt_enabled() const {
  std::lock_guard lock(m_mutex);
  return (m_state.ier & kIerThre) != 0;
}

unsigned Uart16550::rx_trigger() const {
  static constexpr unsigned kLevels[4] = {1, 4, 8, 14};
  return kLevels[(m_state.fcr >> 6) & 3];
}

uint8_t Uart16550::compute_msr_lines() const {
  if (m_state.mcr & kMcrLoop) {
    // Loopback wires the modem outputs back to the inputs (datasheet 8.6).
    uint8_t lines = 0;
    if (m_state.mcr & kMcrRts) lines |= kMsrCts;
    if (m_state.mcr & kMcrDtr) lines |= kMsrDsr;
    if (m_state.mcr & kMcrOut1) lines |= kMsrRi;
    if (m_state.mcr & kMcrOut2) lines |= kMsrDcd;
    return lines;
  }
  // A host console is always "connected": carrier, data set ready, clear to send.
  return kMsrCts | kMsrDsr | kMsrDcd;
}

void Uart16550::set_msr_lines(uint8_t old_lines) {
  const uint8_t now = compute_msr_lines();
  const uint8_t changed = static_cast<uint8_t>(old_lines ^ now);
  if (changed & kMsrCts) m_state.msr_deltas |= kMsrDcts;
  if (changed & kMsrDsr) m_state.msr_deltas |= kMsrDdsr;
  if ((old_lines & kMsrRi) && !(now & kMsrRi)) m_state.msr_deltas |= kMsrTeri;
  if (changed & kMsrDcd) m_state.msr_deltas |= kMsrDdcd;
}

uint8_t Uart16550::compute_iir() const {
  const uint8_t fifo_bits = fifo_enabled() ? kIirFifoEnabled : 0;
  const uint8_t ier = m_state.ier;
  uint8_t id = kIirNone;
  if ((ier & kIerRls) && (m_state.lsr_errors & kLsrErrors)) {
    id = kIirRls;
  } else if ((ier & kIerRda) && m_state.rx_count > 0) {
    // No real character clock: data below the trigger level reports the character timeout
    // at once instead of after four character times. Drivers treat both the same way.
    id = (fifo_enabled() && m_state.rx_count < rx_trigger()) ? kIirTimeout : kIirRda;
  } else if ((ier & kIerThre) && m_state.thr_interrupt) {
    id = kIirThre;
  } else if ((ier & kIerMs) && (m_state.msr_deltas & 0x0f)) {
    id = kIirMs;
  }
  return static_cast<uint8_t>(id | fifo_bits);
}

void Uart16550::update_irq() {
  const bool level = (compute_iir() & kIirNone) == 0;
  if (level != m_irq_level) {
    m_irq_level = level;
    m_irq.set_level(level);
  }
}

void Uart16550::push_rx(uint8_t byte) {
  if (rx_full()) {
    m_state.lsr_errors |= kLsrOe;  // the byte is lost, as on the chip
    return;
  }
  m_state.rx_fifo[m_state.rx_count++] = byte;
}

uint8_t Uart16550::pop_rx() {
  if (m_state.rx_count == 0) return 0;
  const uint8_t byte = m_state.rx_fifo[0];
  std::copy(m_state.rx_fifo.begin() + 1, m_state.rx_fifo.begin() + m_state.rx_count,
            m_state.rx_fifo.begin());
  --m_state.rx_count;
  return byte;
}

bool Uart16550::accepting() const {
  // In loopback the receiver is disconnected from the line (datasheet 8.6).
  const bool listening = (m_state.ier & kIerRda) && (m_state.mcr & kMcrOut2);
  const bool polling = m_lsr_run >= kPollRun;
  return (listening || polling) && !(m_state.mcr & kMcrLoop) && !rx_full();
}

bool Uart16550::room_due_locked() {
  if (!m_rx_refused || !accepting()) return false;
  m_rx_refused = false;
  return true;
}

size_t Uart16550::receive(std::span<const uint8_t> bytes) {
  std::lock_guard lock(m_mutex);
  size_t taken = 0;
  while (taken < bytes.size() && accepting()) push_rx(bytes[taken++]);
  if (taken < bytes.size()) m_rx_refused = true;
  if (taken) update_irq();
  return taken;
}

uint64_t Uart16550::read(uint64_t offset, unsigned size) {
  (void)size;
  const uint64_t mask = (1ull << m_reg_shift) - 1;
  if ((offset & mask) != 0 || (offset >> m_reg_shift) > 7) return 0;
  const auto reg = static_cast<Reg>(offset >> m_reg_shift);
  bool room = false;
  uint8_t value = 0;
  {
    std::lock_guard lock(m_mutex);
    const bool dlab = (m_state.lcr & kLcrDlab) != 0;
    m_lsr_run = reg == Reg::kLsr ? std::min(m_lsr_run + 1, kPollRun) : 0;
    switch (reg) {
      case Reg::kRbrThrDll:
        if (dlab) {
          value = m_state.dll;
        } else {
          value = pop_rx();
        }
        break;
      case Reg::kIerDlm:
        value = dlab ? m_state.dlm : m_state.ier;
        break;
      case Reg::kIirFcr:
        value = compute_iir();
        // Reading IIR while it reports THRE clears that interrupt (datasheet table 4).
        if ((value & 0x0f) == kIirThre) m_state.thr_interrupt = false;
        break;
      case Reg::kLcr:
        value = m_state.lcr;
        break;
      case Reg::kMcr:
        value = m_state.mcr;
        break;
      case Reg::kLsr:
        value = static_cast<uint8_t>(kLsrThre | kLsrTemt | m_state.lsr_errors);
        if (m_state.rx_count > 0) value |= kLsrDr;
        if (fifo_enabled() && (m_state.lsr_errors & kLsrErrors)) value |= kLsrFifoError;
        m_state.lsr_errors = 0;  // error bits clear when LSR is read
        break;
      case Reg::kMsr:
        value = static_cast<uint8_t>(compute_msr_lines() | (m_state.msr_deltas & 0x0f));
        m_state.msr_deltas = 0;
        break;
      case Reg::kScr:
        value = m_state.scr;
        break;
    }
    update_irq();
    room = room_due_locked();
  }
  if (room && m_room_callback) m_room_callback();
  return value;
}

void Uart16550::write(uint64_t offset, unsigned size, uint64_t value64) {
  (void)size;
  const uint64_t mask = (1ull << m_reg_shift) - 1;
  if ((offset & mask) != 0 || (offset >> m_reg_shift) > 7) return;
  const auto reg = static_cast<Reg>(offset >> m_reg_shift);
  const auto value = static_cast<uint8_t>(value64);
  bool room = false;
  {
    std::lock_guard lock(m_mutex);
    const bool dlab = (m_state.lcr & kLcrDlab) != 0;
    m_lsr_run = 0;
    switch (reg) {
      case Reg::kRbrThrDll:
        if (dlab) {
          m_state.dll = value;
          break;
        }
        if (m_state.mcr & kMcrLoop) {
          push_rx(value);
        } else if (m_tx) {
          m_tx(value);
        }
        // The byte left at once: THR is empty again, which raises THRE anew.
        m_state.thr_interrupt = true;
        break;
      case Reg::kIerDlm:
        if (dlab) {
          m_state.dlm = value;
        } else {
          const uint8_t old = m_state.ier;
          m_state.ier = value & 0x0f;
          // Enabling THRE while THR is empty (always, here) interrupts at once.
          if (!(old & kIerThre) && (m_state.ier & kIerThre)) m_state.thr_interrupt = true;
        }
        break;
      case Reg::kIirFcr: {
        // The chip also empties the FIFOs when the enable bit changes (datasheet 8.10).
        // Not here: Linux's 8250 startup disables the FIFO after enabling receive
        // interrupts and set_termios enables it again, so input taken in between would
        // be lost. Drivers that want an empty FIFO set the clear bit, which is honoured.
        if (value & kFcrClearRx) m_state.rx_count = 0;
        // Bits 1-2 are self-clearing; 4-5 reserved.
        m_state.fcr = static_cast<uint8_t>(value & 0xc9);
        break;
      }
      case Reg::kLcr:
        m_state.lcr = value;
        break;
      case Reg::kMcr: {
        const uint8_t old_lines = compute_msr_lines();
        m_state.mcr = value & 0x1f;
        set_msr_lines(old_lines);
        break;
      }
      case Reg::kLsr:
      case Reg::kMsr:
        break;  // read-only (factory test registers on the chip)
      case Reg::kScr:
        m_state.scr = value;
        break;
    }
    update_irq();
    room = room_due_locked();
  }
  if (room && m_room_callback) m_room_callback();
}

Uart16550State Uart16550::save() const {
  std::lock_guard lock(m_mutex);
  return m_state;
}

Result<void> Uart16550::restore(const Uart16550State& state) {
  if (state.version != Uart16550State::kVersion)
    return Error::format("uart16550: state version {} is not supported (expected {})",
                         state.version, Uart16550State::kVersion);
  if (state.rx_count > state.rx_fifo.size())
    return Error::format("uart16550: state has {} bytes in a {}-byte receive FIFO",
                         state.rx_count, state.rx_fifo.size());
  bool room;
  {
    std::lock_guard lock(m_mutex);
    m_state = state;
    m_rx_refused = true;  // the host may hold input for the restored guest
    update_irq();
    room = room_due_locked();
  }
  if (room && m_room_callback) m_room_callback();
  return {};
}

}  // namespace doppel
