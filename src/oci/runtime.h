// The OCI runtime's lifecycle (runtime-spec "Lifecycle" and "Operations"), with runc's
// state directory: <root>/<id>/{state.json,config.json,exec.fifo}. The command line
// (src/cli/oci_cli.cpp) only parses flags into these option structs; a VM back end (the
// Kata model) would implement the same operations.
#pragma once

#include <sys/types.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "base/result.h"
#include "oci/spec.h"

namespace doppel::oci {

enum class CgroupManager { kCgroupfs, kDisabled };

struct RuntimeOptions {
  std::string root = "/run/doppel-oci";
  CgroupManager cgroup_manager = CgroupManager::kCgroupfs;
};

struct CreateOptions {
  std::string id;
  std::string bundle;  // empty: the current directory
  std::string config = "config.json";
  std::string pid_file;
  std::string console_socket;
  bool no_pivot = false;
  int preserve_fds = 0;
};

struct ExecOptions {
  std::string id;
  std::string process_file;       // --process: a process JSON replacing the rest
  std::vector<std::string> args;
  bool tty = false;
  bool detach = false;
  std::string pid_file;
  std::string console_socket;
  std::string cwd;
  std::vector<std::string> env;
  std::optional<uint32_t> uid, gid;
  std::vector<uint32_t> additional_gids;
  std::vector<std::string> caps;
  bool no_new_privs = false;
  int preserve_fds = 0;
};

struct ContainerState {
  std::string id;
  pid_t pid = 0;
  std::string status;  // creating, created, running, paused, stopped
  std::string bundle;
  std::string rootfs;
  std::string created;  // RFC 3339
  std::string owner;
  std::map<std::string, std::string> annotations;
  // The spec's state JSON (ociVersion, id, status, pid, bundle, annotations).
  std::string to_json(bool pretty = true) const;
};

class Runtime {
 public:
  explicit Runtime(RuntimeOptions options) : m_options(std::move(options)) {}

  // create: the container's process waits on exec.fifo until start.
  [[nodiscard]] Result<void> create(const CreateOptions& options);
  [[nodiscard]] Result<void> start(const std::string& id);
  // run: create + start; unless `detach`, waits for the process, deletes the container
  // and returns the process's exit code (128 + signal when killed).
  [[nodiscard]] Result<int> run(const CreateOptions& options, bool detach);
  [[nodiscard]] Result<ContainerState> state(const std::string& id) const;
  [[nodiscard]] Result<std::vector<ContainerState>> list() const;
  [[nodiscard]] Result<void> kill(const std::string& id, int signal, bool all);
  [[nodiscard]] Result<void> remove(const std::string& id, bool force);
  [[nodiscard]] Result<int> exec(const ExecOptions& options);
  [[nodiscard]] Result<void> pause(const std::string& id);
  [[nodiscard]] Result<void> resume(const std::string& id);
  [[nodiscard]] Result<std::vector<pid_t>> processes(const std::string& id) const;

 private:
  RuntimeOptions m_options;

  struct Loaded;
  [[nodiscard]] Result<Loaded> load(const std::string& id) const;
  [[nodiscard]] Result<pid_t> spawn(const CreateOptions& options, bool wait_on_fifo, struct CreateCleanup& cleanup);
  void destroy(const Loaded& c);
};

// The id rule runc applies: letters, digits, '_', '+', '-', '.', and not "." or "..".
[[nodiscard]] Result<void> validate_container_id(const std::string& id);
// "KILL", "SIGKILL" or "9".
[[nodiscard]] Result<int> parse_signal(const std::string& text);
// Sysctls a container may set given its namespaces (runc's list); the error names the key.
[[nodiscard]] Result<void> validate_sysctls(const Spec& spec);

}  // namespace doppel::oci
