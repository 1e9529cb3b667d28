// The hart under a debugger: a side-effect-free page walk, and a run loop that executes one
// instruction at a time so that breakpoints, watchpoints and single steps stop exactly.
// It is slower than run_engine() (a block lookup per instruction), and only runs while a
// debugger has something set (EmuVcpu::run()).
#include <algorithm>
#include <atomic>

#include "base/bits.h"
#include "engines/emu/riscv64/fpu_host.h"
#include "engines/emu/riscv64/hart.h"

namespace doppel::rv64 {

bool Hart::debug_translate(uint64_t va, uint64_t& pa) const {
  const uint64_t mode = m_satp >> 60;
  if (m_priv == Priv::kM || mode == 0) {
    pa = va;
    return true;
  }
  if (mode != 8 && mode != 9) return false;
  constexpr uint64_t kPpnMask = (1ull << 44) - 1;
  const int levels = mode == 9 ? 4 : 3;
  const unsigned va_bits = 12 + 9 * static_cast<unsigned>(levels);
  if (static_cast<uint64_t>(sign_extend(va, va_bits)) != va) return false;
  uint64_t table = (m_satp & kPpnMask) << 12;
  for (int i = levels - 1; i >= 0; --i) {
    const unsigned shift = 12 + 9 * static_cast<unsigned>(i);
    const uint8_t* p = m_memory.host_ptr(table + ((va >> shift) & 511) * 8, 8);
    if (!p) return false;
    const uint64_t pte =
        std::atomic_ref<const uint64_t>(*reinterpret_cast<const uint64_t*>(p)).load(
            std::memory_order_acquire);
    if (!(pte & 1) || (!(pte & 2) && (pte & 4))) return false;  // V clear, or W without R
    const uint64_t ppn = (pte >> 10) & kPpnMask;
    if (pte & (2 | 8)) {  // R or X: a leaf
      const uint64_t low_mask = (1ull << shift) - 1;
      if (((ppn << 12) & low_mask) != 0) return false;  // misaligned superpage
      pa = (ppn << 12) | (va & low_mask);
      return true;
    }
    table = ppn << 12;
  }
  return false;
}

void Hart::note_watch(uint64_t va, unsigned size, bool write) {
  if (m_watch_hit) return;
  for (const Watchpoint& w : *m_watchpoints) {
    const bool kind_matches = w.kind == WatchKind::kAccess ||
                              (w.kind == WatchKind::kWrite) == write;
    // [va, va + size) and [w.addr, w.addr + w.len) overlap (no overflow: compare as ends).
    if (kind_matches && va < w.addr + w.len && w.addr < va + size) {
      m_watch_hit = true;
      m_watch_addr = std::max(va, w.addr);
      m_watch_write = write;
      return;
    }
  }
}

Hart::DebugRun Hart::run_debug(const DebugControl& control) {
  const fpu::host::DefaultEnvScope fp_env;  // what the F/D handlers' fast path assumes
  DebugRun result;
  if (control.hold) {
    for (;;) {
      const uint64_t seen = m_pins.raw();
      if (seen & InterruptPins::kKickBit) break;
      m_pins.wait_for_change(seen);
    }
    m_pins.take_kick();
    return result;
  }
  m_watchpoints = control.watchpoints.empty() ? nullptr : &control.watchpoints;
  m_watch_hit = false;
  m_irq_hold = control.single_step;
  update_irq_mask();
  const std::span<const uint64_t> breakpoints = control.breakpoints;
  uint64_t steps = 0;
  for (;;) {
    if (m_pins.raw() & InterruptPins::kKickBit) [[unlikely]] {
      m_pins.take_kick();
      result.stop = DebugRun::Stop::kKicked;
      break;
    }
    // A single step runs the instruction at pc even if a breakpoint is there (gdb steps
    // over its breakpoints that way).
    if (!control.single_step &&
        std::find(breakpoints.begin(), breakpoints.end(), m_pc) != breakpoints.end()) {
      result.stop = DebugRun::Stop::kBreakpoint;
      break;
    }
    sync_dirty_generation();
    // An interrupt taken is a step of its own: the next pass checks the handler's first
    // instruction against the breakpoints.
    if (!control.single_step && check_interrupts()) continue;
    m_stopped &= static_cast<uint8_t>(~kWfi);
    m_trap_pending = false;
    run_blocks(1, 0);
    if ((++steps & 0xffff) == 0) publish_stats();
    if (m_watch_hit) {
      result.stop = DebugRun::Stop::kWatch;
      result.addr = m_watch_addr;
      result.kind = m_watch_write ? WatchKind::kWrite : WatchKind::kRead;
      break;
    }
    if (control.single_step) {
      result.stop = DebugRun::Stop::kStep;
      break;
    }
    if (m_stopped & kWfi) {
      for (;;) {  // as run_engine(): until an interrupt is pending in mip & mie, or a kick
        const uint64_t seen = m_pins.raw();
        if (seen & InterruptPins::kKickBit) break;
        if ((((seen & ~InterruptPins::kKickBit) | m_mip) & m_mie) != 0) break;
        m_pins.wait_for_change(seen);
      }
    }
  }
  publish_stats();
  m_watchpoints = nullptr;
  m_watch_hit = false;
  m_irq_hold = false;
  update_irq_mask();
  return result;
}

}  // namespace doppel::rv64
