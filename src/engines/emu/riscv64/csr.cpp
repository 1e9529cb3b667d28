// Control and status registers (privileged spec chapters 2, 3.1, 4.1; unprivileged Zicsr,
// Zicntr). WARL fields keep only legal values.
#include "engines/emu/riscv64/hart.h"

namespace doppel::rv64 {

namespace {

enum Csr : uint16_t {
  kFflags = 0x001, kFrm = 0x002, kFcsr = 0x003,
  kSstatus = 0x100, kSie = 0x104, kStvec = 0x105, kScounteren = 0x106, kSenvcfg = 0x10a,
  kSscratch = 0x140, kSepc = 0x141, kScause = 0x142, kStval = 0x143, kSip = 0x144,
  kSatp = 0x180,
  kMstatus = 0x300, kMisa = 0x301, kMedeleg = 0x302, kMideleg = 0x303, kMie = 0x304,
  kMtvec = 0x305, kMcounteren = 0x306, kMenvcfg = 0x30a, kMcountinhibit = 0x320,
  kMscratch = 0x340, kMepc = 0x341, kMcause = 0x342, kMtval = 0x343, kMip = 0x344,
  kPmpcfg0 = 0x3a0, kPmpaddr0 = 0x3b0,
  kMcycle = 0xb00, kMinstret = 0xb02,
  kCycle = 0xc00, kTime = 0xc01, kInstret = 0xc02,
  kMvendorid = 0xf11, kMarchid = 0xf12, kMimpid = 0xf13, kMhartid = 0xf14, kMconfigptr = 0xf15,
};

// RV64 with I M A F D C S U.
constexpr uint64_t kMisaValue = (2ull << 62) | (1u << 0) | (1u << 2) | (1u << 3) | (1u << 5) |
                                (1u << 8) | (1u << 12) | (1u << 18) | (1u << 20);

constexpr uint64_t kSstatusMask = Hart::kMstatusSIE | Hart::kMstatusSPIE | Hart::kMstatusSPP |
                                  Hart::kMstatusFS | Hart::kMstatusSUM | Hart::kMstatusMXR |
                                  Hart::kMstatusUXL | Hart::kMstatusSD;
constexpr uint64_t kSstatusWritable = Hart::kMstatusSIE | Hart::kMstatusSPIE |
                                      Hart::kMstatusSPP | Hart::kMstatusFS |
                                      Hart::kMstatusSUM | Hart::kMstatusMXR;
constexpr uint64_t kMstatusWritable =
    kSstatusWritable | Hart::kMstatusMIE | Hart::kMstatusMPIE | Hart::kMstatusMPP |
    Hart::kMstatusMPRV | Hart::kMstatusTVM | Hart::kMstatusTW | Hart::kMstatusTSR;

constexpr uint64_t kSupervisorInts = kMipSSIP | kMipSTIP | kMipSEIP;
constexpr uint64_t kAllInts = kSupervisorInts | kMipMSIP | kMipMTIP | kMipMEIP;
// Exceptions that may be delegated: all but ecall from M (11) and the reserved ones.
constexpr uint64_t kDelegableExceptions = 0xb3ff;

constexpr uint64_t kPmpAddrMask = (1ull << 54) - 1;

uint64_t warl_tvec(uint64_t v) { return (v & 3) >= 2 ? (v & ~3ull) : v; }

}  // namespace

uint64_t Hart::mstatus_value() const {
  uint64_t s = m_mstatus;
  if ((s & kMstatusFS) == kMstatusFS) s |= kMstatusSD;
  else s &= ~kMstatusSD;
  return s;
}

void Hart::write_mstatus(uint64_t value, uint64_t writable) {
  uint64_t s = (m_mstatus & ~writable) | (value & writable);
  if (((s & kMstatusMPP) >> 11) == 2) s = (s & ~kMstatusMPP) | (m_mstatus & kMstatusMPP);
  s &= ~kMstatusSD;
  if ((s ^ m_mstatus) & kMstatusMXR) flush_tlb();
  m_mstatus = s;
  update_contexts();
}

bool Hart::counter_allowed(uint16_t csr) const {
  const unsigned bitno = csr & 31;
  if (m_priv != Priv::kM && !((m_mcounteren >> bitno) & 1)) return false;
  if (m_priv == Priv::kU && !((m_scounteren >> bitno) & 1)) return false;
  return true;
}

bool Hart::csr_get(uint16_t csr, uint64_t& v) {
  switch (csr) {
    case kFflags: v = m_fflags; return true;
    case kFrm: v = m_frm; return true;
    case kFcsr: v = (static_cast<uint64_t>(m_frm) << 5) | m_fflags; return true;

    case kSstatus: v = mstatus_value() & kSstatusMask; return true;
    case kSie: v = m_mie & m_mideleg; return true;
    case kStvec: v = m_stvec; return true;
    case kScounteren: v = m_scounteren; return true;
    case kSenvcfg: v = m_senvcfg; return true;
    case kSscratch: v = m_sscratch; return true;
    case kSepc: v = m_sepc; return true;
    case kScause: v = m_scause; return true;
    case kStval: v = m_stval; return true;
    case kSip: v = mip() & m_mideleg; return true;
    case kSatp: v = m_satp; return true;

    case kMstatus: v = mstatus_value(); return true;
    case kMisa: v = kMisaValue; return true;
    case kMedeleg: v = m_medeleg; return true;
    case kMideleg: v = m_mideleg; return true;
    case kMie: v = m_mie; return true;
    case kMtvec: v = m_mtvec; return true;
    case kMcounteren: v = m_mcounteren; return true;
    case kMenvcfg: v = m_menvcfg; return true;
    case kMcountinhibit: v = m_mcountinhibit; return true;
    case kMscratch: v = m_mscratch; return true;
    case kMepc: v = m_mepc; return true;
    case kMcause: v = m_mcause; return true;
    case kMtval: v = m_mtval; return true;
    case kMip: v = mip(); return true;

    case kMcycle:
    case kCycle: v = m_instret + static_cast<uint64_t>(m_cycle_offset); return true;
    case kMinstret:
    case kInstret: v = m_instret + static_cast<uint64_t>(m_instret_offset); return true;
    case kTime: v = m_timebase.now(); return true;

    case kMvendorid:
    case kMarchid:
    case kMimpid:
    case kMconfigptr: v = 0; return true;
    case kMhartid: v = m_hart_id; return true;
    default: break;
  }
  if (csr >= kPmpcfg0 && csr < kPmpcfg0 + 16) {
    if (csr & 1) return false;  // RV64 has only the even pmpcfg registers
    const unsigned n = (csr - kPmpcfg0) / 2;  // pmpcfg0 -> entries 0..7, pmpcfg2 -> 8..15
    v = 0;
    if (n < 2)
      for (unsigned i = 0; i < 8; ++i) v |= static_cast<uint64_t>(m_pmpcfg[n * 8 + i]) << (8 * i);
    return true;
  }
  if (csr >= kPmpaddr0 && csr < kPmpaddr0 + 64) {
    const unsigned n = csr - kPmpaddr0;
    v = n < 16 ? m_pmpaddr[n] : 0;
    return true;
  }
  // hpmcounter3..31, mhpmcounter3..31, mhpmevent3..31: present, hardwired to zero.
  if ((csr >= 0xc03 && csr <= 0xc1f) || (csr >= 0xb03 && csr <= 0xb1f) ||
      (csr >= 0x323 && csr <= 0x33f)) {
    v = 0;
    return true;
  }
  return false;
}

bool Hart::csr_set(uint16_t csr, uint64_t v) {
  switch (csr) {
    case kFflags: m_fflags = static_cast<uint8_t>(v & 31); fp_dirty(); return true;
    case kFrm: m_frm = static_cast<uint8_t>(v & 7); fp_dirty(); return true;
    case kFcsr:
      m_fflags = static_cast<uint8_t>(v & 31);
      m_frm = static_cast<uint8_t>((v >> 5) & 7);
      fp_dirty();
      return true;

    case kSstatus: write_mstatus(v, kSstatusWritable); return true;
    case kSie: m_mie = (m_mie & ~m_mideleg) | (v & m_mideleg); update_irq_mask(); return true;
    case kStvec: m_stvec = warl_tvec(v); return true;
    case kScounteren: m_scounteren = v & 0xffffffffull; return true;
    case kSenvcfg: return true;  // no optional features: all fields read zero
    case kSscratch: m_sscratch = v; return true;
    case kSepc: m_sepc = v & ~1ull; return true;
    case kScause: m_scause = v; return true;
    case kStval: m_stval = v; return true;
    case kSip: {
      const uint64_t w = kMipSSIP & m_mideleg;
      m_mip = (m_mip & ~w) | (v & w);
      update_irq_mask();
      return true;
    }
    case kSatp: {
      const uint64_t mode = v >> 60;
      if (mode != 0 && mode != 8 && mode != 9) return true;  // unsupported MODE: no change
      m_satp = mode == 0 ? 0 : v & ((0xfull << 60) | (0xffffull << 44) | ((1ull << 44) - 1));
      flush_tlb();
      return true;
    }

    case kMstatus: write_mstatus(v, kMstatusWritable); return true;
    case kMisa: return true;  // not writable (WARL)
    case kMedeleg: m_medeleg = v & kDelegableExceptions; return true;
    case kMideleg: m_mideleg = v & kSupervisorInts; update_irq_mask(); return true;
    case kMie: m_mie = v & kAllInts; update_irq_mask(); return true;
    case kMtvec: m_mtvec = warl_tvec(v); return true;
    case kMcounteren: m_mcounteren = v & 0xffffffffull; return true;
    case kMenvcfg: return true;
    case kMcountinhibit: m_mcountinhibit = v & 0xfffffffdull; return true;
    case kMscratch: m_mscratch = v; return true;
    case kMepc: m_mepc = v & ~1ull; return true;
    case kMcause: m_mcause = v; return true;
    case kMtval: m_mtval = v; return true;
    case kMip:
      m_mip = (m_mip & ~kSupervisorInts) | (v & kSupervisorInts);
      update_irq_mask();
      return true;

    case kMcycle: m_cycle_offset = static_cast<int64_t>(v - m_instret); return true;
    case kMinstret: m_instret_offset = static_cast<int64_t>(v - m_instret); return true;
    default: break;
  }
  if (csr >= kPmpcfg0 && csr < kPmpcfg0 + 16) {
    if (csr & 1) return false;
    const unsigned n = (csr - kPmpcfg0) / 2;
    if (n >= 2) return true;
    for (unsigned i = 0; i < 8; ++i) {
      uint8_t& cfg = m_pmpcfg[n * 8 + i];
      if (cfg & 0x80) continue;  // locked
      auto nc = static_cast<uint8_t>((v >> (8 * i)) & 0x9f);
      if ((nc & 3) == 2) nc = static_cast<uint8_t>(nc & ~2);  // R=0 W=1 is reserved
      cfg = nc;
    }
    return true;
  }
  if (csr >= kPmpaddr0 && csr < kPmpaddr0 + 64) {
    const unsigned n = csr - kPmpaddr0;
    if (n < 16 && !(m_pmpcfg[n] & 0x80)) m_pmpaddr[n] = v & kPmpAddrMask;
    return true;
  }
  if ((csr >= 0xb03 && csr <= 0xb1f) || (csr >= 0x323 && csr <= 0x33f)) return true;
  return false;
}

bool Hart::csr_read(uint16_t csr, uint64_t& value) {
  if (static_cast<unsigned>(m_priv) < ((csr >> 8) & 3u)) return false;
  if (csr <= kFcsr && !fp_enabled()) return false;
  if (csr == kSatp && m_priv == Priv::kS && (m_mstatus & kMstatusTVM)) return false;
  if (csr >= kCycle && csr <= 0xc1f && !counter_allowed(csr)) return false;
  return csr_get(csr, value);
}

bool Hart::csr_write(uint16_t csr, uint64_t value) {
  if ((csr >> 10) == 3) return false;  // read-only space
  if (static_cast<unsigned>(m_priv) < ((csr >> 8) & 3u)) return false;
  if (csr <= kFcsr && !fp_enabled()) return false;
  if (csr == kSatp && m_priv == Priv::kS && (m_mstatus & kMstatusTVM)) return false;
  return csr_set(csr, value);
}

std::optional<uint64_t> Hart::read_csr(uint16_t csr) {
  uint64_t v;
  if (!csr_get(csr, v)) return std::nullopt;
  return v;
}

bool Hart::write_csr(uint16_t csr, uint64_t value) { return csr_set(csr, value); }

}  // namespace doppel::rv64
