#include "vmm/machine_riscv64.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <thread>

#include "base/log.h"
#include "boot/riscv64/fdt.h"
#include "boot/riscv64/loader.h"
#include "engines/emu/riscv64/memory_map.h"
#include "vmm/exit_codes.h"
#include "vmm/virtio_devices.h"

namespace doppel {

namespace mm = rv64::memmap;

MachineRiscv64::~MachineRiscv64() {
  // Harts are joined in run(); make sure nothing still runs if run() was never called.
  m_vcpus.clear();
}

Result<std::unique_ptr<MachineRiscv64>> MachineRiscv64::create(const VmConfig& config,
                                                               Console& console) {
  std::unique_ptr<MachineRiscv64> m(new MachineRiscv64(config, console));
  TRY(m->build());
  return m;
}

Result<void> MachineRiscv64::build() {
  const unsigned harts = m_config.cpus;
  m_memory = TRY(GuestMemory::create({{mm::kRamBase, m_config.memory}}));
  m_engine = TRY(rv64::EmuEngine::create(*m_memory, m_mmio, m_timebase, harts));

  std::vector<rv64::InterruptPins*> pins;
  for (unsigned h = 0; h < harts; ++h) pins.push_back(&m_engine->pins(h));
  m_clint = std::make_unique<rv64::Clint>(m_timebase, pins);
  m_plic = std::make_unique<rv64::Plic>(mm::kPlicSources, pins);
  m_uart = std::make_unique<Uart16550>(m_plic->line(mm::kUartIrq), 0,
                                       [this](uint8_t b) { m_console.write_output(b); });
  m_uart->set_rx_room_callback([this] { m_console.notify_room(); });
  m_test = std::make_unique<SifiveFinisher>([this](SifiveFinisher::Action action, uint16_t code) {
    switch (action) {
      case SifiveFinisher::Action::kPowerOff:
        request_stop(kExitPowerOff, "the guest powered off");
        break;
      case SifiveFinisher::Action::kReset:
        request_stop(kExitReboot, "the guest rebooted");
        break;
      case SifiveFinisher::Action::kFail:
        request_stop(kExitCrash, fmt::format("the guest reported a failure (code {})", code));
        break;
    }
  });

  TRY(m_mmio.insert(mm::kTestBase, mm::kTestSize, *m_test));
  TRY(m_mmio.insert(mm::kClintBase, mm::kClintSize, *m_clint));
  TRY(m_mmio.insert(mm::kPlicBase, mm::kPlicSize, *m_plic));
  TRY(m_mmio.insert(mm::kUartBase, mm::kUartSize, *m_uart));

  // Virtio-mmio devices from the config: device i in slot i, PLIC source 1 + i.
  const size_t virtio_count = virtio_device_count(m_config);
  if (virtio_count > mm::kVirtioSlots)
    return Error::format("riscv64 machine: the configuration needs {} virtio devices; there are "
                         "{} virtio-mmio slots",
                         virtio_count, mm::kVirtioSlots);
  m_virtio = TRY(create_virtio_devices(m_config, *m_memory, [this](size_t i) -> IrqLine& {
    return m_plic->line(mm::virtio_irq(static_cast<unsigned>(i)));
  }));
  rv64boot::FdtDescription fdt;
  for (size_t i = 0; i < m_virtio.size(); ++i) {
    const auto slot = static_cast<unsigned>(i);
    TRY(m_mmio.insert(mm::virtio_base(slot), virtio::kMmioWindowSize, *m_virtio[i]));
    fdt.virtio.push_back({mm::virtio_base(slot), virtio::kMmioWindowSize, mm::virtio_irq(slot)});
  }

  // Guest images, then the device tree that describes them.
  const rv64boot::BootLayout layout = TRY(rv64boot::load_images(
      *m_memory, mm::kRamBase, m_config.firmware, m_config.kernel, m_config.initrd));
  fdt.harts = harts;
  fdt.timebase_hz = rv64::kTimebaseHz;
  fdt.ram_base = mm::kRamBase;
  fdt.ram_size = m_config.memory;
  fdt.test = {mm::kTestBase, mm::kTestSize, 0};
  fdt.clint = {mm::kClintBase, mm::kClintSize, 0};
  fdt.plic = {mm::kPlicBase, mm::kPlicSize, 0};
  fdt.plic_ndev = mm::kPlicSources - 1;
  fdt.uart = {mm::kUartBase, mm::kUartSize, mm::kUartIrq};
  fdt.uart_clock_hz = mm::kUartClockHz;
  fdt.bootargs = m_config.cmdline;
  fdt.initrd = layout.initrd;
  m_dtb = TRY(rv64boot::build_fdt(fdt));
  TRY(rv64boot::place_boot_data(*m_memory, layout, m_dtb));
  if (const char* path = std::getenv("DOPPEL_DUMP_DTB")) {
    std::ofstream(path, std::ios::binary)
        .write(reinterpret_cast<const char*>(m_dtb.data()), static_cast<std::streamsize>(m_dtb.size()));
  }

  for (unsigned h = 0; h < harts; ++h) {
    m_engine->set_reset_state(h, {layout.entry, h, layout.dtb_addr, layout.fw_info_addr});
    m_vcpus.push_back(TRY(m_engine->create_vcpu(h)));
  }
  spdlog::debug("riscv64: {} harts, {} MiB RAM, kernel at {:#x}, dtb at {:#x}, {} virtio devices",
                harts, m_config.memory >> 20, layout.kernel_addr, layout.dtb_addr, m_virtio.size());
  return {};
}

void MachineRiscv64::request_stop(int exit_code, std::string reason) {
  {
    std::lock_guard lock(m_stop_mutex);
    if (m_stopping.load(std::memory_order_relaxed)) return;
    m_exit_code = exit_code;
    m_stop_reason = std::move(reason);
    m_stopping.store(true, std::memory_order_release);
  }
  for (auto& vcpu : m_vcpus) vcpu->kick();
}

void MachineRiscv64::hart_thread(unsigned index) {
  Vcpu& vcpu = *m_vcpus[index];
  while (!m_stopping.load(std::memory_order_acquire)) {
    auto result = vcpu.run();
    if (!result.ok()) {
      request_stop(kExitCrash, fmt::format("hart {}: {}", index, result.error().message()));
      return;
    }
    const VcpuExit& exit = *result;
    switch (exit.reason) {
      case VcpuExit::Reason::kKicked:
        break;  // the loop condition decides
      case VcpuExit::Reason::kMmioRead: {
        uint64_t value = 0;
        if (!m_mmio.read(exit.addr, exit.size, value))
          DOPPEL_GUEST_WARN("hart {}: read of {} bytes at {:#x}: no device", index, exit.size,
                            exit.addr);
        vcpu.set_io_result(value);
        break;
      }
      case VcpuExit::Reason::kMmioWrite:
        if (!m_mmio.write(exit.addr, exit.size, exit.data))
          DOPPEL_GUEST_WARN("hart {}: write of {} bytes at {:#x}: no device", index, exit.size,
                            exit.addr);
        break;
      case VcpuExit::Reason::kPioRead:
        vcpu.set_io_result(0);  // no port I/O on riscv64
        break;
      case VcpuExit::Reason::kPioWrite:
        break;
      case VcpuExit::Reason::kPowerOff:
        request_stop(kExitPowerOff, "the guest powered off");
        break;
      case VcpuExit::Reason::kReset:
        request_stop(kExitReboot, "the guest rebooted");
        break;
      case VcpuExit::Reason::kCrash:
        request_stop(kExitCrash, fmt::format("hart {}: {}", index, exit.detail));
        break;
    }
  }
}

Result<int> MachineRiscv64::run() {
  std::vector<std::thread> threads;
  for (unsigned h = 0; h < m_vcpus.size(); ++h) threads.emplace_back([this, h] { hart_thread(h); });
  for (auto& t : threads) t.join();

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
  Uart16550* uart = nullptr;          // GUARDED_BY(mutex)
  MachineRiscv64* machine = nullptr;  // GUARDED_BY(mutex)
  bool quit = false;                  // GUARDED_BY(mutex)

  void attach(MachineRiscv64* m) {
    std::lock_guard lock(mutex);
    machine = m;
    uart = m ? &m->uart() : nullptr;
    if (m && quit) m->request_stop(kExitQuit, "quit from the console (Ctrl-A x)");
  }
};

}  // namespace

Result<int> run_riscv64_emu(const VmConfig& config) {
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
        if (router.machine) router.machine->request_stop(kExitQuit, "quit from the console (Ctrl-A x)");
      });

  for (;;) {
    console->forget_kernel_panic();
    auto machine = MachineRiscv64::create(config, *console);
    if (!machine.ok()) {
      console->stop_input();
      return machine.release_error();
    }
    router.attach(machine->get());
    console->notify_room();  // input that arrived before there was a UART
    auto code = (*machine)->run();
    router.attach(nullptr);
    if (!code.ok() || *code != kExitReboot || config.on_reboot != OnReboot::kRestart) {
      console->stop_input();
      return code;
    }
    spdlog::info("riscv64: the guest rebooted; starting it again (--on-reboot=restart)");
  }
}

}  // namespace doppel
