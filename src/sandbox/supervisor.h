// Runs a function in a child process placed in its own cgroup, and stays outside it to
// report how the child ended: the kernel's OOM killer ends only the processes of the cgroup
// whose memory limit was exceeded, so a parent outside it is still there to say so. Used by
// `doppel run` with resource limits and by `doppel jail` (Firecracker's jailer execs the VMM
// and leaves nothing to report; doppel keeps this small parent instead, which also removes
// the cgroup and, for the jail, the chroot when the VM is gone).
#pragma once

#include <sys/types.h>

#include <functional>
#include <string>

#include "base/result.h"
#include "sandbox/cgroup.h"
#include "sandbox/resources.h"

namespace doppel::sandbox {

struct SupervisorOptions {
  std::string cgroup_path;   // below each hierarchy's root, e.g. "/doppel/vm1"
  std::string cgroup_root = "/sys/fs/cgroup";
  Resources resources;
  unsigned long clone_flags = 0;  // CLONE_NEW*: namespaces the child starts in
  // What the reports call the child ("VM 'vm1'") and its memory limit's text ("512M").
  std::string label;
  std::string memory_limit_text;
  // Called in the parent once the child is in its cgroup (e.g. to write a pid file).
  std::function<void(pid_t)> on_started;
};

// How the child ended: its exit code, 128+signal when killed, kExitOutOfMemory (below) when
// the OOM killer of its cgroup ended it.
constexpr int kExitOutOfMemory = 6;

// Creates the cgroup with `resources`, clones a child that waits until the parent has put it
// in the cgroup and then runs `body` (its return value is the child's exit code), forwards
// SIGTERM and SIGHUP to it, waits for it, reports an OOM kill on stderr, restores the
// terminal's settings if the child could not, and removes the cgroup. An error is returned
// (nothing left behind) if the cgroup or the child could not be made.
[[nodiscard]] Result<int> run_supervised(const SupervisorOptions& options, const std::function<int()>& body);

}  // namespace doppel::sandbox
