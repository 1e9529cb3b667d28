#include "vmm/board_riscv64.h"

#include <cstdlib>
#include <fstream>

#include "base/log.h"
#include "boot/riscv64/fdt.h"
#include "boot/riscv64/loader.h"
#include "engines/emu/riscv64/hart.h"
#include "engines/emu/riscv64/memory_map.h"
#include "vmm/exit_codes.h"
#include "vmm/state_codec.h"
#include "vmm/virtio_devices.h"

namespace doppel {

namespace mm = rv64::memmap;

BoardRiscv64::~BoardRiscv64() = default;

Result<std::unique_ptr<BoardRiscv64>> BoardRiscv64::create(const VmConfig& config,
                                                           BoardContext context) {
  std::unique_ptr<BoardRiscv64> b(new BoardRiscv64(config, std::move(context)));
  TRY(b->build());
  return b;
}

Result<void> BoardRiscv64::build() {
  const unsigned harts = m_config.cpus;
  const bool restoring = !m_context.memory_file.empty() || m_context.incoming;
  if (!m_context.memory_file.empty())
    m_memory = TRY(GuestMemory::create_from_file({{mm::kRamBase, m_config.memory}},
                                                 m_context.memory_file));
  else
    m_memory = TRY(GuestMemory::create({{mm::kRamBase, m_config.memory}}, m_config.memory_shared));
  m_engine = TRY(rv64::EmuEngine::create(*m_memory, m_mmio, m_timebase, harts));
  if (m_config.jit) TRY(m_engine->enable_jit(m_config.jit_cache));

  std::vector<rv64::InterruptPins*> pins;
  for (unsigned h = 0; h < harts; ++h) pins.push_back(&m_engine->pins(h));
  m_clint = std::make_unique<rv64::Clint>(m_timebase, pins);
  m_plic = std::make_unique<rv64::Plic>(mm::kPlicSources, pins);
  m_uart = std::make_unique<Uart16550>(m_plic->line(mm::kUartIrq), 0,
                                       [this](uint8_t b) { m_context.console.write_output(b); });
  m_uart->set_rx_room_callback([this] { m_context.console.notify_room(); });
  m_test = std::make_unique<SifiveFinisher>([this](SifiveFinisher::Action action, uint16_t code) {
    switch (action) {
      case SifiveFinisher::Action::kPowerOff:
        m_context.request_stop(kExitPowerOff, "the guest powered off");
        break;
      case SifiveFinisher::Action::kReset:
        m_context.request_stop(kExitReboot, "the guest rebooted");
        break;
      case SifiveFinisher::Action::kFail:
        m_context.request_stop(kExitCrash, fmt::format("the guest reported a failure (code {})", code));
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
  }, m_context.incoming));
  rv64boot::FdtDescription fdt;
  for (size_t i = 0; i < m_virtio.size(); ++i) {
    const auto slot = static_cast<unsigned>(i);
    TRY(m_mmio.insert(mm::virtio_base(slot), virtio::kMmioWindowSize, *m_virtio[i]));
    fdt.virtio.push_back({mm::virtio_base(slot), virtio::kMmioWindowSize, mm::virtio_irq(slot)});
  }

  if (restoring) {
    // RAM already holds the firmware, kernel and device tree; the harts' state comes from
    // restore().
    for (unsigned h = 0; h < harts; ++h) m_vcpus.push_back(TRY(m_engine->create_vcpu(h)));
    return ok();
  }

  // Guest images, then the device tree that describes them.
  const rv64boot::BootLayout layout = TRY(rv64boot::load_images(
      *m_memory, mm::kRamBase, firmware_to_load(m_config), m_config.kernel, m_config.initrd));
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
  spdlog::debug("riscv64: {} harts, {} MiB RAM, {} at {:#x} (entry {:#x}), harts start at {:#x} "
                "({}), dtb at {:#x}, {} virtio devices",
                harts, m_config.memory >> 20, rv64boot::to_string(layout.kernel_kind),
                layout.kernel_addr, layout.kernel_entry, layout.entry,
                layout.has_firmware ? "firmware" : "no firmware: the kernel in M-mode",
                layout.dtb_addr, m_virtio.size());
  return ok();
}


Result<void> BoardRiscv64::freeze_clocks() {
  m_timebase.freeze();
  m_clint->timebase_changed();
  return ok();
}

Result<void> BoardRiscv64::thaw_clocks() {
  m_timebase.thaw();
  m_clint->timebase_changed();
  return ok();
}

Result<void> BoardRiscv64::save(StateFile& out) {
  out.sections.push_back(make_section("rv64.timebase", rv64::TimebaseState{.ticks = m_timebase.now()}));
  for (unsigned h = 0; h < m_engine->hart_count(); ++h)
    out.sections.push_back(make_section(fmt::format("rv64.hart.{}", h), m_engine->hart(h).save()));
  out.sections.push_back(make_section("rv64.clint", m_clint->save()));
  out.sections.push_back(make_section("rv64.plic", m_plic->save()));
  return ok();
}

Result<void> BoardRiscv64::restore(const StateFile& in) {
  const auto timebase = TRY(read_section<rv64::TimebaseState>(in, "rv64.timebase"));
  const unsigned harts = m_engine->hart_count();
  if (in.find(fmt::format("rv64.hart.{}", harts)) || !in.find(fmt::format("rv64.hart.{}", harts - 1)))
    return Error::format("the snapshot's hart count differs from this VM's ({} harts)", harts);
  for (unsigned h = 0; h < harts; ++h) {
    const std::string name = fmt::format("rv64.hart.{}", h);
    TRY(m_engine->hart(h).restore(TRY(read_section<rv64::HartState>(in, name))));
  }
  TRY(m_plic->restore(TRY(read_section<rv64::PlicState>(in, "rv64.plic"))));
  m_timebase.set(timebase.ticks);
  TRY(m_clint->restore(TRY(read_section<rv64::ClintState>(in, "rv64.clint"))));
  m_clint->timebase_changed();
  return ok();
}

Result<void> BoardRiscv64::begin_dirty_epoch() {
  // The harts notice the new dirty generation when they run again and drop their write
  // TLB entries, so the next store to every page marks it (hart.h).
  m_memory->clear_dirty();
  return ok();
}

}  // namespace doppel
