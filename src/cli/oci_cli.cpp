#include "cli/oci_cli.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <ctime>
#include <map>
#include <optional>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "oci/defaults.h"
#include "sandbox/files.h"
#include "oci/runtime.h"

#ifndef DOPPEL_VERSION
#define DOPPEL_VERSION "0.0.0"
#endif

namespace doppel {
namespace {

using oci::Runtime;

struct Log {
  std::string path;
  bool json = false;

  void error(const std::string& message) const {
    fmt::print(stderr, "doppel oci: {}\n", message);
    if (path.empty() || path == "/dev/stderr") return;
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) return;
    char when[64];
    time_t now = ::time(nullptr);
    struct tm tm {};
    gmtime_r(&now, &tm);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    std::string line = json ? nlohmann::json{{"level", "error"}, {"msg", message}, {"time", when}}.dump() + "\n"
                            : fmt::format("time=\"{}\" level=error msg=\"{}\"\n", when, message);
    (void)!::write(fd, line.data(), line.size());
    ::close(fd);
  }
};

// A flag table entry: names (e.g. {"-b", "--bundle"}) and whether it takes a value.
struct FlagSpec {
  std::vector<std::string> names;
  bool takes_value;
};

struct Parsed {
  std::map<std::string, std::vector<std::string>> flags;  // by first long name
  std::vector<std::string> positional;
  bool has(const std::string& name) const { return flags.count(name) > 0; }
  std::string value(const std::string& name, const std::string& fallback = "") const {
    auto it = flags.find(name);
    return it == flags.end() || it->second.empty() ? fallback : it->second.back();
  }
};

// runc's (urfave/cli) style: flags first, "-x v", "--xx v", "--xx=v"; the first
// positional argument ends the flags (the rest, e.g. exec's command, is kept as is).
Result<Parsed> parse_flags(const std::vector<std::string>& args, const std::vector<FlagSpec>& specs,
                           const std::string& command) {
  Parsed p;
  size_t i = 0;
  for (; i < args.size(); i++) {
    const std::string& a = args[i];
    if (a == "--") {
      i++;
      break;
    }
    if (a.size() < 2 || a[0] != '-') break;
    std::string name = a, value;
    bool inline_value = false;
    if (auto eq = a.find('='); eq != std::string::npos) {
      name = a.substr(0, eq);
      value = a.substr(eq + 1);
      inline_value = true;
    }
    const FlagSpec* found = nullptr;
    for (auto& s : specs)
      for (auto& n : s.names)
        if (n == name) found = &s;
    if (!found) return Error::format("{}: unknown flag {}", command, name);
    std::string key = found->names.back();
    if (found->takes_value) {
      if (!inline_value) {
        if (i + 1 >= args.size()) return Error::format("{}: flag {} needs a value", command, name);
        value = args[++i];
      }
      p.flags[key].push_back(value);
    } else {
      if (inline_value && value != "true" && value != "false")
        return Error::format("{}: flag {} takes no value", command, name);
      if (!inline_value || value == "true") p.flags[key].push_back("true");
    }
  }
  for (; i < args.size(); i++) p.positional.push_back(args[i]);
  return p;
}

Result<int> parse_int(const std::string& text, const std::string& what) {
  char* end = nullptr;
  errno = 0;
  long v = std::strtol(text.c_str(), &end, 10);
  if (text.empty() || *end || errno || v < 0 || v > 1 << 20) return Error::format("{}: '{}' is not a number", what, text);
  return static_cast<int>(v);
}

Result<std::string> one_id(const Parsed& p, const std::string& command) {
  if (p.positional.size() != 1)
    return Error::format("{}: expects exactly one container id, got {}", command, p.positional.size());
  return p.positional[0];
}

const std::vector<FlagSpec> kCreateFlags = {
    {{"-b", "--bundle"}, true},        {{"--config"}, true},         {{"--console-socket"}, true},
    {{"--pid-file"}, true},            {{"--no-pivot"}, false},      {{"--no-new-keyring"}, false},
    {{"--preserve-fds"}, true},        {{"--pidfd-socket"}, true},   {{"--no-subreaper"}, false},
    {{"-d", "--detach"}, false},       {{"--keep"}, false}};

Result<oci::CreateOptions> create_options(const Parsed& p, const std::string& command) {
  oci::CreateOptions o;
  o.id = TRY(one_id(p, command));
  o.bundle = p.value("--bundle");
  o.config = p.value("--config", "config.json");
  o.pid_file = p.value("--pid-file");
  o.console_socket = p.value("--console-socket");
  o.no_pivot = p.has("--no-pivot");
  if (p.has("--preserve-fds")) o.preserve_fds = TRY(parse_int(p.value("--preserve-fds"), "--preserve-fds"));
  if (p.has("--pidfd-socket")) return Error("--pidfd-socket is not supported");
  // A relative pid file is relative to where the command ran, whatever the bundle.
  if (!o.pid_file.empty() && o.pid_file[0] != '/') {
    char cwd[4096];
    if (::getcwd(cwd, sizeof cwd)) o.pid_file = std::string(cwd) + "/" + o.pid_file;
  }
  return o;
}

void print_usage() {
  fmt::print(
      "usage: doppel oci [global flags] COMMAND [flags] [ID] [args]\n"
      "  (also installed as doppel-runc: the same command line as runc)\n\n"
      "global flags: --root DIR (default /run/doppel-oci), --log FILE, --log-format text|json,\n"
      "              --debug, --cgroup-manager cgroupfs|disabled, --systemd-cgroup, --version\n\n"
      "commands:\n"
      "  create [--bundle DIR] [--config FILE] [--pid-file F] [--console-socket S] [--no-pivot]\n"
      "         [--no-new-keyring] [--preserve-fds N] ID\n"
      "  start ID | run [create's flags] [--detach] ID | state ID | kill [--all] ID [SIGNAL]\n"
      "  delete [--force] ID | delete [--force] --regex RE | list [--format table|json] [--quiet] | ps [--format table|json] ID\n"
      "  exec [--process F] [--tty] [--detach] [--pid-file F] [--console-socket S] [--cwd D]\n"
      "       [--env K=V] [--user UID[:GID]] [--additional-gids G] [--cap CAP] [--no-new-privs] ID CMD...\n"
      "  pause ID | resume ID | spec [--bundle DIR] [--rootless] | features\n");
}

Result<int> run_command(Runtime& rt, const std::string& command, const std::vector<std::string>& args,
                        const std::string& root) {
  if (command == "create" || command == "run") {
    auto p = TRY(parse_flags(args, kCreateFlags, command));
    auto o = TRY(create_options(p, command));
    if (command == "create") {
      if (p.has("--detach")) return Error("create: unknown flag --detach");
      TRY(rt.create(o));
      return 0;
    }
    return rt.run(o, p.has("--detach"));
  }
  if (command == "start" || command == "pause" || command == "resume" || command == "state") {
    auto p = TRY(parse_flags(args, {}, command));
    std::string id = TRY(one_id(p, command));
    if (command == "start") TRY(rt.start(id));
    if (command == "pause") TRY(rt.pause(id));
    if (command == "resume") TRY(rt.resume(id));
    if (command == "state") fmt::print("{}\n", TRY(rt.state(id)).to_json());
    return 0;
  }
  if (command == "kill") {
    auto p = TRY(parse_flags(args, {{{"-a", "--all"}, false}}, command));
    if (p.positional.empty() || p.positional.size() > 2) return Error("kill: usage: kill [--all] ID [SIGNAL]");
    int sig = p.positional.size() == 2 ? TRY(oci::parse_signal(p.positional[1])) : SIGTERM;
    TRY(rt.kill(p.positional[0], sig, p.has("--all")));
    return 0;
  }
  if (command == "delete") {
    auto p = TRY(parse_flags(args, {{{"-f", "--force"}, false}, {{"-r", "--regex"}, true}}, command));
    if (p.has("--regex")) {
      // crun's extension: every container whose id matches (POSIX extended, unanchored).
      std::regex re;
      try {
        re = std::regex(p.value("--regex"), std::regex::extended | std::regex::nosubs);
      } catch (const std::regex_error& e) {
        return Error::format("delete: --regex '{}': {}", p.value("--regex"), e.what());
      }
      for (auto& c : TRY(rt.list()))
        if (std::regex_search(c.id, re)) TRY(rt.remove(c.id, p.has("--force")));
      return 0;
    }
    TRY(rt.remove(TRY(one_id(p, command)), p.has("--force")));
    return 0;
  }
  if (command == "list") {
    auto p = TRY(parse_flags(args, {{{"-f", "--format"}, true}, {{"-q", "--quiet"}, false}}, command));
    auto all = TRY(rt.list());
    std::string format = p.value("--format", "table");
    if (p.has("--quiet")) {
      for (auto& c : all) fmt::print("{}\n", c.id);
    } else if (format == "json") {
      nlohmann::json out = nlohmann::json::array();
      for (auto& c : all) out.push_back(nlohmann::json::parse(c.to_json(false)));
      fmt::print("{}\n", out.dump());
    } else if (format == "table") {
      fmt::print("{:<12}{:<8}{:<10}{:<40}{:<32}{}\n", "ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER");
      for (auto& c : all)
        fmt::print("{:<12}{:<8}{:<10}{:<40}{:<32}{}\n", c.id, c.status == "stopped" ? 0 : c.pid, c.status,
                   c.bundle, c.created, c.owner);
    } else {
      return Error::format("list: unknown format '{}'", format);
    }
    return 0;
  }
  if (command == "ps") {
    auto p = TRY(parse_flags(args, {{{"-f", "--format"}, true}}, command));
    if (p.positional.empty()) return Error("ps: usage: ps [--format table|json] ID [ps options]");
    auto pids = TRY(rt.processes(p.positional[0]));
    std::string format = p.value("--format", "table");
    if (format == "json") {
      fmt::print("{}\n", nlohmann::json(pids).dump());
      return 0;
    }
    if (format != "table") return Error::format("ps: unknown format '{}'", format);
    // As runc: the host's ps, filtered to the container's processes.
    std::string ps_args = p.positional.size() > 1 ? "" : "-ef";
    for (size_t i = 1; i < p.positional.size(); i++) ps_args += " '" + p.positional[i] + "'";
    FILE* f = ::popen(("ps " + ps_args).c_str(), "r");
    if (!f) return Error::from_errno("ps");
    char line[4096];
    bool header = true;
    int pid_column = 1;
    std::set<pid_t> want(pids.begin(), pids.end());
    while (fgets(line, sizeof line, f)) {
      std::vector<std::string> cols;
      char* save = nullptr;
      std::string copy = line;
      for (char* t = strtok_r(copy.data(), " \t\n", &save); t; t = strtok_r(nullptr, " \t\n", &save)) cols.push_back(t);
      if (header) {
        for (size_t i = 0; i < cols.size(); i++)
          if (cols[i] == "PID") pid_column = static_cast<int>(i);
        fmt::print("{}", line);
        header = false;
        continue;
      }
      if (static_cast<size_t>(pid_column) < cols.size() && want.count(std::atoi(cols[static_cast<size_t>(pid_column)].c_str())))
        fmt::print("{}", line);
    }
    ::pclose(f);
    return 0;
  }
  if (command == "exec") {
    auto p = TRY(parse_flags(args,
                             {{{"-p", "--process"}, true},
                              {{"-t", "--tty"}, false},
                              {{"-d", "--detach"}, false},
                              {{"--pid-file"}, true},
                              {{"--console-socket"}, true},
                              {{"--cwd"}, true},
                              {{"-e", "--env"}, true},
                              {{"-u", "--user"}, true},
                              {{"-g", "--additional-gids"}, true},
                              {{"-c", "--cap"}, true},
                              {{"--no-new-privs"}, false},
                              {{"--preserve-fds"}, true},
                              {{"--process-label"}, true},
                              {{"--apparmor"}, true},
                              {{"--cgroup"}, true},
                              {{"--ignore-paused"}, false}},
                             command));
    if (p.positional.empty()) return Error("exec: usage: exec [flags] ID COMMAND [ARGS...]");
    if (p.has("--cgroup")) return Error("exec: --cgroup (a sub-cgroup) is not supported");
    oci::ExecOptions o;
    o.id = p.positional[0];
    o.args.assign(p.positional.begin() + 1, p.positional.end());
    o.process_file = p.value("--process");
    o.tty = p.has("--tty");
    o.detach = p.has("--detach");
    o.pid_file = p.value("--pid-file");
    o.console_socket = p.value("--console-socket");
    o.cwd = p.value("--cwd");
    if (p.has("--env")) o.env = p.flags.at("--env");
    if (p.has("--cap")) o.caps = p.flags.at("--cap");
    o.no_new_privs = p.has("--no-new-privs");
    if (p.has("--preserve-fds")) o.preserve_fds = TRY(parse_int(p.value("--preserve-fds"), "--preserve-fds"));
    if (p.has("--user")) {
      std::string u = p.value("--user");
      auto colon = u.find(':');
      o.uid = static_cast<uint32_t>(TRY(parse_int(u.substr(0, colon), "--user")));
      if (colon != std::string::npos) o.gid = static_cast<uint32_t>(TRY(parse_int(u.substr(colon + 1), "--user")));
    }
    if (p.has("--additional-gids"))
      for (auto& g : p.flags.at("--additional-gids"))
        o.additional_gids.push_back(static_cast<uint32_t>(TRY(parse_int(g, "--additional-gids"))));
    if (!o.pid_file.empty() && o.pid_file[0] != '/') {
      char cwd[4096];
      if (::getcwd(cwd, sizeof cwd)) o.pid_file = std::string(cwd) + "/" + o.pid_file;
    }
    return rt.exec(o);
  }
  if (command == "spec") {
    auto p = TRY(parse_flags(args, {{{"-b", "--bundle"}, true}, {{"--rootless"}, false}}, command));
    std::string dir = p.value("--bundle", ".");
    std::string path = dir + "/config.json";
    struct stat st {};
    if (::stat(path.c_str(), &st) == 0) return Error::format("spec: {} already exists; remove it first", path);
    TRY(sandbox::write_file_atomic(path, oci::default_spec_json(p.has("--rootless"))));
    return 0;
  }
  if (command == "features") {
    TRY(parse_flags(args, {}, command));
    fmt::print("{}", oci::features_json());
    return 0;
  }
  if (command == "update" || command == "checkpoint" || command == "restore" || command == "events")
    return Error::format("{}: not supported by doppel oci yet", command);
  (void)root;
  return Error::format("unknown command '{}' (see --help)", command);
}

}  // namespace

bool invoked_as_oci_runtime(const char* argv0) {
  const char* base = std::strrchr(argv0, '/');
  base = base ? base + 1 : argv0;
  return std::strcmp(base, "doppel-runc") == 0 || std::strcmp(base, "runc") == 0;
}

int oci_main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  const std::vector<FlagSpec> global = {{{"--root"}, true},          {{"--log"}, true},
                                        {{"--log-format"}, true},    {{"--debug"}, false},
                                        {{"--systemd-cgroup"}, false}, {{"--cgroup-manager"}, true},
                                        {{"--rootless"}, true},      {{"--criu"}, true},
                                        {{"-v", "--version"}, false}, {{"-h", "--help"}, false}};
  Log log;
  auto parsed = parse_flags(args, global, "doppel oci");
  if (!parsed.ok()) {
    log.error(parsed.error().message());
    return 1;
  }
  Parsed& g = parsed.value();
  log.path = g.value("--log");
  std::string format = g.value("--log-format", "text");
  if (format != "text" && format != "json") {
    log.error(fmt::format("--log-format: '{}' is not text or json", format));
    return 1;
  }
  log.json = format == "json";
  if (g.has("--version")) {
    fmt::print("doppel-runc version {}\nspec: 1.1.0\n+CAP +SECCOMP\n", DOPPEL_VERSION);
    return 0;
  }
  if (g.has("--help") || g.positional.empty()) {
    print_usage();
    return g.positional.empty() && !g.has("--help") ? 1 : 0;
  }
  oci::RuntimeOptions options;
  options.root = g.value("--root", "/run/doppel-oci");
  std::string manager = g.value("--cgroup-manager", "cgroupfs");
  if (g.has("--systemd-cgroup") || manager == "systemd") {
    struct stat st {};
    bool systemd = ::stat("/run/systemd/system", &st) == 0;
    log.error(systemd ? "--systemd-cgroup: the systemd cgroup manager is not supported yet; use cgroupfs"
                      : "--systemd-cgroup: systemd is not this host's cgroup manager (no /run/systemd/system); "
                        "use --cgroup-manager cgroupfs");
    return 1;
  }
  if (manager == "disabled") {
    options.cgroup_manager = oci::CgroupManager::kDisabled;
  } else if (manager != "cgroupfs") {
    log.error(fmt::format("--cgroup-manager: '{}' is not cgroupfs, systemd or disabled", manager));
    return 1;
  }
  std::string command = g.positional[0];
  std::vector<std::string> rest(g.positional.begin() + 1, g.positional.end());
  Runtime rt(options);
  auto result = run_command(rt, command, rest, options.root);
  if (!result.ok()) {
    std::string msg = result.error().message();
    log.error(msg.rfind(command + ":", 0) == 0 ? msg : command + ": " + msg);
    return 1;
  }
  return result.value();
}

}  // namespace doppel
