// The x86-64 machine on the KVM engine: RAM (below the 32-bit hole, then above 4 GiB),
// KVM's in-kernel PIC/IOAPIC/local APICs and PIT, the COM1 16550 UART (port 0x3f8, IRQ 4),
// the i8042 (reset), the ACPI sleep/reset registers (power off), virtio-mmio devices
// declared on the kernel command line, and one host thread per vCPU. The memory map is
// boot/x86_64/layout.h; the boot is boot/x86_64/loader.h (bzImage or PVH vmlinux) with
// an MP table and ACPI tables.
//
// Power off: the guest's ACPI (hardware-reduced: FADT SLEEP_CONTROL_REG + DSDT _S5_) writes
// SLP_TYP(S5)|SLP_EN to port 0x600 -> exit 0. Reboot: i8042 0xFE, ACPI RESET_REG or a
// triple fault -> exit 3 (or a fresh machine with --on-reboot=restart).
//
// Threads: run() on the main thread starts one thread per vCPU and an ioeventfd thread
// (virtio QueueNotify), and joins them. request_stop() from any thread; the first request
// decides the exit code.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"
#include "core/bus.h"
#include "core/engine.h"
#include "core/guest_memory.h"
#include "devices/legacy/acpi_pm.h"
#include "devices/legacy/i8042.h"
#include "devices/legacy/uart_16550.h"
#include "devices/virtio/virtio_mmio.h"
#include "engines/kvm/kvm_vm.h"
#include "vmm/console.h"
#include "vmm/vm_config.h"

namespace doppel {

class MachineX86_64 {
 public:
  // Builds the machine and loads the guest; `console` outlives the machine.
  static Result<std::unique_ptr<MachineX86_64>> create(const VmConfig& config, Console& console);
  ~MachineX86_64();
  MachineX86_64(const MachineX86_64&) = delete;
  MachineX86_64& operator=(const MachineX86_64&) = delete;

  // Runs until the guest powers off, reboots or dies, or request_stop(); returns the exit
  // code (vmm/exit_codes.h). Reports a dead guest on stderr with its last console lines.
  Result<int> run();
  void request_stop(int exit_code, std::string reason);

  Uart16550& uart() { return *m_uart; }
  // The kernel command line as the guest gets it (config's plus virtio_mmio.device=...).
  const std::string& cmdline() const { return m_cmdline; }

 private:
  MachineX86_64(const VmConfig& config, Console& console) : m_config(config), m_console(console) {}
  Result<void> build();
  Result<void> wire_ioeventfds();
  void vcpu_thread(unsigned index);
  // What a vCPU exited for, reported at --log-level debug when the VM stops. Each vCPU
  // thread writes its own; run() reads them after joining.
  struct ExitStats {
    uint64_t pio_reads = 0, pio_writes = 0, mmio_reads = 0, mmio_writes = 0, kicks = 0;
    uint64_t coalesced = 0;  // writes that did not exit (drained by this thread)
    std::map<uint64_t, uint64_t> ports;  // port -> exits
  };
  void report_exit_stats() const;
  // Console output without an exit per byte: COM1's THR writes are coalesced by KVM until
  // the guest first enables the UART's transmit interrupt (until then the kernel writes
  // its log by polling LSR), and drained in order before every exit is handled. Called
  // after the guest writes IER; any thread.
  void update_tx_coalescing();
  void drain_coalesced();
  void ioeventfd_thread();

  const VmConfig m_config;
  Console& m_console;
  std::string m_cmdline;

  // Teardown is declaration order reversed: vCPUs and devices before the VM, the VM before
  // memory.
  std::unique_ptr<GuestMemory> m_memory;
  Bus m_pio{"x86_64 port I/O"};
  Bus m_mmio{"x86_64 mmio"};
  std::unique_ptr<kvm::KvmVm> m_vm;
  std::vector<std::unique_ptr<kvm::KvmIrqLine>> m_irq_lines;
  std::unique_ptr<Uart16550> m_uart;
  std::unique_ptr<I8042> m_i8042;
  std::unique_ptr<AcpiPm> m_acpi_pm;
  std::vector<std::unique_ptr<virtio::VirtioMmio>> m_virtio;
  struct Notifier {
    UniqueFd fd;
    virtio::VirtioMmio* device;
    uint32_t queue;
  };
  std::vector<Notifier> m_notifiers;  // ioeventfds, read only by the ioeventfd thread
  UniqueFd m_notifier_stop;           // eventfd: wakes the ioeventfd thread to exit
  std::vector<std::unique_ptr<Vcpu>> m_vcpus;
  std::vector<ExitStats> m_exit_stats;  // one per vCPU, written by its thread only
  std::mutex m_coalescing_mutex;
  bool m_tx_coalesced = false;        // GUARDED_BY(m_coalescing_mutex)
  bool m_tx_coalescing_done = false;  // GUARDED_BY(m_coalescing_mutex): switched off for good

  std::atomic<bool> m_stopping{false};
  std::mutex m_stop_mutex;
  int m_exit_code = 0;        // GUARDED_BY(m_stop_mutex)
  std::string m_stop_reason;  // GUARDED_BY(m_stop_mutex)
};

// The whole run of `doppel run --arch x86_64 --engine kvm`: console, machine, and reboots
// when config.on_reboot is kRestart.
Result<int> run_x86_64_kvm(const VmConfig& config);

}  // namespace doppel
