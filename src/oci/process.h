// The last steps before a container process runs its program, shared by the container's
// init and `exec`: rlimits, user and groups, capabilities, no_new_privs, seccomp, execve.
// These run in the child, after fork; they only prepare or return errors, and exec_process
// does not return on success.
#pragma once

#include <string>
#include <vector>

#include "base/result.h"
#include "oci/spec.h"

namespace doppel::oci {

// Resolves args[0] through the process's PATH as the container sees it (call after
// pivot_root); "exec: \"x\": executable file not found in $PATH" otherwise.
[[nodiscard]] Result<std::string> find_executable(const Process& process);
// The process environment with HOME filled in from the container's /etc/passwd when the
// config has none.
std::vector<std::string> process_environment(const Process& process);

[[nodiscard]] Result<void> apply_rlimits(const Process& process);
// Bounding set, user and groups, the other capability sets, no_new_privs. `setgroups`
// false when a user namespace denies setgroups(2).
[[nodiscard]] Result<void> apply_user_and_capabilities(const Process& process, bool setgroups_allowed);
[[nodiscard]] Result<void> apply_seccomp(const Seccomp& seccomp);

// execve with the resolved path; returns only on failure.
[[nodiscard]] Error exec_process(const std::string& path, const Process& process,
                                 const std::vector<std::string>& env);

}  // namespace doppel::oci
