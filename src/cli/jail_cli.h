// `doppel jail`: runs `doppel run` in a jail (sandbox/jail.h) in its own cgroup, after
// Firecracker's jailer.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "cli/vm_limits.h"

namespace CLI {
class App;
}

namespace doppel {

struct JailFlags {
  std::string id;
  std::optional<int64_t> uid, gid;
  std::string chroot_base = "/srv/jailer";
  std::string netns;
  LimitFlags limits;
  uint64_t rlimit_nofile = 2048;
  std::optional<uint64_t> rlimit_fsize;
  std::vector<std::string> run_args;  // after `--`
};

CLI::App* add_jail_command(CLI::App& app, JailFlags& flags);
int jail_command(const JailFlags& flags);

}  // namespace doppel
