// The KVM engine for x86-64: one VM file descriptor, its memory slots and in-kernel
// interrupt controllers (PIC, IOAPIC, local APICs, PIT), and its vCPUs.
//
// Threads: create() and the set-up calls (map_memory, add_ioeventfd, add_irqfd) run on the
// machine's thread before any vCPU runs. irq_line() objects may be driven from any thread
// (KVM_IRQ_LINE is thread-safe in the kernel). Each KvmVcpu runs on its own thread.
#pragma once

#include <linux/kvm.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"
#include "core/engine.h"
#include "core/guest_memory.h"
#include "core/irq.h"
#include "engines/kvm/x86_entry.h"

namespace doppel::kvm {

// Where KVM's VMX helpers live (three pages for the TSS, one for the identity map): just
// below the 4 GiB boundary, in the hole the e820 map reports as reserved.
constexpr uint64_t kTssAddress = 0xfffbd000;
constexpr uint64_t kIdentityMapAddress = 0xfffbc000;
constexpr uint64_t kIoApicAddress = 0xfec00000;
constexpr uint64_t kLocalApicAddress = 0xfee00000;

class KvmVm;

// The VM-wide state KVM keeps in the kernel (rule 9): the in-kernel PICs and IOAPIC, the
// PIT, and kvmclock. Saved and restored with every vCPU stopped.
struct KvmVmState {
  static constexpr uint32_t kVersion = 1;
  uint32_t version = kVersion;
  kvm_irqchip pic_master{};  // chip_id KVM_IRQCHIP_PIC_MASTER
  kvm_irqchip pic_slave{};   // chip_id KVM_IRQCHIP_PIC_SLAVE
  kvm_irqchip ioapic{};      // chip_id KVM_IRQCHIP_IOAPIC
  bool has_pit = false;      // Options::create_pit
  kvm_pit_state2 pit{};
  kvm_clock_data clock{};
};

// A GSI of the in-kernel IOAPIC/PIC, driven with KVM_IRQ_LINE. Level semantics: the line
// stays asserted while set_level(true); edge-configured pins see the rising edge.
class KvmIrqLine final : public IrqLine {
 public:
  KvmIrqLine(int vm_fd, uint32_t gsi) : m_vm_fd(vm_fd), m_gsi(gsi) {}
  void set_level(bool high) override;
  uint32_t gsi() const { return m_gsi; }

 private:
  int m_vm_fd;  // not owned: the KvmVm outlives its lines
  uint32_t m_gsi;
};

class KvmVm final : public Engine {
 public:
  struct Options {
    unsigned cpus = 1;
    bool create_pit = true;  // the i8254 PIT (Linux calibrates against it)
  };
  // Opens /dev/kvm (or `device`), checks the API version and every capability doppel
  // relies on, creates the VM with an in-kernel irqchip and PIT, and maps every region of
  // `memory` as a memory slot. `memory` must outlive the VM.
  static Result<std::unique_ptr<KvmVm>> create(GuestMemory& memory, const Options& options,
                                               const std::string& device = "/dev/kvm");
  ~KvmVm() override;

  std::string_view name() const override { return "kvm"; }

  // Boot vCPU state (loaded by create_vcpu(0)). Call before create_vcpu(0).
  void set_boot_entry(const X86EntryState& entry) { m_boot_entry = entry; }

  // vCPU `index` (its APIC ID is `index`). Index 0 is the boot processor; the others
  // wait for INIT/SIPI from the guest.
  Result<std::unique_ptr<Vcpu>> create_vcpu(unsigned index) override;

  // An interrupt line to GSI `gsi` (0..23 on the IOAPIC; 0..15 also reach the PIC).
  Result<std::unique_ptr<KvmIrqLine>> irq_line(uint32_t gsi);

  // The guest writing `len` bytes (to port `addr` if pio, else MMIO `addr`), optionally only
  // with value `datamatch`, signals `eventfd` in the kernel without an exit (virtio
  // QueueNotify). The fd must stay open while the VM exists.
  Result<void> add_ioeventfd(uint64_t addr, unsigned len, std::optional<uint64_t> datamatch,
                             int eventfd, bool pio);
  // Signalling `eventfd` asserts GSI `gsi`. With a resample fd the line is level-triggered:
  // KVM keeps it asserted until the guest EOIs, then signals `resample_fd` so the device
  // can re-assert if its condition is still pending.
  Result<void> add_irqfd(uint32_t gsi, int eventfd, std::optional<int> resample_fd);

  // Coalesced port writes (KVM_CAP_COALESCED_PIO): while on, the guest's writes to
  // [port, port + size) go into a ring shared with KVM instead of exiting. They are
  // handed out, in order, by drain_coalesced(), which the machine calls before it handles
  // any exit (so a device sees every access in the guest's order) and when the VM stops.
  // Only for registers whose writes have no side effect the guest could wait for before
  // its next exit. Without the capability coalesced_pio_supported() is false and
  // set_coalesced_pio() does nothing. Threads: any; set-up and draining serialise inside.
  bool coalesced_pio_supported() const { return m_coalesced_ring != nullptr; }
  Result<void> set_coalesced_pio(uint16_t port, uint32_t size, bool on);
  // Calls write(port, size, value) for each coalesced write; returns how many there were.
  size_t drain_coalesced(const std::function<void(uint64_t, unsigned, uint64_t)>& write);

  // Snapshots, with every vCPU stopped: KVM_GET_IRQCHIP (PIC master, slave, IOAPIC),
  // KVM_GET_PIT2 and KVM_GET_CLOCK; restore() sets them back into this VM, which must have
  // been created with the same Options::create_pit. A restore sets the VM-wide state
  // first, then each vCPU's (Firecracker's order).
  Result<KvmVmState> save() const;
  Result<void> restore(const KvmVmState& state);

  // kvmclock (the guest's paravirtual clock) across a pause: get_clock() when the vCPUs
  // have stopped, set_clock() with that value before they run again, so the guest's clock
  // does not jump by the time paused. set_clock() passes the clock value only (flags 0:
  // KVM_CLOCK_REALTIME would add the time since get_clock(); TSC_STABLE and HOST_TSC are
  // outputs; kernels before 5.16 refuse any flag).
  Result<kvm_clock_data> get_clock() const;
  Result<void> set_clock(const kvm_clock_data& clock);

  // What KVM_GET_MSR_INDEX_LIST reported at create(): the MSRs a vCPU's state may hold
  // (KvmVcpu::save() keeps those this vCPU can read).
  const std::vector<uint32_t>& msr_index_list() const { return m_msr_index_list; }

  // Dirty-page logging for diff snapshots. set_dirty_logging() re-registers every memory
  // slot with (or without) KVM_MEM_LOG_DIRTY_PAGES; KVM's log starts empty when it is turned
  // on. fetch_dirty_log() reads and clears each slot's log (KVM_GET_DIRTY_LOG; doppel does
  // not enable KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2, so KVM clears and write-protects again in
  // the same call) and marks those pages in `memory`'s bitmap, which must be the memory the
  // VM was created with. KVM logs only the guest's writes; host-side writes mark GuestMemory
  // themselves. A diff snapshot, with every vCPU stopped and the devices quiesced:
  // fetch_dirty_log(), GuestMemory::save_dirty_to_file(), GuestMemory::clear_dirty().
  // Threads: the machine's thread; set_dirty_logging() with every vCPU stopped.
  Result<void> set_dirty_logging(bool on);
  bool dirty_logging() const { return m_dirty_logging; }
  Result<void> fetch_dirty_log(GuestMemory& memory);

  int vm_fd() const { return m_vm.get(); }
  uint32_t tsc_khz() const { return m_tsc_khz; }
  unsigned cpus() const { return m_options.cpus; }

 private:
  KvmVm(UniqueFd kvm, UniqueFd vm, GuestMemory& memory, const Options& options);
  Result<void> check_capabilities();
  Result<void> set_up_vm();

  UniqueFd m_kvm;
  UniqueFd m_vm;
  GuestMemory& m_memory;
  Options m_options;
  size_t m_run_size = 0;
  std::vector<kvm_cpuid_entry2> m_supported_cpuid;
  std::vector<uint32_t> m_msr_index_list;  // KVM_GET_MSR_INDEX_LIST
  X86EntryState m_boot_entry;
  uint32_t m_tsc_khz = 0;
  bool m_dirty_logging = false;  // KVM_MEM_LOG_DIRTY_PAGES on every slot
  // The coalesced-write ring: a page of vCPU 0's kvm_run mapping (KVM shares one ring per
  // VM), valid while vCPU 0 exists. Null without KVM_CAP_COALESCED_PIO.
  int m_coalesced_page = 0;  // page offset in a vCPU mapping; 0 = unsupported
  kvm_coalesced_mmio_ring* m_coalesced_ring = nullptr;
  std::mutex m_coalesced_mutex;  // serialises draining (the consumer side of the ring)
};

}  // namespace doppel::kvm
