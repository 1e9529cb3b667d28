// One KVM vCPU: its fd, its mmap'ed kvm_run page, and the exit translation from
// KVM_EXIT_* into VcpuExit.
//
// Threads: run() and set_io_result() on the vCPU's own thread only; kick() from any
// thread (it sets kvm_run.immediate_exit and signals the vCPU thread with SIGUSR1).
#pragma once

#include <linux/kvm.h>
#include <pthread.h>

#include <atomic>
#include <cstdint>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"
#include "core/engine.h"
#include "engines/kvm/kvm_abi.h"
#include "engines/kvm/x86_debug_regs.h"
#include "engines/kvm/x86_entry.h"

namespace doppel::kvm {

// Register capture for snapshots (rule 9). Version 2: the XSAVE area (AVX and later
// register state, which kvm_fpu lacks) when KVM offers it. `msrs`: every MSR this vCPU
// could read of those KVM lists as saveable (KVM_GET_MSR_INDEX_LIST), the MTRRs and
// doppel's boot MSRs, in KVM's order.
struct VcpuState {
  static constexpr uint32_t kVersion = 2;
  uint32_t version = kVersion;
  kvm_regs regs{};
  kvm_sregs sregs{};
  kvm_fpu fpu{};
  bool has_xsave = false;
  XsaveArea xsave{};
  kvm_lapic_state lapic{};
  kvm_mp_state mp_state{};
  kvm_vcpu_events events{};
  kvm_xcrs xcrs{};
  std::vector<kvm_msr_entry> msrs;
};

// Snapshots use save() and restore() (rule 9); save() is a Result, as reading state from
// KVM can fail, so this is not a Persist<VcpuState>.
class KvmVcpu final : public Vcpu {
 public:
  // Takes ownership of the vCPU fd; maps its kvm_run area (run_size bytes).
  // msr_index_list: KVM_GET_MSR_INDEX_LIST of the system fd (KvmVm::msr_index_list()),
  // the MSRs save() tries.
  static Result<std::unique_ptr<KvmVcpu>> create(UniqueFd fd, unsigned index, size_t run_size,
                                                 std::vector<uint32_t> msr_index_list);
  ~KvmVcpu() override;

  unsigned index() const override { return m_index; }
  Result<VcpuExit> run() override;
  void set_io_result(uint64_t data) override;
  void kick() override;

  // Set-up, before the first run(): CPUID, MSRs, FPU, local APIC LINT0/LINT1, and for
  // the boot vCPU its entry registers.
  Result<void> set_cpuid(const std::vector<kvm_cpuid_entry2>& entries);
  Result<void> set_boot_msrs();
  Result<void> set_fpu_defaults();
  Result<void> set_lapic_lints();
  Result<void> set_entry(const X86EntryState& entry);

  // Debug and tests.
  Result<kvm_regs> regs() const;
  Result<kvm_sregs> sregs() const;

  // With the vCPU stopped (not inside run()). Fails if KVM refuses any part; MSRs that
  // this vCPU cannot read (KVM lists some that depend on host or guest features) are left
  // out rather than failing.
  Result<VcpuState> save() const;
  // Sets sregs (with the APIC base) before the local APIC and the local APIC before the
  // MSRs (KVM drops a TSC-deadline write unless the LVT timer is in TSC-deadline mode), and
  // MSR_IA32_TSC before MSR_IA32_TSC_DEADLINE (KVM arms the deadline against the guest's
  // TSC). Fails naming the first MSR KVM refuses.
  Result<void> restore(const VcpuState& state);

  // Debugger support (kvm_vcpu_debug.cpp): KVM_SET_GUEST_DEBUG with the 4 debug registers
  // for breakpoints and write/access watchpoints, single-step with interrupts blocked,
  // KVM_TRANSLATE for virtual addresses.
  const DebugArch* debug_arch() const override;
  Result<std::vector<uint8_t>> debug_read_registers() override;
  Result<void> debug_write_register(unsigned index, std::span<const uint8_t> value) override;
  Result<uint64_t> debug_translate(uint64_t va) override;
  Result<void> set_debug(const DebugControl& control) override;
  std::string debug_describe() override;

  int fd() const { return m_fd.get(); }
  // Page `page` of this vCPU's kvm_run mapping (KVM puts the coalesced-write ring at
  // KVM_COALESCED_MMIO_PAGE_OFFSET), or null if the mapping is shorter.
  void* mapping_page(int page) const;

 private:
  KvmVcpu(UniqueFd fd, unsigned index, kvm_run* run, size_t run_size,
          std::vector<uint32_t> msr_index_list);
  // One element of a pending (string) port I/O, or of a pending MMIO access.
  VcpuExit next_io_exit();
  // A KVM_EXIT_DEBUG as a kDebug exit (kvm_vcpu_debug.cpp).
  VcpuExit debug_exit();
  // A held vCPU (DebugControl::hold) waits here for its kick instead of running.
  VcpuExit wait_for_kick();

  UniqueFd m_fd;
  unsigned m_index;
  kvm_run* m_run;
  size_t m_run_size;
  std::vector<uint32_t> m_save_msrs;  // MSRs save() tries, in order, without duplicates
  std::atomic<pthread_t> m_thread{};
  std::atomic<bool> m_thread_known{false};
  // A KVM_EXIT_IO with count > 1 (rep ins/outs) is handed out one element at a time.
  uint32_t m_io_next = 0;
  uint32_t m_io_count = 0;
  bool m_pending_read = false;  // set_io_result() has somewhere to store
  // Counted by kick(), so that a held vCPU can sleep until one comes.
  std::atomic<uint32_t> m_kicks{0};
  // Set only while parked (set_debug()); read by run(). The debug registers' slots: what
  // each of DR0-DR3 holds.
  bool m_debug_hold = false;
  std::vector<X86DebugSlot> m_debug_slots;
};

}  // namespace doppel::kvm
