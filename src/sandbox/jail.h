// A jail for one process, after Firecracker's jailer: a chroot directory holding only the
// files bound into it and the device nodes made in it, entered with pivot_root in new mount,
// PID, IPC and UTS namespaces (and optionally a given network namespace), then an
// unprivileged uid/gid with no capabilities, no_new_privs, no inherited file descriptors
// and rlimits, and an exec. Knows nothing of VMs: the jailer (src/cli/jail_cli.cpp) says
// what goes in.
#pragma once

#include <sched.h>
#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "base/result.h"
#include "sandbox/resources.h"

namespace doppel::sandbox {

// A host file or directory bound at `target` (an absolute path inside the jail).
struct JailBind {
  std::string source;
  std::string target;
  bool read_only = true;
};

struct JailSpec {
  std::string root;             // the chroot directory on the host (exists, empty)
  uid_t uid = 0;
  gid_t gid = 0;
  std::string netns;            // a network namespace to join (/var/run/netns/NAME), or none
  std::string hostname;         // in the new UTS namespace
  std::vector<JailBind> binds;
  std::vector<Device> devices;  // made with mknod (path inside the jail), owned by uid/gid
  std::vector<std::string> writable_dirs;  // made inside the jail, owned by uid/gid
  uint64_t rlimit_nofile = 2048;
  std::optional<uint64_t> rlimit_fsize;   // bytes; unset: unlimited
  std::vector<std::string> argv;          // argv[0]: the program's path inside the jail
  std::vector<std::string> env;           // the whole environment
};

// The namespaces the process calling enter_jail() must already be in (clone flags).
constexpr unsigned long kJailCloneFlags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS;

// Builds the jail in `spec.root`, enters it and execs `spec.argv`; returns only with the
// step that failed ("mknod /srv/jailer/doppel/vm1/root/dev/kvm: Operation not permitted").
// Run in a child made with kJailCloneFlags; what it made on the host (device nodes, mount
// points) is inside spec.root, which the parent removes.
Error enter_jail(const JailSpec& spec);

// The files the running program needs to exec itself inside a jail: its dynamic loader (at
// the path its PT_INTERP names and at its real path) and every shared library it mapped.
// (source, target) pairs; the program itself is not included.
[[nodiscard]] Result<std::vector<JailBind>> self_exec_binds();

// Removes `dir` and everything below it, refusing if anything is still mounted there (a
// bind mount of a disk would otherwise lose the disk's files).
[[nodiscard]] Result<void> remove_jail_dir(const std::string& dir);

}  // namespace doppel::sandbox
