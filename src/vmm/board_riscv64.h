// The riscv64 machine on the emulation engine: RAM, the MMIO bus, Timebase, CLINT, PLIC,
// 16550 UART, sifive,test1 finisher, virtio-mmio devices, and one host thread per hart.
// The layout is engines/emu/riscv64/memory_map.h; the boot is OpenSBI fw_dynamic + Linux
// (boot/riscv64/).
//
// Threads: run() is called on the main thread; it starts one thread per hart and joins them.
// request_stop() may be called from any thread (a hart writing the finisher, the console's
// input thread on Ctrl-A x); the first request decides the exit code.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "base/result.h"
#include "core/bus.h"
#include "core/engine.h"
#include "core/guest_memory.h"
#include "devices/legacy/sifive_finisher.h"
#include "devices/legacy/uart_16550.h"
#include "devices/virtio/virtio_mmio.h"
#include "engines/emu/riscv64/clint.h"
#include "engines/emu/riscv64/emu_engine.h"
#include "engines/emu/riscv64/plic.h"
#include "engines/emu/riscv64/timebase.h"
#include "vmm/console.h"
#include "vmm/vm_config.h"

namespace doppel {

class MachineRiscv64 {
 public:
  // Builds the machine and loads the guest; `console` outlives the machine. The UART's
  // output goes to the console; the console's input is routed by the caller (uart()).
  static Result<std::unique_ptr<MachineRiscv64>> create(const VmConfig& config, Console& console);
  ~MachineRiscv64();
  MachineRiscv64(const MachineRiscv64&) = delete;
  MachineRiscv64& operator=(const MachineRiscv64&) = delete;

  // Runs the harts until the guest powers off, reboots or dies, or request_stop(); returns
  // the exit code (vmm/exit_codes.h). Reports a dead guest on stderr with its last lines.
  Result<int> run();

  // Stops every hart soon; the first caller's code and reason win.
  void request_stop(int exit_code, std::string reason);

  Uart16550& uart() { return *m_uart; }
  const std::vector<uint8_t>& device_tree() const { return m_dtb; }

 private:
  MachineRiscv64(const VmConfig& config, Console& console) : m_config(config), m_console(console) {}
  Result<void> build();
  void hart_thread(unsigned index);

  const VmConfig m_config;
  Console& m_console;

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

  std::atomic<bool> m_stopping{false};
  std::mutex m_stop_mutex;
  int m_exit_code = 0;          // GUARDED_BY(m_stop_mutex)
  std::string m_stop_reason;    // GUARDED_BY(m_stop_mutex)
};

// The whole run of `doppel run --arch riscv64 --engine emu`: the console, the machine, and
// reboots when config.on_reboot is kRestart.
Result<int> run_riscv64_emu(const VmConfig& config);

}  // namespace doppel
