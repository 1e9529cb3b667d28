// The device controller of a container's cgroup: the ordered allow/deny rules it gets, and
// on cgroup v2, where there is no devices.allow file, a BPF_PROG_TYPE_CGROUP_DEVICE
// program made from them (what runc and crun generate) and attached to the cgroup. The
// kernel runs it on every open and mknod of a device node by a process in the cgroup.
// A device program needs no v2 controller, so it also works on a hybrid host's empty v2
// hierarchy.
#pragma once

#include <linux/bpf.h>

#include <string>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"
#include "sandbox/resources.h"

namespace doppel::sandbox {

// A container's device rules in order, the last one that matches deciding (a device no
// rule matches is denied): the config's linux.resources.devices, then what every container
// may use (mknod of anything; null, zero, full, random, urandom, tty, console, ptmx, the
// ptys; tun), then the config's linux.devices with rwm, as runc orders them.
std::vector<DeviceRule> container_device_rules(const std::vector<DeviceRule>& resources,
                                               const std::vector<Device>& devices);

// The program for `rules`. Errors name the rule that cannot be expressed.
[[nodiscard]] Result<std::vector<bpf_insn>> device_filter_program(const std::vector<DeviceRule>& rules);

// Loads a program (the verifier's log in the error when it refuses it).
[[nodiscard]] Result<UniqueFd> load_device_filter(const std::vector<bpf_insn>& program);

// Attaches a loaded program to the cgroup v2 directory `cgroup_dir` (BPF_F_ALLOW_MULTI:
// an ancestor's programs keep running too). It stays attached until the cgroup is removed.
[[nodiscard]] Result<void> attach_device_filter(const std::string& cgroup_dir, int program_fd);

}  // namespace doppel::sandbox
