// `doppel jail`: Firecracker's jailer's steps (its docs/jailer.md), for doppel:
//  1. check the flags and resolve the VM's configuration (`doppel run ARGS --print-config`),
//     before anything is made;
//  2. make <base>/doppel/<id>/root and the VM file in it, with every path rewritten to inside;
//  3. make the cgroup /doppel/<id> with the limits, clone a child in new mount, PID, IPC and
//     UTS namespaces into it (sandbox/supervisor.h), which joins --netns, binds the kernel,
//     initrd, firmware, disks (read-only where the disk is), doppel and its libraries in,
//     mknods the devices, pivot_roots, sets rlimits, closes inherited descriptors, drops to
//     --uid/--gid with no capabilities and no_new_privs, and execs `/doppel run`;
//  4. the parent stays outside, reports an OOM kill, and removes the cgroup and the jail
//     directory when the VM is gone (Firecracker leaves those to its user).
#include "cli/jail_cli.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <regex>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "base/result.h"
#include "base/unique_fd.h"
#include "cli/vm_limits.h"
#include "sandbox/cgroup.h"
#include "sandbox/files.h"
#include "sandbox/jail.h"
#include "vmm/exit_codes.h"
#include "vmm/vm_config.h"

namespace doppel {
namespace {

using nlohmann::json;

// Runs this doppel with `args` and returns its standard output; its errors reach our stderr.
Result<std::string> run_self(const std::vector<std::string>& args) {
  int out[2];
  if (::pipe2(out, O_CLOEXEC) != 0) return Error::from_errno("pipe");
  const pid_t pid = ::fork();
  if (pid < 0) return Error::from_errno("fork");
  if (pid == 0) {
    ::dup2(out[1], STDOUT_FILENO);
    std::vector<char*> argv{const_cast<char*>("doppel")};
    for (auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    ::execv("/proc/self/exe", argv.data());
    ::_exit(127);
  }
  ::close(out[1]);
  std::string text;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(out[0], buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    text.append(buf, static_cast<size_t>(n));
  }
  ::close(out[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) return Error("the arguments after -- are not a valid VM");
  return text;
}

struct RunArgs {
  std::vector<std::string> rest;  // for `doppel run`
  std::string api_sock;
};

Result<RunArgs> split_run_args(const std::vector<std::string>& args) {
  RunArgs out;
  for (size_t i = 0; i < args.size(); i++) {
    const std::string& a = args[i];
    auto value = [&](const char* flag) -> std::optional<std::string> {
      const std::string f(flag);
      if (a == f && i + 1 < args.size()) return args[++i];
      if (a.starts_with(f + "=")) return a.substr(f.size() + 1);
      return std::nullopt;
    };
    if (auto v = value("--api-sock")) {
      out.api_sock = *v;
      continue;
    }
    if (a == "--id" || a.starts_with("--id="))
      return Error("--id after --: the jail's own --id names the VM");
    for (const char* refused : {"--gdb", "--gdb-wait", "--migrate-from", "--restore", "--print-config",
                                "--console2", "--vsock"})
      if (a == refused || a.starts_with(std::string(refused) + "="))
        return Error::format("{}: not supported inside a jail (yet)", refused);
    out.rest.push_back(a);
  }
  return out;
}

Result<void> check_id(const std::string& id) {
  static const std::regex kId("[A-Za-z0-9-]{1,64}");
  if (!std::regex_match(id, kId))
    return Error::format("--id '{}': 1 to 64 letters, digits and hyphens (Firecracker's rule)", id);
  return {};
}

Result<uint32_t> check_ugid(const std::optional<int64_t>& v, const char* flag) {
  if (!v) return Error::format("{} is required", flag);
  if (*v <= 0 || *v >= 0xffffffffll)
    return Error::format("{} {}: must be an unprivileged id, 1 to 4294967294", flag, *v);
  return static_cast<uint32_t>(*v);
}

// The jail's plan: everything checked, nothing made yet.
struct Plan {
  std::string jail_dir, root;
  sandbox::JailSpec spec;
  json vm_file;
  VmConfig config;  // with the limits to enforce
  std::string api_link;  // host path of the API socket (a symlink into the jail)
};

Result<Plan> make_plan(const JailFlags& flags) {
  Plan plan;
  TRY(check_id(flags.id));
  plan.spec.uid = TRY(check_ugid(flags.uid, "--uid"));
  plan.spec.gid = TRY(check_ugid(flags.gid, "--gid"));
  if (flags.chroot_base.empty() || flags.chroot_base[0] != '/')
    return Error::format("--chroot-base-dir '{}': must be an absolute path", flags.chroot_base);
  if (!flags.netns.empty() && ::access(flags.netns.c_str(), R_OK) != 0)
    return Error::from_errno(fmt::format("--netns {}", flags.netns));
  RunArgs run = TRY(split_run_args(flags.run_args));

  std::vector<std::string> args{"run"};
  args.insert(args.end(), run.rest.begin(), run.rest.end());
  args.push_back("--print-config");
  const std::string text = TRY(run_self(args));
  try {
    plan.vm_file = json::parse(text);
  } catch (const json::exception& e) {
    return Error::format("doppel run --print-config: {}", e.what());
  }
  TRY(apply_json(plan.config, plan.vm_file));

  TRY(apply_limit_flags(flags.limits, plan.config.limits));
  // The jail's cgroup enforces them; the jailed doppel could not (no cgroupfs, no root).
  plan.vm_file.erase("limits");

  plan.jail_dir = fmt::format("{}/doppel/{}", flags.chroot_base, flags.id);
  plan.root = plan.jail_dir + "/root";
  if (::access(plan.jail_dir.c_str(), F_OK) == 0)
    return Error::format("{}: already exists (a jail with id '{}' runs, or one was not cleaned up)", plan.jail_dir,
                         flags.id);
  auto cgroup = TRY(sandbox::Cgroup::open("/doppel/" + flags.id));
  for (auto& [name, dir] : cgroup.dirs())
    if (::access(dir.c_str(), F_OK) == 0)
      return Error::format("cgroup {}: already exists (a jail with id '{}' runs)", dir, flags.id);

  sandbox::JailSpec& spec = plan.spec;
  spec.root = plan.root;
  spec.netns = flags.netns;
  spec.hostname = flags.id;
  spec.rlimit_nofile = flags.rlimit_nofile;
  spec.rlimit_fsize = flags.rlimit_fsize;
  spec.binds.push_back({std::filesystem::canonical("/proc/self/exe").string(), "/doppel", true});
  for (auto& b : TRY(sandbox::self_exec_binds())) spec.binds.push_back(b);
  json& boot = plan.vm_file["boot"];
  for (const char* part : {"kernel", "initrd", "firmware"}) {
    std::string path = boot.value(part, "");
    if (path.empty() || path == kFirmwareNone) continue;
    spec.binds.push_back({path, fmt::format("/boot/{}", part), true});
    boot[part] = fmt::format("/boot/{}", part);
  }
  json& disks = plan.vm_file["disks"];
  for (size_t i = 0; i < disks.size(); i++) {
    const std::string path = disks[i].value("path", "");
    const std::string inside = fmt::format("/disks/{}-{}", i, std::filesystem::path(path).filename().string());
    spec.binds.push_back({path, inside, disks[i].value("read_only", false)});
    disks[i]["path"] = inside;
  }
  spec.devices.push_back({'c', "/dev/urandom", 1, 9, 0666, 0, 0});
  if (plan.config.engine == EngineKind::kKvm) spec.devices.push_back({'c', "/dev/kvm", 10, 232, 0660, 0, 0});
  for (auto& n : plan.config.nets)
    if (!n.user) {
      spec.devices.push_back({'c', "/dev/net/tun", 10, 200, 0660, 0, 0});
      break;
    }
  spec.argv = {"/doppel", "run", "--config", "/vm.json", "--id", flags.id};
  if (boot.value("initrd", "").empty() && plan.config.boot_from == BootFrom::kKernel &&
      plan.config.firmware != kFirmwareNone) {
    spec.argv.push_back("--initrd");  // not the guest kit's: there is none in the jail
    spec.argv.push_back("none");
  }
  if (!run.api_sock.empty()) {
    plan.api_link = run.api_sock;
    if (::access(plan.api_link.c_str(), F_OK) == 0)
      return Error::format("--api-sock {}: already exists", plan.api_link);
    spec.writable_dirs.push_back("/run");
    spec.argv.push_back("--api-sock");
    spec.argv.push_back("/run/api.sock");
  }
  spec.env = {"PATH=/"};
  if (const char* term = getenv("TERM")) spec.env.push_back(fmt::format("TERM={}", term));
  return plan;
}

Result<void> make_dirs(const Plan& plan) {
  std::error_code ec;
  const std::string parent = std::filesystem::path(plan.jail_dir).parent_path().string();
  std::filesystem::create_directories(parent, ec);
  if (ec) return Error::format("mkdir {}: {}", parent, ec.message());
  if (::mkdir(plan.jail_dir.c_str(), 0755) != 0) return Error::from_errno(fmt::format("mkdir {}", plan.jail_dir));
  if (::mkdir(plan.root.c_str(), 0755) != 0) return Error::from_errno(fmt::format("mkdir {}", plan.root));
  UniqueFd fd(::open((plan.root + "/vm.json").c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
  if (!fd.valid()) return Error::from_errno(fmt::format("create {}/vm.json", plan.root));
  const std::string text = plan.vm_file.dump(2) + "\n";
  if (::write(fd.get(), text.data(), text.size()) != static_cast<ssize_t>(text.size()))
    return Error::from_errno(fmt::format("write {}/vm.json", plan.root));
  if (!plan.api_link.empty() && ::symlink((plan.root + "/run/api.sock").c_str(), plan.api_link.c_str()) != 0)
    return Error::from_errno(fmt::format("symlink {}", plan.api_link));
  return {};
}

void remove_all(const Plan& plan) {
  if (!plan.api_link.empty()) ::unlink(plan.api_link.c_str());
  if (auto r = sandbox::remove_jail_dir(plan.jail_dir); !r) fmt::print(stderr, "jail: {}\n", r.error().message());
}

}  // namespace

CLI::App* add_jail_command(CLI::App& app, JailFlags& flags) {
  auto* jail = app.add_subcommand(
      "jail", "Run `doppel run ARGS` jailed (Firecracker's jailer): a chroot with only the VM's files, new "
              "namespaces, an unprivileged uid/gid without capabilities, its own cgroup");
  jail->add_option("--id", flags.id, "The VM's id: 1 to 64 letters, digits and hyphens")->required();
  jail->add_option("--uid", flags.uid, "The unprivileged uid the VMM runs as")->required();
  jail->add_option("--gid", flags.gid, "The unprivileged gid the VMM runs as")->required();
  jail->add_option("--chroot-base-dir", flags.chroot_base,
                   "The jail is <dir>/doppel/<id>/root (default /srv/jailer)");
  jail->add_option("--netns", flags.netns, "Join this network namespace (e.g. /var/run/netns/NAME)");
  jail->add_option("--cpu-quota", flags.limits.cpu_quota, "As doppel run's");
  jail->add_option("--memory-limit", flags.limits.memory_limit, "As doppel run's");
  jail->add_option("--io-limit", flags.limits.io_limit, "As doppel run's");
  jail->add_option("--pids-limit", flags.limits.pids_limit, "As doppel run's");
  jail->add_option("--rlimit-nofile", flags.rlimit_nofile, "Open files at most (default 2048)");
  jail->add_option("--rlimit-fsize", flags.rlimit_fsize, "Largest file the VMM may write, bytes (default: no limit)");
  jail->add_option("run_args", flags.run_args, "-- then `doppel run` arguments");
  return jail;
}

int jail_command(const JailFlags& flags) {
  auto plan = make_plan(flags);
  if (!plan) {
    fmt::print(stderr, "jail: {}\n", plan.error().message());
    return kExitError;
  }
  if (auto r = make_dirs(*plan); !r) {
    fmt::print(stderr, "jail: {}\n", r.error().message());
    remove_all(*plan);
    return kExitError;
  }
  const std::string pid_file = plan->jail_dir + "/doppel.pid";
  auto code = run_limited(
      plan->config, "/doppel/" + flags.id, fmt::format("VM '{}'", flags.id), sandbox::kJailCloneFlags,
      [&](pid_t pid) { (void)sandbox::write_file_atomic(pid_file, fmt::format("{}\n", pid)); },
      [&] {
        Error e = sandbox::enter_jail(plan->spec);
        fmt::print(stderr, "jail: {}\n", e.message());
        return kExitError;
      });
  remove_all(*plan);
  if (!code) {
    fmt::print(stderr, "jail: {}\n", code.error().message());
    return kExitError;
  }
  return *code;
}

}  // namespace doppel
