// `doppel ctl --sock PATH pause|resume|info|metrics|snapshot DIR [--diff]|migrate DEST|ctrl-alt-del`:
// a client of the control API (api_server.h) for people and scripts.
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json_fwd.hpp>

#include "base/result.h"

namespace doppel {

struct CtlOptions {
  enum class Command { kPause, kResume, kInfo, kMetrics, kSnapshot, kMigrate, kCtrlAltDel };
  std::string socket_path;
  Command command = Command::kInfo;
  std::string snapshot_dir;  // kSnapshot: created if needed; holds state and memory(.diff)
  bool diff = false;         // kSnapshot: a Diff snapshot (memory.diff) instead of Full (memory)
  std::string destination;   // kMigrate: tcp:HOST:PORT or unix:PATH
  uint64_t downtime_ms = 0;  // kMigrate: 0 for the server's default
  uint64_t max_bandwidth = 0;  // kMigrate: bytes per second, 0 for no limit
  bool compress = false;       // kMigrate: zstd-compressed pages
};

// Sends the command's request and returns what to print on stdout: pretty JSON for info
// and metrics and the migration's report, nothing for the others. An answer other than 2xx is an Error carrying the
// server's fault_message.
Result<std::string> run_ctl(const CtlOptions& options);

// One line of `ctl migrate`'s progress from GET /migrate's object: a bar of bar_width
// (none if 0), the round, its pages sent, the bytes sent, the dirty rate and the expected
// downtime.
std::string migration_progress_line(const nlohmann::json& status, unsigned bar_width);

// run_ctl for the command line: prints its output, or "doppel: <message>" on stderr.
// Returns the process exit code (0 or kExitError).
int ctl_main(const CtlOptions& options);

}  // namespace doppel
