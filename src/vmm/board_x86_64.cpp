#include "vmm/machine_x86_64.h"

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
#include "vmm/virtio_devices.h"

namespace doppel {

namespace lay = x86boot;

// The FADT (boot/x86_64/acpi.cpp) describes AcpiPm's registers by these ports.
static_assert(lay::kAcpiPm1aEvtPort == lay::kAcpiPmPort + AcpiPm::kPm1aStatus);
static_assert(lay::kAcpiPm1aCntPort == lay::kAcpiPmPort + AcpiPm::kPm1aControl);
static_assert(lay::kAcpiResetPort == lay::kAcpiPmPort + AcpiPm::kReset);
static_assert(lay::kAcpiPmTimerPort == lay::kAcpiPmPort + AcpiPm::kPmTimer);

MachineX86_64::~MachineX86_64() { m_vcpus.clear(); }

Result<std::unique_ptr<MachineX86_64>> MachineX86_64::create(const VmConfig& config,
                                                             Console& console) {
  std::unique_ptr<MachineX86_64> m(new MachineX86_64(config, console));
  TRY(m->build());
  return m;
}

Result<void> MachineX86_64::build() {
  using Clock = std::chrono::steady_clock;
  const auto t0 = Clock::now();
  auto ms_since = [](Clock::time_point t) {
    return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
  };
  const unsigned cpus = m_config.cpus;
  m_memory = TRY(GuestMemory::create(lay::ram_regions(m_config.memory)));
  m_vm = TRY(kvm::KvmVm::create(*m_memory, {.cpus = cpus}));
  const double vm_ms = ms_since(t0);
  for (uint32_t gsi = 0; gsi < 24; ++gsi) m_irq_lines.push_back(TRY(m_vm->irq_line(gsi)));

  // Legacy devices on port I/O.
  m_uart = std::make_unique<Uart16550>(*m_irq_lines[lay::kCom1Irq], 0,
                                       [this](uint8_t b) { m_console.write_output(b); });
  m_uart->set_rx_room_callback([this] { m_console.notify_room(); });
  m_i8042 = std::make_unique<I8042>([this] { request_stop(kExitReboot, "the guest rebooted"); });
  m_acpi_pm = std::make_unique<AcpiPm>(lay::kAcpiS5SleepType, lay::kAcpiResetValue,
                                       [this](AcpiPm::Action action) {
                                         if (action == AcpiPm::Action::kPowerOff)
                                           request_stop(kExitPowerOff, "the guest powered off");
                                         else
                                           request_stop(kExitReboot, "the guest rebooted");
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
  }));
  std::vector<unsigned> level_irqs;
  for (size_t i = 0; i < m_virtio.size(); ++i) {
    const auto slot = static_cast<unsigned>(i);
    TRY(m_mmio.insert(lay::virtio_base(slot), virtio::kMmioWindowSize, *m_virtio[i]));
    level_irqs.push_back(lay::virtio_irq(slot));
    m_cmdline += fmt::format(" virtio_mmio.device=4K@{:#x}:{}", lay::virtio_base(slot),
                             lay::virtio_irq(slot));
  }
  TRY(wire_ioeventfds());

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

Result<void> MachineX86_64::wire_ioeventfds() {
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

void MachineX86_64::ioeventfd_thread() {
  std::vector<pollfd> fds;
  for (const auto& n : m_notifiers) fds.push_back({n.fd.get(), POLLIN, 0});
  fds.push_back({m_notifier_stop.get(), POLLIN, 0});
  while (!m_stopping.load(std::memory_order_acquire)) {
    if (poll(fds.data(), fds.size(), -1) < 0) {
      if (errno == EINTR) continue;
      request_stop(kExitError, fmt::format("ioeventfd poll: {}", std::strerror(errno)));
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

void MachineX86_64::request_stop(int exit_code, std::string reason) {
  {
    std::lock_guard lock(m_stop_mutex);
    if (m_stopping.load(std::memory_order_relaxed)) return;
    m_exit_code = exit_code;
    m_stop_reason = std::move(reason);
    m_stopping.store(true, std::memory_order_release);
  }
  for (auto& vcpu : m_vcpus) vcpu->kick();
  if (m_notifier_stop.valid()) {
    const uint64_t one = 1;
    (void)!::write(m_notifier_stop.get(), &one, sizeof one);
  }
}

void MachineX86_64::vcpu_thread(unsigned index) {
  Vcpu& vcpu = *m_vcpus[index];
  ExitStats& stats = m_exit_stats[index];
  while (!m_stopping.load(std::memory_order_acquire)) {
    auto result = vcpu.run();
    if (!result.ok()) {
      request_stop(kExitCrash, fmt::format("vCPU {}: {}", index, result.error().message()));
      return;
    }
    const VcpuExit& exit = *result;
    // Coalesced writes happened before this exit: the devices see them first.
    stats.coalesced += m_vm->drain_coalesced(
        [this](uint64_t port, unsigned size, uint64_t value) { (void)m_pio.write(port, size, value); });
    switch (exit.reason) {
      case VcpuExit::Reason::kPioRead:
      case VcpuExit::Reason::kPioWrite:
        ++(exit.reason == VcpuExit::Reason::kPioRead ? stats.pio_reads : stats.pio_writes);
        ++stats.ports[exit.addr];
        break;
      case VcpuExit::Reason::kMmioRead: ++stats.mmio_reads; break;
      case VcpuExit::Reason::kMmioWrite: ++stats.mmio_writes; break;
      case VcpuExit::Reason::kKicked: ++stats.kicks; break;
      default: break;
    }
    switch (exit.reason) {
      case VcpuExit::Reason::kKicked:
        break;  // the loop condition decides
      case VcpuExit::Reason::kPioRead: {
        // Unclaimed ports read as all ones, like a floating ISA bus.
        uint64_t value = ~0ull;
        if (!m_pio.read(exit.addr, exit.size, value)) value = ~0ull;
        vcpu.set_io_result(value);
        break;
      }
      case VcpuExit::Reason::kPioWrite:
        // Unclaimed ports (0x80 delays, probes for absent chips) ignore writes quietly.
        (void)m_pio.write(exit.addr, exit.size, exit.data);
        if (exit.addr == lay::kCom1Port + 1) update_tx_coalescing();  // IER (or DLM)
        break;
      case VcpuExit::Reason::kMmioRead: {
        uint64_t value = 0;
        if (!m_mmio.read(exit.addr, exit.size, value))
          DOPPEL_GUEST_WARN("vCPU {}: read of {} bytes at {:#x}: no device", index, exit.size,
                            exit.addr);
        vcpu.set_io_result(value);
        break;
      }
      case VcpuExit::Reason::kMmioWrite:
        if (!m_mmio.write(exit.addr, exit.size, exit.data))
          DOPPEL_GUEST_WARN("vCPU {}: write of {} bytes at {:#x}: no device", index, exit.size,
                            exit.addr);
        break;
      case VcpuExit::Reason::kPowerOff:
        request_stop(kExitPowerOff, "the guest powered off");
        break;
      case VcpuExit::Reason::kReset:
        request_stop(kExitReboot, exit.detail == "triple fault" ? "the guest triple-faulted (reset)"
                                                                : "the guest rebooted");
        break;
      case VcpuExit::Reason::kCrash:
        request_stop(kExitCrash, fmt::format("vCPU {}: {}", index, exit.detail));
        break;
    }
  }
}

void MachineX86_64::update_tx_coalescing() {
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

void MachineX86_64::drain_coalesced() {
  m_vm->drain_coalesced(
      [this](uint64_t port, unsigned size, uint64_t value) { (void)m_pio.write(port, size, value); });
}

void MachineX86_64::report_exit_stats() const {
  if (!spdlog::should_log(spdlog::level::debug)) return;
  ExitStats all;
  for (const auto& s : m_exit_stats) {
    all.pio_reads += s.pio_reads;
    all.pio_writes += s.pio_writes;
    all.mmio_reads += s.mmio_reads;
    all.mmio_writes += s.mmio_writes;
    all.kicks += s.kicks;
    all.coalesced += s.coalesced;
    for (const auto& [port, n] : s.ports) all.ports[port] += n;
  }
  std::vector<std::pair<uint64_t, uint64_t>> top(all.ports.begin(), all.ports.end());
  std::sort(top.begin(), top.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
  std::string ports;
  for (size_t i = 0; i < top.size() && i < 6; ++i)
    ports += fmt::format(" {:#x}:{}", top[i].first, top[i].second);
  spdlog::debug("x86_64: exits to doppel: port reads {}, port writes {} (busiest{}), MMIO reads {}, "
                "MMIO writes {}, kicks {}; coalesced port writes without an exit {}",
                all.pio_reads, all.pio_writes, ports, all.mmio_reads, all.mmio_writes, all.kicks,
                all.coalesced);
}

Result<int> MachineX86_64::run() {
  m_exit_stats.assign(m_vcpus.size(), ExitStats{});
  std::thread notifier([this] { ioeventfd_thread(); });
  std::vector<std::thread> threads;
  for (unsigned i = 0; i < m_vcpus.size(); ++i) threads.emplace_back([this, i] { vcpu_thread(i); });
  for (auto& t : threads) t.join();
  notifier.join();
  drain_coalesced();  // the last console bytes of a guest that stopped without exiting
  for (auto& v : m_virtio) v->stop();
  report_exit_stats();

  int code;
  std::string reason;
  {
    std::lock_guard lock(m_stop_mutex);
    code = m_exit_code;
    reason = m_stop_reason;
  }
  // panic=-1 turns a kernel panic into a reboot: that is a dead guest, not a reboot.
  if ((code == kExitReboot || code == kExitPowerOff) && m_console.saw_kernel_panic()) {
    code = kExitCrash;
    reason = "the guest kernel panicked";
  }
  if (code == kExitCrash) {
    std::string report = fmt::format("\r\ndoppel: {}\r\ndoppel: last console lines:\r\n", reason);
    for (const auto& line : m_console.recent_lines()) report += fmt::format("  | {}\r\n", line);
    std::fputs(report.c_str(), stderr);
  } else {
    spdlog::info("{}", reason);
  }
  return code;
}

namespace {

// Routes console input to the current machine's UART across reboots.
struct InputRouter {
  std::mutex mutex;
  Uart16550* uart = nullptr;         // GUARDED_BY(mutex)
  MachineX86_64* machine = nullptr;  // GUARDED_BY(mutex)
  bool quit = false;                 // GUARDED_BY(mutex)

  void attach(MachineX86_64* m) {
    std::lock_guard lock(mutex);
    machine = m;
    uart = m ? &m->uart() : nullptr;
    if (m && quit) m->request_stop(kExitQuit, "quit from the console (Ctrl-A x)");
  }
};

}  // namespace

Result<int> run_x86_64_kvm(const VmConfig& config) {
  // Threads get 512 KiB stacks instead of glibc's 8 MiB: doppel's threads are shallow, and
  // an 8 MiB stack can hold a transparent huge page, 2 MiB of RSS for the few KiB a thread
  // uses, on hosts with THP "always".
  pthread_attr_t attr;
  if (pthread_attr_init(&attr) == 0) {
    if (pthread_attr_setstacksize(&attr, 512 * KiB) == 0) pthread_setattr_default_np(&attr);
    pthread_attr_destroy(&attr);
  }
  InputRouter router;  // outlives the console, whose input thread uses it
  auto console = TRY(Console::create({STDIN_FILENO, STDOUT_FILENO, true}));
  console->start_input(
      [&router](std::span<const uint8_t> bytes) -> size_t {
        std::lock_guard lock(router.mutex);
        return router.uart ? router.uart->receive(bytes) : 0;
      },
      [&router] {
        std::lock_guard lock(router.mutex);
        router.quit = true;
        if (router.machine)
          router.machine->request_stop(kExitQuit, "quit from the console (Ctrl-A x)");
      });

  for (;;) {
    console->forget_kernel_panic();
    auto machine = MachineX86_64::create(config, *console);
    if (!machine.ok()) {
      console->stop_input();
      return machine.release_error();
    }
    router.attach(machine->get());
    // Input that arrived before there was a UART: offer it now, so the UART remembers the
    // refusal and asks for it again once the guest's driver enables receive interrupts.
    console->notify_room();
    auto code = (*machine)->run();
    router.attach(nullptr);
    if (!code.ok() || *code != kExitReboot || config.on_reboot != OnReboot::kRestart) {
      console->stop_input();
      return code;
    }
    spdlog::info("x86_64: the guest rebooted; starting it again (--on-reboot=restart)");
  }
}

}  // namespace doppel
