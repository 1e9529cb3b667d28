// KvmVcpu under a debugger: gdb's amd64 register set from KVM_GET_REGS/SREGS/FPU, the
// debug registers through KVM_SET_GUEST_DEBUG (x86 has four: breakpoints and watchpoints
// share them, as with QEMU's hbreak/watch on KVM), single steps with interrupts blocked
// (KVM_GUESTDBG_BLOCKIRQ where the kernel has it), and KVM_TRANSLATE for addresses.
#include <sys/ioctl.h>

#include <cstring>

#include <fmt/format.h>

#include "base/log.h"
#include "engines/kvm/kvm_vcpu.h"
#include "engines/kvm/x86_debug_regs.h"

namespace doppel::kvm {

const DebugArch* KvmVcpu::debug_arch() const { return &x86_64_debug_arch(); }

Result<std::vector<uint8_t>> KvmVcpu::debug_read_registers() {
  kvm_regs r{};
  kvm_sregs s{};
  kvm_fpu f{};
  if (ioctl(m_fd.get(), KVM_GET_REGS, &r) < 0) return Error::from_errno("KVM_GET_REGS");
  if (ioctl(m_fd.get(), KVM_GET_SREGS, &s) < 0) return Error::from_errno("KVM_GET_SREGS");
  if (ioctl(m_fd.get(), KVM_GET_FPU, &f) < 0) return Error::from_errno("KVM_GET_FPU");
  return x86_64_encode_registers(r, s, f);
}

Result<void> KvmVcpu::debug_write_register(unsigned index, std::span<const uint8_t> value) {
  kvm_regs r{};
  kvm_sregs s{};
  kvm_fpu f{};
  if (ioctl(m_fd.get(), KVM_GET_REGS, &r) < 0) return Error::from_errno("KVM_GET_REGS");
  if (ioctl(m_fd.get(), KVM_GET_SREGS, &s) < 0) return Error::from_errno("KVM_GET_SREGS");
  if (ioctl(m_fd.get(), KVM_GET_FPU, &f) < 0) return Error::from_errno("KVM_GET_FPU");
  TRY(x86_64_apply_register(index, value, r, s, f));
  if (index <= kX86Eflags && ioctl(m_fd.get(), KVM_SET_REGS, &r) < 0)
    return Error::from_errno("KVM_SET_REGS");
  return ok();
}

Result<uint64_t> KvmVcpu::debug_translate(uint64_t va) {
  kvm_translation t{};
  t.linear_address = va;
  if (ioctl(m_fd.get(), KVM_TRANSLATE, &t) < 0) return Error::from_errno("KVM_TRANSLATE");
  if (!t.valid) return Error::format("{:#x}: not mapped by vCPU {}'s page tables", va, m_index);
  return t.physical_address;
}

Result<void> KvmVcpu::set_debug(const DebugControl& control) {
  kvm_guest_debug dbg{};
  X86DebugRegs drs;
  m_debug_hold = control.hold;
  if (control.active() && !control.hold) {
    drs = TRY(x86_plan_debug_registers(control.breakpoints, control.watchpoints));
    dbg.control = KVM_GUESTDBG_ENABLE;
    if (!drs.slots.empty()) {
      dbg.control |= KVM_GUESTDBG_USE_HW_BP;
      for (unsigned i = 0; i < 4; ++i) dbg.arch.debugreg[i] = drs.dr[i];
      dbg.arch.debugreg[7] = drs.dr7;
    }
    // int3 planted by the debugger exits to us (KVM_EXIT_DEBUG, #BP) instead of reaching
    // the guest's IDT.
    if (control.software_breakpoints) dbg.control |= KVM_GUESTDBG_USE_SW_BP;
    if (control.single_step) dbg.control |= KVM_GUESTDBG_SINGLESTEP | KVM_GUESTDBG_BLOCKIRQ;
  }
  if (ioctl(m_fd.get(), KVM_SET_GUEST_DEBUG, &dbg) < 0) {
    // Kernels before 5.16 do not know BLOCKIRQ: a step may then enter an interrupt handler.
    if (errno != EINVAL || !(dbg.control & KVM_GUESTDBG_BLOCKIRQ))
      return Error::from_errno(fmt::format(
          "vCPU {}: KVM_SET_GUEST_DEBUG (control {:#x}; KVM_CAP_SET_GUEST_DEBUG missing?)",
          m_index, dbg.control));
    dbg.control &= ~static_cast<uint32_t>(KVM_GUESTDBG_BLOCKIRQ);
    if (ioctl(m_fd.get(), KVM_SET_GUEST_DEBUG, &dbg) < 0)
      return Error::from_errno(fmt::format("vCPU {}: KVM_SET_GUEST_DEBUG (control {:#x})",
                                           m_index, dbg.control));
  }
  spdlog::debug("vCPU {}: guest debug control {:#x} dr0 {:#x} dr7 {:#x}", m_index, dbg.control,
                dbg.arch.debugreg[0], dbg.arch.debugreg[7]);
  m_debug_slots = std::move(drs.slots);
  return ok();
}

VcpuExit KvmVcpu::debug_exit() {
  const auto& d = m_run->debug.arch;
  spdlog::debug("vCPU {}: debug exit: exception {} pc {:#x} dr6 {:#x} dr7 {:#x}", m_index,
                d.exception, d.pc, d.dr6, d.dr7);
  VcpuExit exit;
  exit.reason = VcpuExit::Reason::kDebug;
  exit.debug = DebugStopKind::kBreakpoint;
  exit.addr = d.pc;  // a breakpoint's address: the session tells Z0 from Z1 by it
  if (d.exception == 1) {  // #DB: DR6 says why (B0-B3: a debug register, BS: a single step)
    for (unsigned i = 0; i < 4 && i < m_debug_slots.size(); ++i) {
      if (!(d.dr6 & (1ull << i))) continue;
      const X86DebugSlot& slot = m_debug_slots[i];
      if (slot.watch) {
        exit.addr = slot.addr;
        exit.debug = slot.kind == WatchKind::kAccess ? DebugStopKind::kWatchAccess
                                                     : DebugStopKind::kWatchWrite;
      }
      return exit;
    }
    if (d.dr6 & (1ull << 14)) exit.debug = DebugStopKind::kStep;
  }
  return exit;
}

VcpuExit KvmVcpu::wait_for_kick() {
  for (;;) {
    const uint32_t seen = m_kicks.load(std::memory_order_acquire);
    auto immediate = std::atomic_ref<uint8_t>(m_run->immediate_exit);
    if (immediate.load(std::memory_order_acquire)) {
      immediate.store(0, std::memory_order_relaxed);
      VcpuExit exit;
      exit.reason = VcpuExit::Reason::kKicked;
      return exit;
    }
    m_kicks.wait(seen, std::memory_order_acquire);
  }
}

std::string KvmVcpu::debug_describe() {
  kvm_regs r{};
  kvm_sregs s{};
  if (ioctl(m_fd.get(), KVM_GET_REGS, &r) < 0 || ioctl(m_fd.get(), KVM_GET_SREGS, &s) < 0)
    return fmt::format("vCPU {}: cannot read its registers\n", m_index);
  std::string out = fmt::format(
      "vCPU {}  rip {:016x}  rflags {:08x}\n"
      "rax {:016x} rbx {:016x} rcx {:016x} rdx {:016x}\n"
      "rsi {:016x} rdi {:016x} rbp {:016x} rsp {:016x}\n"
      "r8  {:016x} r9  {:016x} r10 {:016x} r11 {:016x}\n"
      "r12 {:016x} r13 {:016x} r14 {:016x} r15 {:016x}\n",
      m_index, r.rip, r.rflags, r.rax, r.rbx, r.rcx, r.rdx, r.rsi, r.rdi, r.rbp, r.rsp, r.r8, r.r9,
      r.r10, r.r11, r.r12, r.r13, r.r14, r.r15);
  const std::pair<const char*, const kvm_segment*> segs[] = {
      {"cs", &s.cs}, {"ss", &s.ss}, {"ds", &s.ds}, {"es", &s.es},
      {"fs", &s.fs}, {"gs", &s.gs}, {"tr", &s.tr}, {"ldt", &s.ldt}};
  for (const auto& [name, seg] : segs)
    out += fmt::format("{:<3} {:04x} base {:016x} limit {:08x} type {:x} dpl {} l {} db {}\n", name,
                       seg->selector, seg->base, seg->limit, seg->type, seg->dpl, seg->l, seg->db);
  out += fmt::format("gdt {:016x}/{:x}  idt {:016x}/{:x}\n", s.gdt.base, s.gdt.limit, s.idt.base,
                     s.idt.limit);
  out += fmt::format("cr0 {:016x} cr2 {:016x} cr3 {:016x} cr4 {:016x}\ncr8 {:016x} efer {:016x}\n",
                     s.cr0, s.cr2, s.cr3, s.cr4, s.cr8, s.efer);
  return out;
}

}  // namespace doppel::kvm
