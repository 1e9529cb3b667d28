// Zicsr, Zifencei and the privileged instructions (privileged spec 3.3, 4.2.1). Every one of
// them ends its block: a CSR write may change translation or interrupt enables, and the
// run loop checks interrupts between blocks.
#include "engines/emu/riscv64/insn_common.h"

namespace doppel::rv64 {
namespace {

unsigned raw_rd(const DecodedInsn& d) { return (d.raw >> 7) & 31; }
unsigned raw_rs1(const DecodedInsn& d) { return (d.raw >> 15) & 31; }

bool next(Hart& h, const DecodedInsn& d) {
  h.set_pc(h.pc() + d.len);
  return false;
}

// csrrw/csrrwi: no read (and no read side effect) when rd is x0.
bool csr_swap(Hart& h, const DecodedInsn& d, uint64_t value) {
  const auto csr = static_cast<uint16_t>(d.imm);
  uint64_t old = 0;
  if (raw_rd(d) != 0 && !h.csr_read(csr, old)) return h.illegal(d);
  if (!h.csr_write(csr, value)) return h.illegal(d);
  h.xr(d.rd) = old;
  return next(h, d);
}
// csrrs/csrrc(i): no write when the source register/immediate field is 0.
bool csr_modify(Hart& h, const DecodedInsn& d, uint64_t mask, bool set) {
  const auto csr = static_cast<uint16_t>(d.imm);
  uint64_t old = 0;
  if (!h.csr_read(csr, old)) return h.illegal(d);
  const uint64_t base = h.csr_rmw_base(csr, old);
  if (raw_rs1(d) != 0 && !h.csr_write(csr, set ? (base | mask) : (base & ~mask)))
    return h.illegal(d);
  h.xr(d.rd) = old;
  return next(h, d);
}

const InsnSpec kSpecs[] = {
    INSN("ecall", 0xffffffff, 0x00000073, kNone, 0, true, {
      switch (h.priv()) {
        case Priv::kU: return h.take_exception(Exception::kEcallFromU, 0);
        case Priv::kS: return h.take_exception(Exception::kEcallFromS, 0);
        case Priv::kM: break;
      }
      return h.take_exception(Exception::kEcallFromM, 0);
    }),
    INSN("ebreak", 0xffffffff, 0x00100073, kNone, 0, true,
         return h.take_exception(Exception::kBreakpoint, h.pc());),
    INSN("sret", 0xffffffff, 0x10200073, kNone, 0, true, return h.exec_sret(d);),
    INSN("mret", 0xffffffff, 0x30200073, kNone, 0, true, return h.exec_mret(d);),
    INSN("wfi", 0xffffffff, 0x10500073, kNone, 0, true, return h.exec_wfi(d);),
    INSN("sfence.vma", 0xfe007fff, 0x12000073, kSfence, 0, true, return h.exec_sfence_vma(d);),
    INSN("fence.i", kMaskF3, 0x0000100f, kNone, 0, true, return h.exec_fence_i(d);),

    INSN("csrrw", kMaskF3, 0x1073, kCsr, 0, true, return csr_swap(h, d, RS1);),
    INSN("csrrs", kMaskF3, 0x2073, kCsr, 0, true, return csr_modify(h, d, RS1, true);),
    INSN("csrrc", kMaskF3, 0x3073, kCsr, 0, true, return csr_modify(h, d, RS1, false);),
    INSN("csrrwi", kMaskF3, 0x5073, kCsrI, 0, true, return csr_swap(h, d, raw_rs1(d));),
    INSN("csrrsi", kMaskF3, 0x6073, kCsrI, 0, true, return csr_modify(h, d, raw_rs1(d), true);),
    INSN("csrrci", kMaskF3, 0x7073, kCsrI, 0, true, return csr_modify(h, d, raw_rs1(d), false);),
};

}  // namespace

std::span<const InsnSpec> system_specs() { return kSpecs; }

}  // namespace doppel::rv64
