// The x86-64 board on the KVM engine: RAM (below the 32-bit hole, then above 4 GiB),
// KVM's in-kernel PIC/IOAPIC/local APICs and PIT, the COM1 16550 UART (port 0x3f8, IRQ 4),
// the i8042 (reset, and a keyboard for Ctrl-Alt-Del), the ACPI sleep/reset registers (power off), virtio-mmio devices
// declared on the kernel command line, and the vCPUs. The memory map is
// boot/x86_64/layout.h; the boot is boot/x86_64/loader.h (bzImage or PVH vmlinux) with
// an MP table and ACPI tables.
//
// Power off: the guest's ACPI (hardware-reduced: FADT SLEEP_CONTROL_REG + DSDT _S5_) writes
// SLP_TYP(S5)|SLP_EN to port 0x600 -> exit 0. Reboot: i8042 0xFE, ACPI RESET_REG or a
// triple fault -> exit 3 (or a fresh machine with --on-reboot=restart).
//
// Threads: the Machine runs the vCPU threads; start()/stop() run the ioeventfd thread
// (virtio QueueNotify).
//
// State file sections: "kvm.vm", "kvm.vcpu.<i>", "x86.i8042", "x86.acpi_pm".
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
#include "engines/kvm/kvm_vcpu.h"
#include "vmm/board.h"

namespace doppel {

// The exits a vCPU took (GET /metrics has them per reason; this is the port breakdown
// reported at --log-level debug when the VM stops). Each vCPU thread writes its own.
struct PortExitStats {
  uint64_t coalesced = 0;              // writes that did not exit (drained by this thread)
  std::map<uint64_t, uint64_t> ports;  // port -> exits
};

class BoardX86_64 final : public Board {
 public:
  static Result<std::unique_ptr<BoardX86_64>> create(const VmConfig& config, BoardContext context);
  ~BoardX86_64() override;

  GuestMemory& memory() override { return *m_memory; }
  const Bus& mmio() const override { return m_mmio; }
  const Bus* pio() const override { return &m_pio; }
  unsigned vcpu_count() const override { return static_cast<unsigned>(m_vcpus.size()); }
  Vcpu& vcpu(unsigned index) override { return *m_vcpus.at(index); }
  Uart16550& uart() override { return *m_uart; }
  std::span<const std::unique_ptr<virtio::VirtioMmio>> virtio() const override { return m_virtio; }

  Result<void> start() override;
  void stop() override;
  void before_exit(unsigned vcpu, const VcpuExit& exit) override;
  void after_port_write(uint64_t port) override;
  Result<void> freeze_clocks() override;
  Result<void> thaw_clocks() override;
  Result<void> save(StateFile& out) override;
  Result<void> restore(const StateFile& in) override;
  Result<void> begin_dirty_epoch() override;
  Result<void> collect_dirty() override;
  // Ctrl-Alt-Del typed on the i8042's keyboard (IRQ 1).
  Result<void> send_ctrl_alt_del() override { return m_i8042->send_ctrl_alt_del(); }

  // The kernel command line as the guest gets it (config's plus virtio_mmio.device=...).
  const std::string& cmdline() const { return m_cmdline; }

 private:
  BoardX86_64(const VmConfig& config, BoardContext context)
      : m_config(config), m_context(std::move(context)) {}
  Result<void> build();
  Result<void> wire_ioeventfds();
  kvm::KvmVcpu& kvm_vcpu(unsigned index) { return static_cast<kvm::KvmVcpu&>(*m_vcpus.at(index)); }
  void report_exit_stats() const;
  // Console output without an exit per byte: COM1's THR writes are coalesced by KVM until
  // the guest first enables the UART's transmit interrupt (until then the kernel writes
  // its log by polling LSR), and drained in order before every exit is handled. Called
  // after the guest writes IER; any thread.
  void update_tx_coalescing();
  void drain_coalesced();
  void ioeventfd_thread();

  const VmConfig m_config;
  BoardContext m_context;
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
  std::vector<std::unique_ptr<Vcpu>> m_vcpus;   // KvmVcpus
  std::vector<PortExitStats> m_exit_stats;       // one per vCPU, written by its thread only
  std::thread m_notifier;                        // the ioeventfd thread, between start and stop
  std::atomic<bool> m_notifier_stopping{false};
  kvm_clock_data m_frozen_clock{};               // kvmclock while paused
  std::mutex m_coalescing_mutex;
  bool m_tx_coalesced = false;        // GUARDED_BY(m_coalescing_mutex)
  bool m_tx_coalescing_done = false;  // GUARDED_BY(m_coalescing_mutex): switched off for good
};

}  // namespace doppel
