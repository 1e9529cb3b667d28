// What a control plane (the HTTP API in src/api/, `doppel ctl` through it) can ask of a
// doppel process: the actions of Firecracker's API, as plain calls. The vmm implements it
// (vmm/vmm_service.h); front ends only translate into these calls and back.
//
// Threads: every call may come from the API thread while vCPU threads run. Calls are
// serialised by the implementation; none of them blocks a vCPU for longer than a pause.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json_fwd.hpp>

#include "base/result.h"
#include "vmm/vm_config.h"

namespace doppel {

// The lifecycle a client sees (Firecracker's InstanceInfo.state names).
enum class VmState {
  kNotStarted,  // no VM yet: configure it (PUT /boot-source ...) or load a snapshot
  kRunning,
  kPaused,
  kStopped,     // the guest powered off, rebooted or died; the process is about to exit
};
std::string_view to_string(VmState state);  // "Not started", "Running", "Paused", "Stopped"

struct InstanceInfo {
  std::string id;           // --id, or "doppel"
  VmState state = VmState::kNotStarted;
  std::string vmm_version;  // DOPPEL_VERSION
  std::string app_name = "doppel";
};

enum class SnapshotType { kFull, kDiff };

struct SnapshotCreateRequest {
  SnapshotType type = SnapshotType::kFull;
  std::string snapshot_path;  // the state file
  std::string mem_file_path;  // guest RAM (Full) or the changed pages since the last snapshot (Diff)
  // Where the VM file (JSON, the --config schema) goes; empty: beside snapshot_path as
  // "<snapshot_path dir>/vm.json" when creating a snapshot directory.
  std::string config_path;
};

struct SnapshotLoadRequest {
  std::string snapshot_path;  // the state file
  std::string mem_file_path;  // mem_backend.backend_path (backend_type "File")
  bool resume_vm = false;
  // Overrides of the snapshot's own devices (a clone's own disk copy, TAP and MAC).
  std::optional<std::vector<DiskConfig>> disks;
  std::optional<std::vector<NetConfig>> nets;
  std::optional<VsockConfig> vsock;  // a clone's own socket path (and CID, if it likes)
  // What the client configured before loading (PUT /machine-config): a snapshot of another
  // architecture or engine is refused.
  std::optional<Arch> expect_arch;
  std::optional<EngineKind> expect_engine;
};

// Live migration (PUT /migrate, `doppel ctl migrate`): the source side.
struct MigrationRequest {
  std::string destination;  // tcp:HOST:PORT or unix:PATH, where a `doppel run --migrate-from` waits
  // The pause the source may take at the end: rounds go on while the pages left to send
  // would take longer at the measured bandwidth (QEMU's downtime-limit and its default).
  double downtime_ms = 300;
  uint64_t max_bandwidth = 0;  // bytes per second; 0: as fast as the connection goes
  unsigned max_rounds = 30;    // then the source pauses anyway
  bool compress = false;       // pages go zstd-compressed (for slow links)
};
// A migration as it goes (GET /migrate, QEMU's query-migrate) and, once it is over, its
// report (PUT /migrate's answer).
struct MigrationStatus {
  enum class State { kNone, kActive, kCompleted, kFailed };
  State state = State::kNone;
  std::string destination;
  bool shared_memory = false;   // local: RAM was handed over as memory files, not copied
  unsigned rounds = 0;          // copy rounds begun, the first (all of RAM) included
  uint64_t ram_bytes = 0;
  uint64_t bytes = 0;           // sent, headers included
  uint64_t pages = 0, zero_pages = 0;
  uint64_t round_pages = 0, round_pages_sent = 0;  // the round under way
  double bandwidth = 0;         // bytes per second over the last round
  double dirty_rate = 0;        // pages dirtied per second during the last round
  double expected_downtime_ms = 0;  // the estimate after the last round
  double downtime_ms = 0;       // source paused until the destination said it runs
  double total_ms = 0;          // so far, or in all
  std::string error;            // kFailed: why
};
constexpr std::string_view to_string(MigrationStatus::State state) {
  switch (state) {
    case MigrationStatus::State::kNone: return "none";
    case MigrationStatus::State::kActive: return "active";
    case MigrationStatus::State::kCompleted: return "completed";
    case MigrationStatus::State::kFailed: return "failed";
  }
  return "unknown";
}

// PATCH /drives/{id} (kDisk: `disk`) or /network-interfaces/{id} (kNet: `rx`, `tx`).
struct RateLimiterUpdate {
  enum class Kind { kDisk, kNet } kind = Kind::kDisk;
  size_t index = 0;  // among the VM's disks, or its network interfaces
  RateLimiterPatch disk, rx, tx;
};

class VmControl {
 public:
  virtual ~VmControl() = default;

  virtual InstanceInfo info() = 0;
  // The running (or configured) VM's configuration, as to_json(VmConfig) prints it.
  virtual nlohmann::json vm_config() = 0;

  // Pre-boot: the VM a client built with PUT /boot-source, /machine-config, /drives,
  // /network-interfaces, started by InstanceStart. Fails if a VM exists already.
  virtual Result<void> start(const VmConfig& config) = 0;
  // Parks every vCPU (and quiesces devices); fails unless Running.
  virtual Result<void> pause() = 0;
  // Fails unless Paused.
  virtual Result<void> resume() = 0;
  // The VM must be Paused (as in Firecracker).
  virtual Result<void> create_snapshot(const SnapshotCreateRequest& request) = 0;
  // Only on a process with no VM yet (NotStarted).
  virtual Result<void> load_snapshot(const SnapshotLoadRequest& request) = 0;
  // Running only: moves the VM to the destination; on success this process's VM stops
  // (exit code 0). On failure the VM runs on here.
  // Refused while another migration is under way.
  virtual Result<MigrationStatus> migrate(const MigrationRequest& request) = 0;
  // The migration under way, or the last one (state kNone if there was none). Any time,
  // while migrate() runs included.
  virtual MigrationStatus migration_status() = 0;
  // x86_64: an i8042 Ctrl-Alt-Del to the guest; riscv64: not supported (an error).
  virtual Result<void> send_ctrl_alt_del() = 0;
  // Counters as a JSON object (GET /metrics).
  virtual nlohmann::json metrics() = 0;
  // A running VM's rate limiters (PATCH /drives/{id}, /network-interfaces/{id}): new, full
  // buckets for the index-th disk or network interface.
  virtual Result<void> update_rate_limiters(const RateLimiterUpdate& update) {
    (void)update;
    return Error("rate limiters cannot be changed on this VM");
  }
};

}  // namespace doppel
