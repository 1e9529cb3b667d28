// A board: what differs between doppel's machines (memory map, devices, engine, boot).
// The Machine (vmm/machine.h) owns one and runs it: vCPU threads, their states, the exit
// switch, pause, snapshots. A board only builds the hardware and answers the hooks below.
//
// Threads: the hooks say which thread calls them. The Machine calls the "parked" hooks only
// while every vCPU thread is parked outside guest code.
#pragma once

#include <functional>
#include <memory>
#include <span>
#include <string>

#include "base/result.h"
#include "core/bus.h"
#include "core/engine.h"
#include "core/guest_memory.h"
#include "devices/legacy/uart_16550.h"
#include "devices/virtio/virtio_mmio.h"
#include "vmm/console.h"
#include "vmm/state_file.h"
#include "vmm/vm_config.h"

namespace doppel {

// What the Machine hands a board while it is built.
struct BoardContext {
  Console& console;
  // A device asks the machine to stop (the guest powered off, rebooted, failed). Any thread;
  // the first request decides the exit code.
  std::function<void(int exit_code, std::string reason)> request_stop;
  // A restore: guest RAM is this memory file (a snapshot's), mapped copy-on-write, and no
  // image is loaded. Empty to boot: fresh RAM, the images loaded into it.
  std::string memory_file;
  // An incoming migration: fresh RAM and no image loaded; the RAM and the state come from
  // the source.
  bool incoming = false;
};

class Board {
 public:
  virtual ~Board() = default;

  virtual GuestMemory& memory() = 0;
  virtual const Bus& mmio() const = 0;
  // Port I/O (x86); null where the architecture has none.
  virtual const Bus* pio() const { return nullptr; }
  virtual unsigned vcpu_count() const = 0;
  virtual Vcpu& vcpu(unsigned index) = 0;
  virtual Uart16550& uart() = 0;
  virtual std::span<const std::unique_ptr<virtio::VirtioMmio>> virtio() const = 0;

  // Main thread, around the vCPU threads: start() before the first starts, stop() after
  // the last has ended (a board's own threads, final device flushes).
  virtual Result<void> start() { return ok(); }
  virtual void stop() {}
  // vCPU thread, after run() returned and before its exit is handled.
  virtual void before_exit(unsigned /*vcpu*/, const VcpuExit& /*exit*/) {}
  // vCPU thread, after a port write was dispatched.
  virtual void after_port_write(uint64_t /*port*/) {}

  // Parked: the guest's clocks stop (pause) and go on (resume) without a jump.
  virtual Result<void> freeze_clocks() = 0;
  virtual Result<void> thaw_clocks() = 0;
  // Parked, devices quiesced: the board's own state (engine, CPUs, interrupt controllers,
  // legacy devices) into / from state file sections. The Machine saves the UART and the
  // virtio devices itself.
  virtual Result<void> save(StateFile& out) = 0;
  virtual Result<void> restore(const StateFile& in) = 0;
  // Parked: dirty-page tracking for diff snapshots. begin starts a new epoch (clears what
  // was collected); collect ORs what the engine knows into memory()'s dirty bitmap.
  virtual Result<void> begin_dirty_epoch() = 0;
  virtual Result<void> collect_dirty() { return ok(); }

  // Any thread: Ctrl-Alt-Del typed on the guest's keyboard (x86_64: the i8042, as in
  // Firecracker); an error on a machine without one.
  virtual Result<void> send_ctrl_alt_del() = 0;
};

// The board for config.arch/config.engine.
Result<std::unique_ptr<Board>> create_board(const VmConfig& config, BoardContext context);

}  // namespace doppel
