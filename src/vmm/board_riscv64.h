// The riscv64 board on the emulation engine: RAM, the MMIO bus, the Timebase, CLINT, PLIC,
// 16550 UART, sifive,test1 finisher and virtio-mmio devices. The layout is
// engines/emu/riscv64/memory_map.h; the boot is firmware (OpenSBI fw_dynamic or fw_jump,
// any M-mode program, or none) + a kernel (Linux Image, ELF or raw binary; boot/riscv64/).
// The Machine runs it (vmm/machine.h).
//
// State file sections: "rv64.timebase", "rv64.hart.<i>", "rv64.clint", "rv64.plic".
#pragma once

#include <memory>
#include <vector>

#include "vmm/board.h"
#include "devices/legacy/sifive_finisher.h"
#include "engines/emu/riscv64/clint.h"
#include "engines/emu/riscv64/emu_engine.h"
#include "engines/emu/riscv64/plic.h"
#include "engines/emu/riscv64/timebase.h"

namespace doppel {


class BoardRiscv64 final : public Board {
 public:
  static Result<std::unique_ptr<BoardRiscv64>> create(const VmConfig& config, BoardContext context);
  ~BoardRiscv64() override;

  GuestMemory& memory() override { return *m_memory; }
  const Bus& mmio() const override { return m_mmio; }
  unsigned vcpu_count() const override { return static_cast<unsigned>(m_vcpus.size()); }
  Vcpu& vcpu(unsigned index) override { return *m_vcpus.at(index); }
  Uart16550& uart() override { return *m_uart; }
  std::span<const std::unique_ptr<virtio::VirtioMmio>> virtio() const override { return m_virtio; }

  Result<void> freeze_clocks() override;
  Result<void> thaw_clocks() override;
  Result<void> save(StateFile& out) override;
  Result<void> restore(const StateFile& in) override;
  Result<void> begin_dirty_epoch() override;
  // There is no keyboard (Firecracker likewise has SendCtrlAltDel on x86_64 only).
  Result<void> send_ctrl_alt_del() override {
    return Error::format("not supported on riscv64 (there is no keyboard controller)");
  }

  // The device tree the guest was given (empty after a restore: it is in guest RAM).
  const std::vector<uint8_t>& device_tree() const { return m_dtb; }
  rv64::EmuEngine& engine() { return *m_engine; }

 private:
  BoardRiscv64(const VmConfig& config, BoardContext context)
      : m_config(config), m_context(std::move(context)) {}
  Result<void> build();

  const VmConfig m_config;
  BoardContext m_context;

  // Declaration order is teardown order reversed: the engine refers to memory, bus and
  // timebase; CLINT and PLIC to the engine's pins; devices to memory and PLIC lines; the
  // vCPUs to the engine.
  std::unique_ptr<GuestMemory> m_memory;
  Bus m_mmio{"riscv64 mmio"};
  rv64::Timebase m_timebase;
  std::unique_ptr<rv64::EmuEngine> m_engine;
  std::unique_ptr<rv64::Clint> m_clint;
  std::unique_ptr<rv64::Plic> m_plic;
  std::unique_ptr<Uart16550> m_uart;
  std::unique_ptr<SifiveFinisher> m_test;
  std::vector<std::unique_ptr<virtio::VirtioMmio>> m_virtio;
  std::vector<std::unique_ptr<Vcpu>> m_vcpus;
  std::vector<uint8_t> m_dtb;
};

}  // namespace doppel
