#include "vmm/board_x86_64.h"

#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <optional>

#include "base/log.h"
#include "boot/x86_64/acpi.h"
#include "boot/x86_64/layout.h"
#include "boot/x86_64/loader.h"
#include "boot/x86_64/mptable.h"
#include "vmm/exit_codes.h"
#include "vmm/state_codec.h"
#include "vmm/virtio_devices.h"
#include "base/thread_seal.h"

namespace doppel {

namespace lay = x86boot;

// The FADT (boot/x86_64/acpi.cpp) describes AcpiPm's registers by these ports.
static_assert(lay::kAcpiPm1aEvtPort == lay::kAcpiPmPort + AcpiPm::kPm1aStatus);
static_assert(lay::kAcpiPm1aCntPort == lay::kAcpiPmPort + AcpiPm::kPm1aControl);
static_assert(lay::kAcpiResetPort == lay::kAcpiPmPort + AcpiPm::kReset);
static_assert(lay::kAcpiPmTimerPort == lay::kAcpiPmPort + AcpiPm::kPmTimer);

BoardX86_64::~BoardX86_64() {
  stop();
  m_vcpus.clear();
}

Result<std::unique_ptr<BoardX86_64>> BoardX86_64::create(const VmConfig& config,
                                                         BoardContext context) {
  std::unique_ptr<BoardX86_64> b(new BoardX86_64(config, std::move(context)));
  TRY(b->build());
  return b;
}

Result<void> BoardX86_64::build() {
  using Clock = std::chrono::steady_clock;
  const auto t0 = Clock::now();
  auto ms_since = [](Clock::time_point t) {
    return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
  };
  const unsigned cpus = m_config.cpus;
  const bool restoring = !m_context.memory_file.empty() || m_context.incoming;
  if (!m_context.memory_file.empty())
    m_memory = TRY(GuestMemory::create_from_file(lay::ram_regions(m_config.memory),
                                                 m_context.memory_file));
  else
    m_memory = TRY(GuestMemory::create(lay::ram_regions(m_config.memory), m_config.memory_shared));
  m_vm = TRY(kvm::KvmVm::create(*m_memory, {.cpus = cpus}));
  const double vm_ms = ms_since(t0);
  for (uint32_t gsi = 0; gsi < 24; ++gsi) m_irq_lines.push_back(TRY(m_vm->irq_line(gsi)));

  // Legacy devices on port I/O.
  m_uart = std::make_unique<Uart16550>(*m_irq_lines[lay::kCom1Irq], 0,
                                       [this](uint8_t b) { m_context.console.write_output(b); });
  m_uart->set_rx_room_callback([this] { m_context.console.notify_room(); });
  m_i8042 = std::make_unique<I8042>(*m_irq_lines[lay::kKeyboardIrq], [this] {
    m_context.request_stop(kExitReboot, "the guest rebooted");
  });
  m_acpi_pm = std::make_unique<AcpiPm>(lay::kAcpiS5SleepType, lay::kAcpiResetValue,
                                       [this](AcpiPm::Action action) {
                                         if (action == AcpiPm::Action::kPowerOff)
                                           m_context.request_stop(kExitPowerOff,
                                                                  "the guest powered off");
                                         else
                                           m_context.request_stop(kExitReboot,
                                                                  "the guest rebooted");
                                       });
  TRY(m_pio.insert(lay::kCom1Port, m_uart->window_size(), *m_uart));
  TRY(m_pio.insert(lay::kI8042DataPort, lay::kI8042CommandPort - lay::kI8042DataPort + 1, *m_i8042));
  TRY(m_pio.insert(lay::kAcpiPmPort, AcpiPm::kSize, *m_acpi_pm));

  // Virtio-mmio devices: slot i at virtio_base(i), IRQ virtio_irq(i), level-triggered,
  // declared to the guest on its command line.
  m_cmdline = m_config.cmdline;
  const size_t virtio_count = virtio_device_count(m_config);
  if (virtio_count > lay::kVirtioSlots)
    return Error::format("x86_64 machine: the configuration needs {} virtio devices; there are {} "
                         "virtio-mmio slots", virtio_count, lay::kVirtioSlots);
  m_virtio = TRY(create_virtio_devices(m_config, *m_memory, [this](size_t i) -> IrqLine& {
    return *m_irq_lines[lay::virtio_irq(static_cast<unsigned>(i))];
  }, m_context.incoming));
  std::vector<unsigned> level_irqs;
  for (size_t i = 0; i < m_virtio.size(); ++i) {
    const auto slot = static_cast<unsigned>(i);
    TRY(m_mmio.insert(lay::virtio_base(slot), virtio::kMmioWindowSize, *m_virtio[i]));
    level_irqs.push_back(lay::virtio_irq(slot));
    m_cmdline += fmt::format(" virtio_mmio.device=4K@{:#x}:{}", lay::virtio_base(slot),
                             lay::virtio_irq(slot));
  }
  TRY(wire_ioeventfds());
  if (restoring) {
    // RAM holds the tables and the kernel; the vCPUs' state comes from restore().
    for (unsigned i = 0; i < cpus; ++i) m_vcpus.push_back(TRY(m_vm->create_vcpu(i)));
    return ok();
  }

  // Firmware tables, then the kernel.
  TRY(lay::write_mp_table(*m_memory, cpus, level_irqs));
  const uint64_t rsdp = TRY(lay::write_acpi_tables(*m_memory, cpus, level_irqs));
  const auto kernel = TRY(lay::MappedFile::open(m_config.kernel, "kernel"));
  std::optional<lay::MappedFile> initrd;
  if (!m_config.initrd.empty())
    initrd.emplace(TRY(lay::MappedFile::open(m_config.initrd, "initrd")));
  const auto t_load = Clock::now();
  auto entry = lay::load_linux(
      *m_memory, {kernel.bytes(), initrd ? initrd->bytes() : std::span<const uint8_t>{}, m_cmdline, rsdp});
  if (!entry.ok()) return entry.error().context(m_config.kernel);
  const double load_ms = ms_since(t_load);

  kvm::X86EntryState state;
  state.mode = entry->mode == lay::BootEntry::Mode::kLong64 ? kvm::X86EntryState::Mode::kLong64
                                                             : kvm::X86EntryState::Mode::kProtected32;
  state.rip = entry->rip;
  state.rsp = entry->rsp;
  state.rsi = entry->rsi;
  state.rbx = entry->rbx;
  state.cr3 = entry->cr3;
  state.gdt_base = entry->gdt_base;
  state.gdt_limit = entry->gdt_limit;
  m_vm->set_boot_entry(state);
  for (unsigned i = 0; i < cpus; ++i) m_vcpus.push_back(TRY(m_vm->create_vcpu(i)));
  update_tx_coalescing();  // IER is 0 at power-on: THR writes coalesce from the start
  spdlog::debug("x86_64: set up in {:.1f} ms (KVM VM {:.1f} ms, loading the kernel and initrd "
                "{:.1f} ms)", ms_since(t0), vm_ms, load_ms);
  spdlog::debug("x86_64: {} vCPUs, {} MiB RAM, {} entry at {:#x}, initrd {:#x}+{:#x}, {} virtio "
                "devices, cmdline '{}'", cpus, m_config.memory >> 20,
                entry->mode == lay::BootEntry::Mode::kLong64 ? "64-bit" : "PVH", entry->rip,
                entry->initrd_start, entry->initrd_size, m_virtio.size(), m_cmdline);
  return ok();
}

Result<void> BoardX86_64::wire_ioeventfds() {
  // QueueNotify (virtio 1.2 4.2.2.2) for queue q of device i signals its own eventfd in the
  // kernel, without a vCPU exit; the ioeventfd thread passes it on to the device.
  constexpr uint64_t kQueueNotify = 0x050;
  for (size_t i = 0; i < m_virtio.size(); ++i) {
    const uint64_t addr = lay::virtio_base(static_cast<unsigned>(i)) + kQueueNotify;
    for (uint32_t q = 0; q < m_virtio[i]->device().num_queues(); ++q) {
      UniqueFd fd(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
      if (!fd.valid()) return Error::from_errno("eventfd for virtio QueueNotify");
      TRY(m_vm->add_ioeventfd(addr, 4, q, fd.get(), false));
      m_notifiers.push_back({std::move(fd), m_virtio[i].get(), q});
    }
  }
  m_notifier_stop.reset(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!m_notifier_stop.valid()) return Error::from_errno("eventfd");
  return ok();
}

void BoardX86_64::ioeventfd_thread() {
  enter_thread(ThreadKind::kIoeventfd);
  std::vector<pollfd> fds;
  for (const auto& n : m_notifiers) fds.push_back({n.fd.get(), POLLIN, 0});
  fds.push_back({m_notifier_stop.get(), POLLIN, 0});
  while (!m_notifier_stopping.load(std::memory_order_acquire)) {
    if (poll(fds.data(), fds.size(), -1) < 0) {
      if (errno == EINTR) continue;
      m_context.request_stop(kExitError, fmt::format("ioeventfd poll: {}", std::strerror(errno)));
      return;
    }
    for (size_t i = 0; i < m_notifiers.size(); ++i) {
      if (!(fds[i].revents & POLLIN)) continue;
      uint64_t count;
      if (::read(fds[i].fd, &count, sizeof count) == sizeof count)
        m_notifiers[i].device->notify(m_notifiers[i].queue);
    }
  }
}

Result<void> BoardX86_64::start() {
  m_exit_stats.assign(m_vcpus.size(), PortExitStats{});
  m_notifier_stopping.store(false, std::memory_order_release);
  m_notifier = std::thread([this] { ioeventfd_thread(); });
  return ok();
}

void BoardX86_64::stop() {
  if (m_notifier.joinable()) {
    m_notifier_stopping.store(true, std::memory_order_release);
    const uint64_t one = 1;
    (void)!::write(m_notifier_stop.get(), &one, sizeof one);
    m_notifier.join();
    drain_coalesced();  // the last console bytes of a guest that stopped without exiting
    for (auto& v : m_virtio) v->stop();
    report_exit_stats();
  }
}

void BoardX86_64::before_exit(unsigned vcpu, const VcpuExit& exit) {
  // Coalesced writes happened before this exit: the devices see them first.
  PortExitStats& stats = m_exit_stats[vcpu];
  stats.coalesced += m_vm->drain_coalesced(
      [this](uint64_t port, unsigned size, uint64_t value) { (void)m_pio.write(port, size, value); });
  if (exit.reason == VcpuExit::Reason::kPioRead || exit.reason == VcpuExit::Reason::kPioWrite)
    ++stats.ports[exit.addr];
}

void BoardX86_64::after_port_write(uint64_t port) {
  if (port == lay::kCom1Port + 1) update_tx_coalescing();  // IER (or DLM)
}

Result<void> BoardX86_64::freeze_clocks() {
  // kvmclock stops with the VM: the guest does not see the paused time (QEMU does the
  // same with KVM_GET_CLOCK at stop, KVM_SET_CLOCK at continue).
  m_frozen_clock = TRY(m_vm->get_clock());
  return ok();
}

Result<void> BoardX86_64::thaw_clocks() {
  kvm_clock_data clock{};
  clock.clock = m_frozen_clock.clock;
  return m_vm->set_clock(clock);
}

Result<void> BoardX86_64::save(StateFile& out) {
  drain_coalesced();
  out.sections.push_back(make_section("kvm.vm", TRY(m_vm->save())));
  for (unsigned i = 0; i < m_vcpus.size(); ++i)
    out.sections.push_back(make_section(fmt::format("kvm.vcpu.{}", i), TRY(kvm_vcpu(i).save())));
  out.sections.push_back(make_section("x86.i8042", m_i8042->save()));
  out.sections.push_back(make_section("x86.acpi_pm", m_acpi_pm->save()));
  return ok();
}

Result<void> BoardX86_64::restore(const StateFile& in) {
  const unsigned n = static_cast<unsigned>(m_vcpus.size());
  if (in.find(fmt::format("kvm.vcpu.{}", n)) || !in.find(fmt::format("kvm.vcpu.{}", n - 1)))
    return Error::format("the snapshot's vCPU count differs from this VM's ({} vCPUs)", n);
  // The VM first (irqchips, PIT, clock), then the vCPUs: a vCPU's LAPIC state goes into
  // the in-kernel irqchip that must exist with its own state already.
  TRY(m_vm->restore(TRY(read_section<kvm::KvmVmState>(in, "kvm.vm"))));
  for (unsigned i = 0; i < n; ++i)
    TRY(kvm_vcpu(i).restore(TRY(read_section<kvm::VcpuState>(in, fmt::format("kvm.vcpu.{}", i)))));
  TRY(m_i8042->restore(TRY(read_section<I8042State>(in, "x86.i8042"))));
  TRY(m_acpi_pm->restore(TRY(read_section<AcpiPmState>(in, "x86.acpi_pm"))));
  m_frozen_clock = TRY(m_vm->get_clock());
  update_tx_coalescing();
  return ok();
}

Result<void> BoardX86_64::begin_dirty_epoch() {
  TRY(m_vm->set_dirty_logging(true));
  TRY(m_vm->fetch_dirty_log(*m_memory));  // KVM's log starts over when it is read
  m_memory->clear_dirty();
  return ok();
}

Result<void> BoardX86_64::collect_dirty() {
  // Before the first epoch (a migration's first round) there is no log, and nothing to add.
  if (!m_vm->dirty_logging()) return ok();
  return m_vm->fetch_dirty_log(*m_memory);
}

void BoardX86_64::update_tx_coalescing() {
  if (!m_vm->coalesced_pio_supported()) return;
  std::lock_guard lock(m_coalescing_mutex);
  // One way only: on from power-on (the kernel's boot log, written by polling LSR), off for
  // good the first time the guest enables the transmit interrupt (its serial driver takes
  // over). Re-registering at every IER change would cost an SRCU grace period in KVM each
  // time, and the boot log is where the bytes are.
  const bool want = !m_tx_coalescing_done && !m_uart->tx_interrupt_enabled();
  if (want == m_tx_coalesced) return;
  if (auto r = m_vm->set_coalesced_pio(lay::kCom1Port, 1, want); !r.ok()) {
    spdlog::warn("x86_64: console output coalescing: {}", r.error().message());
    m_tx_coalescing_done = true;
    return;
  }
  m_tx_coalesced = want;
  if (!want) m_tx_coalescing_done = true;
}

void BoardX86_64::drain_coalesced() {
  m_vm->drain_coalesced(
      [this](uint64_t port, unsigned size, uint64_t value) { (void)m_pio.write(port, size, value); });
}

void BoardX86_64::report_exit_stats() const {
  if (!spdlog::should_log(spdlog::level::debug)) return;
  PortExitStats all;
  for (const auto& s : m_exit_stats) {
    all.coalesced += s.coalesced;
    for (const auto& [port, n] : s.ports) all.ports[port] += n;
  }
  std::vector<std::pair<uint64_t, uint64_t>> top(all.ports.begin(), all.ports.end());
  std::sort(top.begin(), top.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
  std::string ports;
  for (size_t i = 0; i < top.size() && i < 6; ++i)
    ports += fmt::format(" {:#x}:{}", top[i].first, top[i].second);
  spdlog::debug("x86_64: busiest ports{}; coalesced port writes without an exit {}", ports,
                all.coalesced);
}

}  // namespace doppel
