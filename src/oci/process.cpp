#include "oci/process.h"

#include <grp.h>
#include <seccomp.h>
#include <sys/capability.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <sstream>

#include "sandbox/files.h"

namespace doppel::oci {
// File helpers and cgroups: the sandbox layer, shared with the jailer.
using namespace sandbox;
namespace {

std::string env_value(const std::vector<std::string>& env, const std::string& key) {
  for (auto& e : env)
    if (e.rfind(key + "=", 0) == 0) return e.substr(key.size() + 1);
  return "";
}

bool is_executable_file(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(path.c_str(), X_OK) == 0;
}

int last_capability() {
  auto v = read_file("/proc/sys/kernel/cap_last_cap");
  if (!v.ok()) return CAP_LAST_CAP;
  return std::atoi(v.value().c_str());
}

Result<uint32_t> seccomp_action_value(const std::string& action, std::optional<uint32_t> errno_ret) {
  if (action == "SCMP_ACT_KILL" || action == "SCMP_ACT_KILL_THREAD") return SCMP_ACT_KILL;
  if (action == "SCMP_ACT_KILL_PROCESS") return SCMP_ACT_KILL_PROCESS;
  if (action == "SCMP_ACT_TRAP") return SCMP_ACT_TRAP;
  if (action == "SCMP_ACT_ERRNO") return SCMP_ACT_ERRNO(errno_ret.value_or(EPERM));
  if (action == "SCMP_ACT_TRACE") return SCMP_ACT_TRACE(errno_ret.value_or(EPERM));
  if (action == "SCMP_ACT_ALLOW") return SCMP_ACT_ALLOW;
  if (action == "SCMP_ACT_LOG") return SCMP_ACT_LOG;
  return Error::format("seccomp: action {} is not supported", action);
}

scmp_compare seccomp_op(const std::string& op) {
  if (op == "SCMP_CMP_NE") return SCMP_CMP_NE;
  if (op == "SCMP_CMP_LT") return SCMP_CMP_LT;
  if (op == "SCMP_CMP_LE") return SCMP_CMP_LE;
  if (op == "SCMP_CMP_GE") return SCMP_CMP_GE;
  if (op == "SCMP_CMP_GT") return SCMP_CMP_GT;
  if (op == "SCMP_CMP_MASKED_EQ") return SCMP_CMP_MASKED_EQ;
  return SCMP_CMP_EQ;
}

}  // namespace

Result<std::string> find_executable(const Process& process) {
  const std::string& name = process.args[0];
  if (name.find('/') != std::string::npos) {
    struct stat st {};
    if (::stat(name.c_str(), &st) != 0)
      return Error::from_errno(fmt::format("exec: \"{}\": stat {}", name, name));
    if (!S_ISREG(st.st_mode)) return Error::format("exec: \"{}\": not a regular file", name);
    return name;
  }
  std::string path = env_value(process.env, "PATH");
  if (path.empty()) path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
  std::stringstream ss(path);
  std::string dir;
  while (std::getline(ss, dir, ':')) {
    if (dir.empty()) dir = ".";
    std::string candidate = dir + "/" + name;
    if (is_executable_file(candidate)) return candidate;
  }
  return Error::format("exec: \"{}\": executable file not found in $PATH", name);
}

std::vector<std::string> process_environment(const Process& process) {
  std::vector<std::string> env = process.env;
  bool has_home = std::any_of(env.begin(), env.end(), [](auto& e) { return e.rfind("HOME=", 0) == 0; });
  if (!has_home) {
    std::string home = "/";
    auto passwd = read_file("/etc/passwd");
    if (passwd.ok()) {
      std::stringstream ss(passwd.value());
      std::string line;
      while (std::getline(ss, line)) {
        // name:x:uid:gid:gecos:home:shell
        std::vector<std::string> f;
        std::stringstream ls(line);
        std::string field;
        while (std::getline(ls, field, ':')) f.push_back(field);
        if (f.size() >= 6 && f[2] == std::to_string(process.user.uid)) {
          if (!f[5].empty()) home = f[5];
          break;
        }
      }
    }
    env.push_back("HOME=" + home);
  }
  return env;
}

Result<void> apply_rlimits(const Process& process) {
  for (auto& r : process.rlimits) {
    struct rlimit lim = {r.soft, r.hard};
    if (::setrlimit(r.resource, &lim) != 0) return Error::from_errno(fmt::format("setrlimit {}", r.resource));
  }
  return ok();
}

Result<void> apply_user_and_capabilities(const Process& process, bool setgroups_allowed) {
  const Capabilities& caps = process.capabilities;
  int last = last_capability();
  for (int cap = 0; cap <= last; cap++) {
    if (std::find(caps.bounding.begin(), caps.bounding.end(), cap) != caps.bounding.end()) continue;
    if (::prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 && errno != EINVAL)
      return Error::from_errno(fmt::format("drop capability {} from the bounding set", cap));
  }
  if (::prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) != 0) return Error::from_errno("prctl(PR_SET_KEEPCAPS)");
  const User& u = process.user;
  if (setgroups_allowed) {
    std::vector<gid_t> groups(u.additional_gids.begin(), u.additional_gids.end());
    if (::setgroups(groups.size(), groups.data()) != 0) return Error::from_errno("setgroups");
  }
  if (::setresgid(u.gid, u.gid, u.gid) != 0) return Error::from_errno(fmt::format("setresgid {}", u.gid));
  if (::setresuid(u.uid, u.uid, u.uid) != 0) return Error::from_errno(fmt::format("setresuid {}", u.uid));
  if (::prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) != 0) return Error::from_errno("prctl(PR_SET_KEEPCAPS)");
  if (u.umask) ::umask(static_cast<mode_t>(*u.umask & 0777));

  cap_t c = cap_init();
  if (!c) return Error::from_errno("cap_init");
  auto set = [&](cap_flag_t flag, const std::vector<int>& list) {
    std::vector<cap_value_t> values;
    for (int v : list)
      if (v <= last) values.push_back(v);
    if (values.empty()) return 0;
    return cap_set_flag(c, flag, static_cast<int>(values.size()), values.data(), CAP_SET);
  };
  int rc = set(CAP_EFFECTIVE, caps.effective) | set(CAP_PERMITTED, caps.permitted) |
           set(CAP_INHERITABLE, caps.inheritable);
  if (rc == 0) rc = cap_set_proc(c);
  int e = errno;
  cap_free(c);
  if (rc != 0) return Error::from_errno("set capabilities", e);
  ::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
  for (int cap : caps.ambient) {
    if (cap > last) continue;
    // A capability not also permitted and inheritable cannot be ambient: skipped, as runc.
    if (::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0) != 0 && errno != EPERM)
      return Error::from_errno(fmt::format("raise ambient capability {}", cap));
  }
  if (process.no_new_privileges && ::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
    return Error::from_errno("prctl(PR_SET_NO_NEW_PRIVS)");
  return ok();
}

Result<void> apply_seccomp(const Seccomp& sc) {
  uint32_t def = TRY(seccomp_action_value(sc.default_action, sc.default_errno_ret));
  scmp_filter_ctx ctx = seccomp_init(def);
  if (!ctx) return Error("seccomp: seccomp_init failed");
  auto fail = [&](Error e) -> Result<void> {
    seccomp_release(ctx);
    return e;
  };
  for (auto& arch : sc.architectures) {
    std::string name = arch.rfind("SCMP_ARCH_", 0) == 0 ? arch.substr(10) : arch;
    std::transform(name.begin(), name.end(), name.begin(), [](unsigned char ch) { return std::tolower(ch); });
    uint32_t token = seccomp_arch_resolve_name(name.c_str());
    if (token == 0) return fail(Error::format("seccomp: unknown architecture {}", arch));
    int rc = seccomp_arch_add(ctx, token);
    if (rc != 0 && rc != -EEXIST) return fail(Error::format("seccomp: add architecture {}: {}", arch, strerror(-rc)));
  }
  for (auto& flag : sc.flags) {
    int rc = 0;
    if (flag == "SECCOMP_FILTER_FLAG_LOG") rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_LOG, 1);
    else if (flag == "SECCOMP_FILTER_FLAG_SPEC_ALLOW") rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_SSB, 1);
    else if (flag == "SECCOMP_FILTER_FLAG_TSYNC") rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1);
    else return fail(Error::format("seccomp: unknown flag {}", flag));
    if (rc != 0) return fail(Error::format("seccomp: flag {}: {}", flag, strerror(-rc)));
  }
  for (auto& rule : sc.syscalls) {
    auto action = seccomp_action_value(rule.action, rule.errno_ret);
    if (!action.ok()) return fail(action.release_error());
    if (action.value() == def) continue;  // libseccomp refuses a rule equal to the default
    std::vector<scmp_arg_cmp> args;
    bool repeated_index = false;
    for (auto& a : rule.args) {
      for (auto& prev : args) repeated_index = repeated_index || prev.arg == a.index;
      args.push_back(scmp_arg_cmp{a.index, seccomp_op(a.op), a.value, a.value_two});
    }
    for (auto& name : rule.names) {
      int nr = seccomp_syscall_resolve_name(name.c_str());
      if (nr == __NR_SCMP_ERROR) continue;  // unknown on this kernel/arch: as runc, skip
      int rc = 0;
      if (repeated_index) {
        // libseccomp wants each argument once per rule: one rule per comparison.
        for (auto& a : args) rc = rc ? rc : seccomp_rule_add_array(ctx, action.value(), nr, 1, &a);
      } else {
        rc = seccomp_rule_add_array(ctx, action.value(), nr, static_cast<unsigned>(args.size()), args.data());
      }
      if (rc != 0) return fail(Error::format("seccomp: rule for {}: {}", name, strerror(-rc)));
    }
  }
  int rc = seccomp_load(ctx);
  seccomp_release(ctx);
  if (rc != 0) return Error::format("seccomp: load the filter: {}", strerror(-rc));
  return ok();
}

Error exec_process(const std::string& path, const Process& process, const std::vector<std::string>& env) {
  std::vector<char*> argv, envp;
  for (auto& a : process.args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  for (auto& e : env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);
  ::execve(path.c_str(), argv.data(), envp.data());
  return Error::from_errno(fmt::format("exec {}", process.args[0]));
}

}  // namespace doppel::oci
