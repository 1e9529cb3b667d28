// The container's first process: what runs in the child between clone and execve. It
// finishes the namespaces (user switch, cgroup namespace), builds the root filesystem
// (mounts, /dev, pivot_root, masked and read-only paths), sets hostname and sysctls,
// hands a pty to --console-socket, waits on exec.fifo, and executes the program.
// Failures before the handshake's kReady go to the runtime as text (sync.h).
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "oci/spec.h"

namespace doppel::oci {

struct InitOptions {
  const Spec* spec = nullptr;
  std::string bundle;  // absolute
  std::string rootfs;  // absolute, symlinks resolved
  int sync_fd = -1;
  int fifo_fd = -1;         // O_PATH descriptor of exec.fifo; -1: exec at once (run)
  int console_socket = -1;  // -1: no terminal handed out
  bool no_pivot = false;
  int preserve_fds = 0;
  bool new_user_ns = false;
  bool setgroups_allowed = true;
  bool new_cgroup_ns = false;
  // Ask the runtime to run prestart/createRuntime hooks (and for the state JSON the
  // createContainer and startContainer hooks read).
  bool runtime_hooks = false;
  // The container's cgroup directories on the host, (hierarchy name, dir), for a "cgroup"
  // mount; one ("", dir) on cgroup v2.
  std::vector<std::pair<std::string, std::string>> cgroup_dirs;
  bool cgroup_unified = false;
};

[[noreturn]] void container_init(const InitOptions& options);

// Opens a pty in the container's /dev/pts, sends its master through `console_socket`
// (SCM_RIGHTS, as runc's --console-socket) and makes the slave stdio and the controlling
// terminal. Also used by `exec --tty`.
[[nodiscard]] Result<void> setup_console(const Process& process, int console_socket);

// False when /dev is a bind mount (of the host's /dev, say): the container's /dev is then
// not populated (devices, /dev/ptmx, the /dev/fd links), as runc does.
bool needs_dev_setup(const Spec& spec);

// Resolves `path` (absolute, as the container sees it) below `root`, following symlinks
// as if `root` were "/": nothing resolves outside `root`. Missing components are kept.
std::string resolve_in_root(const std::string& root, const std::string& path);

}  // namespace doppel::oci
