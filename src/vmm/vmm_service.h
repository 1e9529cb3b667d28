// One doppel process: the console, at most one Machine at a time (a fresh one after each
// guest reboot with --on-reboot=restart), and the VmControl a control plane drives.
//
// A VM comes from one of four places: a VmConfig given at start (`doppel run`), a
// snapshot given at start (`doppel restore`), a live migration's source (`doppel run
// --migrate-from`), or the API later (InstanceStart after pre-boot configuration, or PUT
// /snapshot/load on a process started with only --api-sock).
//
// Snapshot directories (`doppel ctl snapshot DIR`, `doppel restore DIR`):
//   DIR/state        the state file (vmm/state_file.h); it also holds the VM's config and,
//                    for a Diff, the memory files it stands on
//   DIR/memory       guest RAM (Full), or DIR/memory.diff (Diff: the changed pages)
//   DIR/vm.json      the VM's configuration, the --config schema
//
// Threads: run() on the main thread. The VmControl calls from the API thread. The
// console's input thread routes input to the current machine's UART. m_mutex guards the
// current machine pointer and the pending start; the machine's own calls are made without
// it held (Machine serialises them), except that the machine is never destroyed while a
// control call uses it (m_busy).
#pragma once

#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "base/result.h"
#include "vmm/console.h"
#include "vmm/machine.h"
#include "vmm/vm_config.h"
#include "vmm/vm_control.h"

namespace doppel {

// A snapshot directory's files (see above).
SnapshotFiles snapshot_dir_files(const std::string& dir);

// Reads the VmConfig a state file carries and applies the request's device overrides.
Result<VmConfig> snapshot_config(const SnapshotLoadRequest& request);
// The same, from a state file already read.
Result<VmConfig> snapshot_config(const StateFile& state, const SnapshotLoadRequest& request);

// Folds DIR/memory.diff and the memory it stands on into a full DIR/memory, so DIR no longer
// depends on its base (which is left untouched: running clones may map it).
Result<void> merge_snapshot(const std::string& dir);

class VmmService final : public VmControl {
 public:
  struct Options {
    std::string id = "doppel";
    std::string version;              // reported as vmm_version
    bool interactive_console = true;  // the console reads stdin (Ctrl-A x quits)
    // Main thread, around each machine's run(): before its vCPUs start (an error stops
    // the process), and once it ended, with its exit code, before it is destroyed. The
    // gdb stub (gdb/gdb_server.h) uses them.
    std::function<Result<void>(Machine&)> before_run;
    std::function<void(int exit_code)> after_run;
    // The main thread enters ThreadKind::kMain (its seccomp filter) once the VM runs, unless
    // --on-reboot=restart will have it build another machine.
    bool seal_main_thread = false;
  };
  static Result<std::unique_ptr<VmmService>> create(const Options& options);
  ~VmmService() override;

  // Main thread: boots `boot`, or restores `restore`, or (neither) waits for a control call
  // to start or load a VM; runs it to its end and returns the exit code.
  Result<int> run(std::optional<VmConfig> boot, std::optional<SnapshotLoadRequest> restore);
  // Main thread: waits on `endpoint` (tcp:HOST:PORT or unix:PATH) for one source to
  // migrate `config`'s VM here, then runs it to its end.
  Result<int> run_incoming(const VmConfig& config, const std::string& endpoint);

  // VmControl
  InstanceInfo info() override;
  nlohmann::json vm_config() override;
  Result<void> start(const VmConfig& config) override;
  Result<void> pause() override;
  Result<void> resume() override;
  Result<void> create_snapshot(const SnapshotCreateRequest& request) override;
  Result<void> load_snapshot(const SnapshotLoadRequest& request) override;
  Result<MigrationStatus> migrate(const MigrationRequest& request) override;
  MigrationStatus migration_status() override;
  Result<void> send_ctrl_alt_del() override;
  nlohmann::json metrics() override;
  Result<void> update_rate_limiters(const RateLimiterUpdate& update) override;

 private:
  explicit VmmService(const Options& options) : m_options(options) {}
  // The pending start, taken by run().
  struct Pending {
    std::optional<VmConfig> boot;
    std::optional<SnapshotLoadRequest> restore;
    std::optional<std::string> migrate_from;  // with boot: the VM comes from a source there
  };
  Result<std::unique_ptr<Machine>> make_machine(const Pending& pending);
  // run()'s loop over the pending start (and the starts after a reboot).
  Result<int> run_pending(bool from_api);
  // Hands run() a VM to start and waits for the outcome.
  Result<void> post(Pending pending, std::string_view what);
  // Calls f(machine) with the current machine kept alive, or fails if there is none.
  template <typename F>
  auto with_machine(std::string_view what, F&& f) -> decltype(f(std::declval<Machine&>()));
  void route_input_to(Machine* machine);

  // Fails while a live migration is under way: it holds the VM (QEMU refuses the same).
  Result<void> check_not_migrating(std::string_view what) const;

  Options m_options;
  std::unique_ptr<Console> m_console;
  MigrationTracker m_migration;

  std::mutex m_mutex;
  std::condition_variable m_cv;
  std::optional<Pending> m_pending;         // GUARDED_BY(m_mutex)
  std::string m_pending_error;              // GUARDED_BY(m_mutex): why the last start failed
  bool m_start_done = false;                // GUARDED_BY(m_mutex)
  bool m_started = false;                   // GUARDED_BY(m_mutex): a VM was started once
  Machine* m_machine = nullptr;             // GUARDED_BY(m_mutex): the current one, if any
  int m_busy = 0;                           // GUARDED_BY(m_mutex): control calls using it
  bool m_stopped = false;                   // GUARDED_BY(m_mutex): the last VM ended
  std::optional<VmConfig> m_config;         // GUARDED_BY(m_mutex): the VM's config
  // A diff snapshot stands on the memory files of the VM's last snapshot or restore.
  std::vector<std::string> m_memory_chain;  // GUARDED_BY(m_mutex)

  // Console input routing (the console's input thread).
  std::mutex m_input_mutex;
  Machine* m_input_machine = nullptr;  // GUARDED_BY(m_input_mutex)
  bool m_quit = false;                 // GUARDED_BY(m_input_mutex)
};

}  // namespace doppel
