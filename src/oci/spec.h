// The OCI runtime specification's config.json (runtime-spec 1.0/1.1), parsed and
// validated into plain structs. config.json is outside data: every field is checked for
// type and range here, so the set-up code never sees a malformed value.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "sandbox/resources.h"

namespace doppel::oci {

struct User {
  uint32_t uid = 0;
  uint32_t gid = 0;
  std::optional<uint32_t> umask;
  std::vector<uint32_t> additional_gids;
};

struct Rlimit {
  int resource = 0;  // RLIMIT_*
  uint64_t soft = 0;
  uint64_t hard = 0;
};

// Capability numbers (CAP_*), one set each; `present` is false when the config has no
// "capabilities" object at all (the process then keeps no capabilities, like runc).
struct Capabilities {
  std::vector<int> bounding, effective, inheritable, permitted, ambient;
};

struct Process {
  bool terminal = false;
  uint16_t console_height = 0;
  uint16_t console_width = 0;
  User user;
  std::vector<std::string> args;
  std::vector<std::string> env;
  std::string cwd = "/";
  Capabilities capabilities;
  std::vector<Rlimit> rlimits;
  bool no_new_privileges = false;
  std::optional<int> oom_score_adj;
};

struct Mount {
  std::string destination;
  std::string type;
  std::string source;
  std::vector<std::string> options;
};

// Mount options split into mount(2) flags, propagation flags and the data string.
struct MountOptions {
  unsigned long flags = 0;
  unsigned long clear_flags = 0;        // "rw", "suid", ... asked explicitly
  std::vector<unsigned long> propagation;  // MS_PRIVATE, MS_SHARED, ... (| MS_REC)
  bool bind = false;
  bool recursive = false;
  std::string data;
};
[[nodiscard]] Result<MountOptions> parse_mount_options(const std::vector<std::string>& options);

struct Namespace {
  std::string type;  // "pid", "network", "mount", "ipc", "uts", "user", "cgroup"
  int clone_flag = 0;
  std::string path;  // join this namespace instead of making one
};

struct IdMapping {
  uint32_t container_id = 0;
  uint32_t host_id = 0;
  uint32_t size = 0;
};

// Device nodes and cgroup limits are the sandbox layer's (shared with the jailer).
using sandbox::Device;
using sandbox::DeviceRule;
using sandbox::Resources;

struct SeccompArg {
  uint32_t index = 0;
  uint64_t value = 0;
  uint64_t value_two = 0;
  std::string op;  // SCMP_CMP_*
};

struct SeccompRule {
  std::vector<std::string> names;
  std::string action;  // SCMP_ACT_*
  std::optional<uint32_t> errno_ret;
  std::vector<SeccompArg> args;
};

struct Seccomp {
  std::string default_action;
  std::optional<uint32_t> default_errno_ret;
  std::vector<std::string> architectures;  // SCMP_ARCH_*
  std::vector<std::string> flags;
  std::vector<SeccompRule> syscalls;
};

struct Hook {
  std::string path;
  std::vector<std::string> args;
  std::vector<std::string> env;
  std::optional<int> timeout;  // seconds
};

struct Hooks {
  std::vector<Hook> prestart, create_runtime, create_container, start_container, poststart,
      poststop;
};

struct Linux {
  std::vector<Namespace> namespaces;
  std::vector<IdMapping> uid_mappings, gid_mappings;
  std::vector<Device> devices;
  std::string cgroups_path;
  Resources resources;
  std::string rootfs_propagation;
  std::vector<std::string> masked_paths, readonly_paths;
  std::map<std::string, std::string> sysctl;
  std::optional<Seccomp> seccomp;
};

struct Spec {
  std::string oci_version;
  std::optional<Process> process;
  std::string root_path;  // as in config.json: relative to the bundle or absolute
  bool root_readonly = false;
  std::string hostname;
  std::string domainname;
  std::vector<Mount> mounts;
  Hooks hooks;
  std::map<std::string, std::string> annotations;
  Linux linux;

  const Namespace* find_namespace(std::string_view type) const;
};

// Parses and validates config.json's text. Errors name the field: "process.args: ...".
[[nodiscard]] Result<Spec> parse_spec(std::string_view json_text);
// Parses a process object alone (`exec --process FILE`).
[[nodiscard]] Result<Process> parse_process(std::string_view json_text);

// Name tables shared with the set-up code and `features`.
[[nodiscard]] Result<int> capability_from_name(std::string_view name);  // "CAP_CHOWN"
[[nodiscard]] Result<int> rlimit_from_name(std::string_view name);      // "RLIMIT_NOFILE"
std::vector<std::string> known_capability_names();
std::vector<std::string> known_mount_option_names();

// The cgroup path a spec asks for: linux.cgroupsPath, or "/<id>" as runc does.
std::string cgroup_path_for(const Spec& spec, const std::string& id);

}  // namespace doppel::oci
