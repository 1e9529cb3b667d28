// The interpreter loop, decoded-block cache, traps and interrupts (privileged spec 3.1.6,
// 3.1.9, 3.3, 4.1.1).
#include "engines/emu/riscv64/hart.h"

#include <cstdio>
#include <memory>
#include <vector>

#include <fmt/format.h>

#include "engines/emu/riscv64/decode.h"

namespace doppel::rv64 {

namespace {
constexpr unsigned kMaxBlock = 64;
constexpr size_t kBlockSlots = 1u << 14;
constexpr size_t kArenaInsns = 1u << 18;
}  // namespace

// A block: up to kMaxBlock instructions decoded from one physical page, ending at a jump
// or system instruction. Keyed by the guest physical address of its first instruction, so
// a later JIT can hang translated code off the same entries.
struct Hart::Block {
  uint64_t pa = ~0ull;
  uint32_t first = 0;
  uint32_t count = 0;
};

struct Hart::DecodeCache {
  std::vector<Block> slots = std::vector<Block>(kBlockSlots);
  // Default-initialized (not zeroed), so the host commits arena pages only as code is seen.
  std::unique_ptr<DecodedInsn[]> arena{new DecodedInsn[kArenaInsns]};
  size_t used = 0;
  DecodedInsn straddle{};  // an instruction that crosses a page: executed uncached

  void clear() {
    for (auto& b : slots) b.pa = ~0ull;
    used = 0;
  }
};

Hart::Hart(GuestMemory& memory, const Bus& mmio, const Timebase& timebase, unsigned hart_id)
    : m_memory(memory), m_mmio(mmio), m_timebase(timebase), m_hart_id(hart_id),
      m_cache(new DecodeCache), m_slots(m_cache->slots.data()), m_arena(m_cache->arena.get()) {
  m_mstatus = kMstatusUXL & (2ull << 32);
  m_mstatus |= kMstatusSXL & (2ull << 34);
  flush_tlb();
  update_contexts();
}

Hart::~Hart() { delete m_cache; }

void Hart::set_priv(Priv p) {
  m_priv = p;
  update_contexts();
}

void Hart::setup_user_mode() {
  m_satp = 0;
  m_mstatus = (m_mstatus & ~kMstatusFS) | (1ull << 13);
  m_exit_on_trap = true;
  set_priv(Priv::kU);
  flush_tlb();
}

void Hart::flush_decode_cache() {
  m_cache->clear();
  ++m_generation;
}

inline std::span<const DecodedInsn> Hart::fetch_block() {
  const uint64_t va = m_pc;
  const TlbEntry& e = m_tlb[m_fetch_ctx][kTlbFetch][(va >> 12) & (kTlbSize - 1)];
  if (e.tag == (va >> 12)) [[likely]] {
    const uint64_t pa = e.pa_page | (va & 0xfff);
    const Block& b = m_slots[(pa >> 1) & (kBlockSlots - 1)];
    if (b.pa == pa) [[likely]]
      return {m_arena + b.first, b.count};
    return fetch_block_slow(pa, reinterpret_cast<const uint8_t*>((va & ~0xfffull) + e.addend));
  }
  uint64_t pa;
  if (auto ex = translate(va, Access::kFetch, m_priv, false, pa)) {
    take_exception(*ex, va);
    return {};
  }
  uint8_t* host = m_memory.host_ptr(pa & ~0xfffull, 0x1000);
  if (!host) {
    take_exception(Exception::kInsnAccessFault, va);
    return {};
  }
  tlb_fill(m_fetch_ctx, kTlbFetch, va, pa, host);
  const Block& b = m_slots[(pa >> 1) & (kBlockSlots - 1)];
  if (b.pa == pa) return {m_arena + b.first, b.count};
  return fetch_block_slow(pa, host);
}

std::span<const DecodedInsn> Hart::fetch_block_slow(uint64_t pa, const uint8_t* page) {
  const uint64_t va = m_pc;
  DecodeCache& c = *m_cache;
  unsigned off = static_cast<unsigned>(va & 0xfff);
  const uint16_t lo = load_le<uint16_t>(page + off);
  if ((lo & 3) == 3 && off == 0xffe) {
    // A 32-bit instruction across a page boundary: fetch the upper half separately.
    const uint64_t va2 = va + 2;
    uint64_t pa2;
    if (auto ex = translate(va2, Access::kFetch, m_priv, false, pa2)) {
      take_exception(*ex, va2);
      return {};
    }
    const auto hi = m_memory.read_le<uint16_t>(pa2);
    if (!hi) {
      take_exception(Exception::kInsnAccessFault, va2);
      return {};
    }
    c.straddle = decode(static_cast<uint32_t>(lo) | (static_cast<uint32_t>(*hi) << 16));
    return {&c.straddle, 1};
  }

  if (c.used + kMaxBlock > kArenaInsns) c.clear();
  const size_t first = c.used;
  unsigned count = 0;
  while (count < kMaxBlock && off <= 0xffe) {
    uint32_t raw = load_le<uint16_t>(page + off);
    if ((raw & 3) == 3) {
      if (off > 0xffc) break;  // straddles: the next block handles it
      raw = load_le<uint32_t>(page + off);
    }
    const DecodedInsn d = decode(raw);
    c.arena[first + count++] = d;
    off += d.len;
    if (ends_block(d)) break;
  }
  c.used += count;
  Block& slot = c.slots[(pa >> 1) & (kBlockSlots - 1)];
  slot = Block{pa, static_cast<uint32_t>(first), count};
  return {c.arena.get() + first, count};
}

uint64_t Hart::run_blocks(uint64_t budget, uint64_t stop_bits) {
  uint64_t used = 0;
  m_excepted = false;
  while (used < budget) {
    const uint64_t raw = m_pins.raw();
    if ((((raw | m_mip) & m_irq_takeable) | (raw & stop_bits)) != 0) [[unlikely]]
      break;
    const std::span<const DecodedInsn> insns = fetch_block();
    if (insns.empty()) [[unlikely]] {
      // The fetch raised an exception. It uses budget too, so a trap storm cannot spin
      // forever.
      ++used;
      m_excepted = false;
      if (m_trap_pending) break;
      continue;
    }
    const uint64_t block_pc = m_pc;
    const uint64_t generation = m_generation;
    for (;;) {
      const uint64_t n = insns.size() < budget - used ? insns.size() : budget - used;
      // m_instret counts retired instructions as they go, so a CSR read of instret sees
      // the count before itself; an instruction that raised an exception did not retire.
      uint64_t i = 0;
      bool stopped = false;
      if (m_trace) [[unlikely]] {
        while (i < n) {
          const DecodedInsn& d = insns[i++];
          trace(d);
          if (!d.handler(*this, d)) {
            stopped = true;
            break;
          }
          m_pc += d.len;
          ++m_instret;
        }
      } else {
        while (i < n) {
          const DecodedInsn& d = insns[i++];
          if (!d.handler(*this, d)) {
            stopped = true;
            break;
          }
          m_pc += d.len;
          ++m_instret;
        }
      }
      used += i;
      if (!stopped) break;
      if (m_excepted) {
        m_excepted = false;
        if (m_trap_pending) return used;
        break;
      }
      ++m_instret;
      if (m_wfi) return used;
      // A loop that jumps back to its own start runs again without a lookup, unless
      // translation or the decode cache changed, or an interrupt needs attention.
      if (m_pc != block_pc || m_generation != generation || used >= budget) break;
      const uint64_t now = m_pins.raw();
      if ((((now | m_mip) & m_irq_takeable) | (now & stop_bits)) != 0) break;
    }
  }
  return used;
}

StepResult Hart::step(uint64_t max_instructions) {
  StepResult r;
  m_trap_pending = false;
  while (r.executed < max_instructions) {
    check_interrupts();
    m_wfi = false;
    const uint64_t before = m_instret;
    const uint64_t used = run_blocks(max_instructions - r.executed, 0);
    if (m_exit_on_trap) {
      r.executed += m_instret - before;  // exact: only retired instructions
      if (m_trap_pending) {
        m_trap_pending = false;
        r.kind = StepResult::Kind::kTrap;
        r.trap = m_trap;
        return r;
      }
      if (m_wfi) {
        r.kind = StepResult::Kind::kWfi;
        return r;
      }
      if (used == 0) break;  // cannot happen: nothing was takeable and no exception
    } else {
      r.executed += used == 0 ? 1 : used;
    }
  }
  r.kind = StepResult::Kind::kBudget;
  return r;
}

EngineExit Hart::run_engine() {
  for (;;) {
    const uint64_t raw = m_pins.raw();
    if (raw & InterruptPins::kKickBit) [[unlikely]] {
      m_pins.take_kick();
      return EngineExit::kKicked;
    }
    check_interrupts();
    m_wfi = false;
    m_trap_pending = false;
    run_blocks(1u << 20, InterruptPins::kKickBit);
    if (m_trap_pending) [[unlikely]] {
      m_crash_detail = fmt::format("hart {}: trap with exit_on_trap set in engine mode", m_hart_id);
      return EngineExit::kCrash;
    }
    if (m_wfi) {
      // Sleep until an interrupt is pending in mip & mie (whatever the global enables) or
      // someone kicks us. Only pins() can change while we sleep.
      for (;;) {
        const uint64_t seen = m_pins.raw();
        if (seen & InterruptPins::kKickBit) break;
        if ((((seen & ~InterruptPins::kKickBit) | m_mip) & m_mie) != 0) break;
        m_pins.wait_for_change(seen);
      }
    }
  }
}

void Hart::update_irq_mask() {
  const bool m_enabled = m_priv != Priv::kM || (m_mstatus & kMstatusMIE);
  const bool s_enabled =
      m_priv == Priv::kU || (m_priv == Priv::kS && (m_mstatus & kMstatusSIE));
  m_irq_takeable = (m_enabled ? (m_mie & ~m_mideleg) : 0) | (s_enabled ? (m_mie & m_mideleg) : 0);
}

bool Hart::check_interrupts() {
  const uint64_t take = mip() & m_irq_takeable;
  if (take == 0) return false;
  // M-level interrupts outrank S-level ones; within a level, privileged spec 3.1.9's
  // order: MEI, MSI, MTI, SEI, SSI, STI.
  const uint64_t m_level = take & ~m_mideleg;
  const uint64_t pick = m_level ? m_level : take;
  static constexpr unsigned kOrder[] = {11, 3, 7, 9, 1, 5};
  for (unsigned cause : kOrder) {
    if (pick & (1ull << cause)) {
      enter_trap(kInterruptBit | cause, 0);
      return true;
    }
  }
  return false;
}

void Hart::enter_trap(uint64_t cause, uint64_t tval) {
  const bool interrupt = (cause & kInterruptBit) != 0;
  const uint64_t code = cause & ~kInterruptBit;
  const uint64_t deleg = interrupt ? m_mideleg : m_medeleg;
  const uint64_t prev = static_cast<uint64_t>(m_priv);
  if (m_trace_traps) [[unlikely]]
    fmt::print(stderr, "hart{} trap: cause {:#x} tval {:#x} epc {:#x} from priv {}\n", m_hart_id,
               cause, tval, m_pc, prev);
  if (m_priv != Priv::kM && code < 64 && ((deleg >> code) & 1)) {
    m_scause = cause;
    m_sepc = m_pc;
    m_stval = tval;
    uint64_t s = m_mstatus & ~(kMstatusSPIE | kMstatusSIE | kMstatusSPP);
    if (m_mstatus & kMstatusSIE) s |= kMstatusSPIE;
    if (prev == 1) s |= kMstatusSPP;
    m_mstatus = s;
    m_priv = Priv::kS;
    m_pc = (m_stvec & ~3ull) + ((interrupt && (m_stvec & 3) == 1) ? 4 * code : 0);
  } else {
    m_mcause = cause;
    m_mepc = m_pc;
    m_mtval = tval;
    uint64_t s = m_mstatus & ~(kMstatusMPIE | kMstatusMIE | kMstatusMPP);
    if (m_mstatus & kMstatusMIE) s |= kMstatusMPIE;
    s |= prev << 11;
    m_mstatus = s;
    m_priv = Priv::kM;
    m_pc = (m_mtvec & ~3ull) + ((interrupt && (m_mtvec & 3) == 1) ? 4 * code : 0);
  }
  update_contexts();
}

bool Hart::take_exception(Exception cause, uint64_t tval) {
  m_excepted = true;
  if (m_exit_on_trap) {
    m_trap = Trap{static_cast<uint64_t>(cause), tval, m_pc};
    m_trap_pending = true;
    return false;
  }
  enter_trap(static_cast<uint64_t>(cause), tval);
  return false;
}

bool Hart::illegal(const DecodedInsn& d) {
  return take_exception(Exception::kIllegalInsn, d.len == 2 ? d.raw16 : d.raw);
}

bool Hart::exec_mret(const DecodedInsn& d) {
  if (m_priv != Priv::kM) return illegal(d);
  const auto mpp = static_cast<Priv>((m_mstatus & kMstatusMPP) >> 11);
  uint64_t s = m_mstatus & ~(kMstatusMIE | kMstatusMPP);
  if (m_mstatus & kMstatusMPIE) s |= kMstatusMIE;
  s |= kMstatusMPIE;
  if (mpp != Priv::kM) s &= ~kMstatusMPRV;
  m_mstatus = s;
  m_priv = mpp;
  m_pc = m_mepc;
  update_contexts();
  return false;
}

bool Hart::exec_sret(const DecodedInsn& d) {
  if (m_priv == Priv::kU || (m_priv == Priv::kS && (m_mstatus & kMstatusTSR))) return illegal(d);
  const bool spp = (m_mstatus & kMstatusSPP) != 0;
  uint64_t s = m_mstatus & ~(kMstatusSIE | kMstatusSPP | kMstatusMPRV);
  if (m_mstatus & kMstatusSPIE) s |= kMstatusSIE;
  s |= kMstatusSPIE;
  m_mstatus = s;
  m_priv = spp ? Priv::kS : Priv::kU;
  m_pc = m_sepc;
  update_contexts();
  return false;
}

bool Hart::exec_wfi(const DecodedInsn& d) {
  // U-mode WFI would not complete in bounded time here, so it is illegal (spec 3.3.3).
  if (m_priv == Priv::kU || (m_priv == Priv::kS && (m_mstatus & kMstatusTW))) return illegal(d);
  m_pc += d.len;
  if ((mip() & m_mie) == 0) m_wfi = true;
  return false;
}

bool Hart::exec_sfence_vma(const DecodedInsn& d) {
  if (m_priv == Priv::kU || (m_priv == Priv::kS && (m_mstatus & kMstatusTVM))) return illegal(d);
  m_pc += d.len;
  if (((d.raw >> 15) & 31) != 0) {
    // One address: the TLB holds 4 KiB entries, so only that page's entries can be stale.
    const uint64_t vpn = m_x[d.rs1] >> 12;
    ++m_generation;
    for (auto& ctx : m_tlb)
      for (auto& type : ctx) {
        TlbEntry& e = type[vpn & (kTlbSize - 1)];
        if (e.tag == vpn) e.tag = ~0ull;
      }
  } else {
    flush_tlb();
  }
  return false;
}

bool Hart::exec_fence_i(const DecodedInsn& d) {
  m_pc += d.len;  // before the flush: `d` lives in the cache (which the flush only marks)
  flush_decode_cache();
  return false;
}

void Hart::trace(const DecodedInsn& d) const {
  static constexpr char kPriv[] = {'U', 'S', '?', 'M'};
  fmt::print(stderr, "hart{} {} {:016x}: {}\n", m_hart_id, kPriv[static_cast<unsigned>(m_priv)],
             m_pc, disassemble(d, m_pc));
}

HartState Hart::save() const {
  HartState s;
  s.pc = m_pc;
  for (unsigned i = 0; i < 32; ++i) {
    s.x[i] = i == 0 ? 0 : m_x[i];
    s.f[i] = m_f[i];
  }
  s.priv = static_cast<uint8_t>(m_priv);
  s.frm = m_frm;
  s.fflags = m_fflags;
  s.mstatus = m_mstatus;
  s.medeleg = m_medeleg;
  s.mideleg = m_mideleg;
  s.mie = m_mie;
  s.mip = m_mip;
  s.mtvec = m_mtvec;
  s.mscratch = m_mscratch;
  s.mepc = m_mepc;
  s.mcause = m_mcause;
  s.mtval = m_mtval;
  s.mcounteren = m_mcounteren;
  s.menvcfg = m_menvcfg;
  s.mcountinhibit = m_mcountinhibit;
  s.stvec = m_stvec;
  s.sscratch = m_sscratch;
  s.sepc = m_sepc;
  s.scause = m_scause;
  s.stval = m_stval;
  s.scounteren = m_scounteren;
  s.senvcfg = m_senvcfg;
  s.satp = m_satp;
  s.instret = m_instret;
  s.pmpcfg = m_pmpcfg;
  s.pmpaddr = m_pmpaddr;
  return s;
}

Result<void> Hart::restore(const HartState& s) {
  if (s.version != HartState::kVersion)
    return Error::format("hart {}: state version {} unknown (expected {})", m_hart_id, s.version,
                         HartState::kVersion);
  if (s.priv != 0 && s.priv != 1 && s.priv != 3)
    return Error::format("hart {}: invalid privilege level {} in saved state", m_hart_id, s.priv);
  m_pc = s.pc;
  for (unsigned i = 0; i < 32; ++i) {
    m_x[i] = i == 0 ? 0 : s.x[i];
    m_f[i] = s.f[i];
  }
  m_priv = static_cast<Priv>(s.priv);
  m_frm = s.frm;
  m_fflags = s.fflags;
  m_mstatus = s.mstatus;
  m_medeleg = s.medeleg;
  m_mideleg = s.mideleg;
  m_mie = s.mie;
  m_mip = s.mip;
  m_mtvec = s.mtvec;
  m_mscratch = s.mscratch;
  m_mepc = s.mepc;
  m_mcause = s.mcause;
  m_mtval = s.mtval;
  m_mcounteren = s.mcounteren;
  m_menvcfg = s.menvcfg;
  m_mcountinhibit = s.mcountinhibit;
  m_stvec = s.stvec;
  m_sscratch = s.sscratch;
  m_sepc = s.sepc;
  m_scause = s.scause;
  m_stval = s.stval;
  m_scounteren = s.scounteren;
  m_senvcfg = s.senvcfg;
  m_satp = s.satp;
  m_instret = s.instret;
  m_pmpcfg = s.pmpcfg;
  m_pmpaddr = s.pmpaddr;
  m_lr_addr = ~0ull;
  flush_tlb();
  flush_decode_cache();
  update_contexts();
  return {};
}

}  // namespace doppel::rv64
