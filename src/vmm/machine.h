// The Machine: one VM of any architecture. It owns the board (vmm/board.h), one host
// thread per vCPU and their states, and the one run loop: a switch on VcpuExit that is the
// same for both engines. Pause, snapshot and restore are states of that loop, not special
// cases beside it (Firecracker's vCPU state machine).
//
//   vCPU thread:  Running --pause--> Parked --resume--> Running
//                    \________________ stop ____________/--> Exited
//
// pause() asks every vCPU to park, kicks each out of guest code (the emulator's WFI and
// KVM's HLT included) and waits until all are parked; then it quiesces the devices and
// stops the guest's clocks. resume() undoes it in reverse order.
//
// Threads: run() on the thread that created the Machine; it returns when the guest stops.
// request_stop(), pause(), resume(), create_snapshot() and the getters from any other
// thread (the API thread, the console's input thread, device threads), never from a vCPU
// thread (a vCPU cannot wait for itself to park). m_control_mutex serialises pause,
// resume and snapshots; lock order: m_control_mutex -> m_mutex.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "base/result.h"
#include "base/unique_fd.h"
#include "vmm/board.h"
#include "vmm/console.h"
#include "vmm/vm_config.h"
#include "vmm/vm_control.h"

namespace doppel {

// Per-vCPU exit counters (GET /metrics). Written by the vCPU's thread, read by any.
struct VcpuExitCounters {
  std::atomic<uint64_t> mmio_reads{0}, mmio_writes{0}, pio_reads{0}, pio_writes{0}, kicks{0},
      power_off{0}, reset{0}, crash{0};
};

// How long the lifecycle operations took, most recent (GET /metrics).
struct LifecycleTimes {
  double pause_ms = 0, resume_ms = 0, snapshot_ms = 0, restore_ms = 0;
  uint64_t pauses = 0, snapshots = 0;
};

// A snapshot on disk: the files a restore reads.
struct SnapshotFiles {
  std::string state_path;
  std::string mem_path;                // a full memory file
  std::vector<std::string> diff_paths; // applied on top of mem_path, in order
};

// A live migration's status: written by the thread migrating, read by any (GET /migrate).
class MigrationTracker {
 public:
  template <typename F>
  void update(F&& change) {
    std::lock_guard lock(m_mutex);
    change(m_status);
  }
  MigrationStatus get() const {
    std::lock_guard lock(m_mutex);
    return m_status;
  }

 private:
  mutable std::mutex m_mutex;
  MigrationStatus m_status;  // GUARDED_BY(m_mutex)
};

class Machine {
 public:
  // Builds a VM that boots from its images. `console` outlives the machine.
  static Result<std::unique_ptr<Machine>> create(const VmConfig& config, Console& console);
  // Builds a VM from a snapshot; it starts Paused (run() then waits for resume()) unless
  // `resume` is set. config is the snapshot's own (vm.json) with any overrides applied.
  static Result<std::unique_ptr<Machine>> restore(const VmConfig& config, Console& console,
                                                  const SnapshotFiles& files, bool resume);
  // The same from a state file already read (files.state_path then only names it).
  static Result<std::unique_ptr<Machine>> restore(const VmConfig& config, Console& console,
                                                  const StateFile& state,
                                                  const SnapshotFiles& files, bool resume);
  // The destination of a live migration: builds the VM's devices, then reads the stream
  // on `fd` (RAM, then the state) and answers the source once the vCPUs run. config is
  // the destination's own (the source's, with its disks and nets).
  static Result<std::unique_ptr<Machine>> incoming(const VmConfig& config, Console& console,
                                                   UniqueFd connection);
  ~Machine();
  Machine(const Machine&) = delete;
  Machine& operator=(const Machine&) = delete;

  // Runs the vCPUs until the guest powers off, reboots or dies, or request_stop(); returns
  // the exit code (vmm/exit_codes.h). Reports a dead guest on stderr with its last lines.
  // seal_main_thread: once the vCPU threads run, the calling thread enters ThreadKind::kMain
  // (base/thread_seal.h: its seccomp filter), for a process that builds no further machine.
  Result<int> run(bool seal_main_thread = false);
  // Stops every vCPU soon (paused ones too); the first caller's code and reason win.
  void request_stop(int exit_code, std::string reason);

  Result<void> pause();
  Result<void> resume();
  // Paused only. Full: state + every page of RAM; Diff: state + the pages written since
  // the previous snapshot (or since the restore). Writes config_path (vm.json) if set.
  Result<void> create_snapshot(const SnapshotCreateRequest& request);
  // Running only. Pre-copy to the destination connected on `fd`: all of RAM while the
  // guest runs, then what it wrote meanwhile, round after round, until the rest fits the
  // downtime; then pause, send the rest and the state, and wait for the destination's
  // answer. On success the machine stops (exit code 0); on any failure it runs on
  // (resumed if this paused it) and the error says what happened. Over a Unix socket with
  // shared guest RAM (VmConfig::memory_shared) there are no rounds: the machine pauses and
  // hands the memory file over with the state. `tracker` follows it as it goes.
  Result<MigrationStatus> migrate_to(int fd, const MigrationRequest& options,
                                     MigrationTracker& tracker);

  VmState state() const;
  const VmConfig& config() const { return m_config; }
  // config() with the rate limiters as they are now (an API PATCH changes them): what a
  // snapshot records, so that a restored VM keeps them. Threads: any.
  VmConfig config_in_effect();

  // What a state file says beyond device state: the VM's configuration (section
  // "vm.config", the --config JSON schema) and the memory files the snapshot stands on
  // ("memory.chain": a full memory file, then the diffs applied on top, in order).
  // `path` names the file in errors.
  static Result<VmConfig> config_from_state(const StateFile& state, const std::string& path);
  static Result<std::vector<std::string>> memory_chain_from_state(const StateFile& state,
                                                                  const std::string& path);
  // Stores the chain relative to the directory of `state_path`, where the file will be.
  static void set_memory_chain(StateFile& state, const std::string& state_path,
                               const std::vector<std::string>& chain);
  Board& board() { return *m_board; }
  nlohmann::json metrics() const;

  // ---- The debugger (gdb/), from its one thread, never from a vCPU thread ----
  // A debugger stops the VM with the same pause as the API (vCPUs parked, devices
  // quiesced, clocks frozen); a vCPU that hits a breakpoint, a watchpoint or the end of a
  // single step (a kDebug exit) tells every vCPU to park, and the debugger then pauses.
  struct DebugStop {
    unsigned vcpu = 0;
    DebugStopKind kind = DebugStopKind::kBreakpoint;
    uint64_t addr = 0;  // a watchpoint's accessed address
  };
  // Before run(): the vCPUs park before their first instruction until debug_resume()
  // (--gdb-wait).
  Result<void> hold_at_start();
  // Stops every vCPU (a pause) unless the VM is paused already.
  Result<void> debug_stop();
  // Paused only: gives vCPU i controls[i] (breakpoints, watchpoints, single step), forgets
  // the last debug stop, and resumes.
  Result<void> debug_resume(const std::vector<DebugControl>& controls);
  // The first debug exit since the last debug_resume(), if any (kept until then).
  std::optional<DebugStop> last_debug_stop();
  // An eventfd the Machine writes to when a vCPU stops for the debugger or the VM stops
  // (-1: none). The caller keeps it open while the Machine lives.
  void set_debug_notify_fd(int fd) { m_debug_notify_fd.store(fd, std::memory_order_release); }
  bool stopping() const;

 private:
  enum class Target { kRun, kPark, kExit };
  Machine(const VmConfig& config, Console& console) : m_config(config), m_console(console) {}
  Result<void> build(const std::string& memory_file, bool incoming = false);
  // Pauses and collects the pages written since the last call (and starts a new epoch).
  Result<std::vector<uint64_t>> pause_and_take_dirty();
  void vcpu_thread(unsigned index);
  void handle_exit(unsigned index, Vcpu& vcpu, const VcpuExit& exit);
  // vCPU thread: a kDebug exit (machine_debug.cpp).
  void on_debug_exit(unsigned index, const VcpuExit& exit);
  // Parks every vCPU (m_control_mutex held); false if the machine stopped meanwhile.
  bool park_all();
  void unpark_all();
  // pause() and resume() with m_control_mutex held.
  Result<void> pause_locked();
  Result<void> resume_locked();
  Result<void> save_state(StateFile& out);
  Result<void> restore_state(const StateFile& in);

  const VmConfig m_config;
  Console& m_console;
  std::optional<std::chrono::steady_clock::time_point> m_restore_began;  // a restored VM
  // An incoming migration's connection: run() answers the source on it once the vCPUs run.
  UniqueFd m_migration_connection;
  std::unique_ptr<Board> m_board;
  std::vector<std::unique_ptr<VcpuExitCounters>> m_counters;  // one per vCPU

  std::mutex m_control_mutex;  // one lifecycle operation at a time
  // The memory files this VM's RAM stands on (its last snapshot's or restore's); empty
  // until then, and a Diff needs them as its base. GUARDED_BY(m_control_mutex)
  std::vector<std::string> m_memory_chain;

  mutable std::mutex m_mutex;
  std::condition_variable m_cv;
  // Written under m_mutex; vCPU threads read it without the lock between runs.
  std::atomic<Target> m_target{Target::kRun};
  LifecycleTimes m_times;          // GUARDED_BY(m_mutex)
  unsigned m_parked = 0;           // GUARDED_BY(m_mutex): vCPU threads parked now
  unsigned m_exited = 0;           // GUARDED_BY(m_mutex): vCPU threads that have ended
  bool m_started = false;          // GUARDED_BY(m_mutex): run() has begun
  bool m_paused = false;           // GUARDED_BY(m_mutex): a pause() is in effect
  bool m_stopping = false;         // GUARDED_BY(m_mutex)
  int m_exit_code = 0;             // GUARDED_BY(m_mutex)
  std::string m_stop_reason;       // GUARDED_BY(m_mutex)
  std::optional<DebugStop> m_debug_stop;  // GUARDED_BY(m_mutex)
  std::atomic<int> m_debug_notify_fd{-1};
  void notify_debugger();
};

}  // namespace doppel
