// A container's or a VM's cgroup, on cgroup v1 (each controller's hierarchy, as on a hybrid host
// whose v2 tree is empty) or on the unified v2 hierarchy.
#pragma once

#include <sys/types.h>

#include <cstdint>

#include <string>
#include <utility>
#include <vector>

#include "base/result.h"
#include "sandbox/resources.h"

namespace doppel::sandbox {

class Cgroup {
 public:
  // Finds the host's hierarchies for `path` (e.g. "/mycontainer", below each hierarchy's
  // root); creates nothing. `cgroup_root` is /sys/fs/cgroup except in tests.
  [[nodiscard]] static Result<Cgroup> open(const std::string& path,
                                           const std::string& cgroup_root = "/sys/fs/cgroup");

  // `path` on the cgroup v2 hierarchy mounted at `cgroup_root` (a hybrid host's
  // /sys/fs/cgroup/unified, say), unchecked: tests use it on a plain directory too.
  static Cgroup unified_at(const std::string& path, const std::string& cgroup_root);

  // Makes the directories and writes the limits. On error, removes what it made.
  // `devices` (linux.devices) are allowed in the device cgroup after the resources' rules,
  // with the devices every container gets (/dev/null, the ptys, ...), as runc does; on v2
  // through a BPF device program (device_filter.h).
  [[nodiscard]] Result<void> create(const Resources& resources, const std::vector<Device>& devices = {});
  [[nodiscard]] Result<void> add_process(pid_t pid) const;
  // Removes the directories (the processes must be gone), retrying while the kernel
  // still counts exiting tasks. Missing directories are not an error.
  [[nodiscard]] Result<void> destroy() const;

  // How many times the kernel's OOM killer ended a process of this cgroup (v2
  // memory.events, v1 memory.oom_control: "oom_kill N").
  [[nodiscard]] Result<uint64_t> oom_kills() const;
  // The CPU time its processes used, in microseconds (v2 cpu.stat usage_usec, v1
  // cpuacct.usage).
  [[nodiscard]] Result<uint64_t> cpu_usage_usec() const;
  // The directory of `controller`'s hierarchy ("memory", "cpu", ...); the one directory on v2;
  // empty if that controller is not mounted.
  std::string dir_of(const std::string& controller) const;

  [[nodiscard]] Result<void> set_frozen(bool frozen) const;
  bool frozen() const;
  // The processes in the container's cgroup (its freezer/pids/memory hierarchy on v1).
  [[nodiscard]] Result<std::vector<pid_t>> processes() const;

  bool unified() const { return m_unified; }
  // (hierarchy name, directory) of this cgroup; one ("", dir) on v2.
  const std::vector<std::pair<std::string, std::string>>& dirs() const { return m_dirs; }
  const std::string& path() const { return m_path; }

 private:
  // (controller, host directory); on v2 a single ("", dir).
  std::vector<std::pair<std::string, std::string>> m_dirs;
  std::string m_path;
  std::string m_root;
  bool m_unified = false;

  [[nodiscard]] Result<void> write_v1(const Resources& r, const std::vector<Device>& devices) const;
  [[nodiscard]] Result<void> write_v2(const Resources& r, const std::vector<Device>& devices) const;
};

}  // namespace doppel::sandbox
