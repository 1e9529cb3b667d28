// A VM's resource limits (vmm/resource_limits.h) as a cgroup (sandbox/cgroup.h): what
// `doppel run` and `doppel jail` write, and the supervised run.
#pragma once

#include <functional>
#include <optional>
#include <string>

#include "base/result.h"
#include "sandbox/resources.h"
#include "vmm/vm_config.h"

namespace doppel {

// The limit flags of `doppel run` and `doppel jail` (--cpu-quota, --memory-limit,
// --io-limit, --pids-limit), as given.
struct LimitFlags {
  std::optional<std::string> cpu_quota, memory_limit, io_limit, pids_limit;
};
// Parses the flags given into `limits`; the others keep their values (the VM file's).
// Errors name the flag.
[[nodiscard]] Result<void> apply_limit_flags(const LimitFlags& flags, ResourceLimits& limits);

// The cgroup files' values for `config.limits`; --io-limit applies to the block device
// holding each disk image (the whole disk, for a partition). Errors name the flag.
[[nodiscard]] Result<sandbox::Resources> cgroup_resources(const VmConfig& config, bool unified,
                                                          bool have_memsw);

// Runs `body` (the VM) in a child process in the cgroup `cgroup_path` with `config`'s
// limits; returns the child's exit code, or an error before anything ran.
[[nodiscard]] Result<int> run_limited(const VmConfig& config, const std::string& cgroup_path,
                                      const std::string& label, unsigned long clone_flags,
                                      const std::function<void(pid_t)>& on_started,
                                      const std::function<int()>& body);

}  // namespace doppel
