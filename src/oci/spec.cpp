#include "oci/spec.h"

#include <sched.h>
#include <sys/mount.h>
#include <sys/resource.h>

#include <array>
#include <limits>

#include <nlohmann/json.hpp>

namespace doppel::oci {
namespace {

using nlohmann::json;

// The kernel's capability numbers (linux/capability.h), by name.
constexpr std::array<std::string_view, 41> kCapabilityNames = {
    "CAP_CHOWN",           "CAP_DAC_OVERRIDE",  "CAP_DAC_READ_SEARCH", "CAP_FOWNER",
    "CAP_FSETID",          "CAP_KILL",          "CAP_SETGID",          "CAP_SETUID",
    "CAP_SETPCAP",         "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",       "CAP_NET_RAW",       "CAP_IPC_LOCK",        "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",      "CAP_SYS_RAWIO",     "CAP_SYS_CHROOT",      "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",       "CAP_SYS_ADMIN",     "CAP_SYS_BOOT",        "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",    "CAP_SYS_TIME",      "CAP_SYS_TTY_CONFIG",  "CAP_MKNOD",
    "CAP_LEASE",           "CAP_AUDIT_WRITE",   "CAP_AUDIT_CONTROL",   "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",    "CAP_MAC_ADMIN",     "CAP_SYSLOG",          "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",   "CAP_AUDIT_READ",    "CAP_PERFMON",         "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE"};

struct NamedValue {
  std::string_view name;
  int value;
};
constexpr NamedValue kRlimits[] = {
    {"RLIMIT_CPU", RLIMIT_CPU},         {"RLIMIT_FSIZE", RLIMIT_FSIZE},
    {"RLIMIT_DATA", RLIMIT_DATA},       {"RLIMIT_STACK", RLIMIT_STACK},
    {"RLIMIT_CORE", RLIMIT_CORE},       {"RLIMIT_RSS", RLIMIT_RSS},
    {"RLIMIT_NPROC", RLIMIT_NPROC},     {"RLIMIT_NOFILE", RLIMIT_NOFILE},
    {"RLIMIT_MEMLOCK", RLIMIT_MEMLOCK}, {"RLIMIT_AS", RLIMIT_AS},
    {"RLIMIT_LOCKS", RLIMIT_LOCKS},     {"RLIMIT_SIGPENDING", RLIMIT_SIGPENDING},
    {"RLIMIT_MSGQUEUE", RLIMIT_MSGQUEUE}, {"RLIMIT_NICE", RLIMIT_NICE},
    {"RLIMIT_RTPRIO", RLIMIT_RTPRIO},   {"RLIMIT_RTTIME", RLIMIT_RTTIME}};

constexpr NamedValue kNamespaces[] = {
    {"pid", CLONE_NEWPID}, {"network", CLONE_NEWNET}, {"mount", CLONE_NEWNS},
    {"ipc", CLONE_NEWIPC}, {"uts", CLONE_NEWUTS},     {"user", CLONE_NEWUSER},
    {"cgroup", CLONE_NEWCGROUP}};

struct MountFlag {
  std::string_view name;
  bool clear;  // the option removes the flag ("rw" clears MS_RDONLY)
  unsigned long flag;
};
constexpr MountFlag kMountFlags[] = {
    {"ro", false, MS_RDONLY},        {"rw", true, MS_RDONLY},
    {"nosuid", false, MS_NOSUID},    {"suid", true, MS_NOSUID},
    {"nodev", false, MS_NODEV},      {"dev", true, MS_NODEV},
    {"noexec", false, MS_NOEXEC},    {"exec", true, MS_NOEXEC},
    {"sync", false, MS_SYNCHRONOUS}, {"async", true, MS_SYNCHRONOUS},
    {"dirsync", false, MS_DIRSYNC},  {"remount", false, MS_REMOUNT},
    {"mand", false, MS_MANDLOCK},    {"nomand", true, MS_MANDLOCK},
    {"atime", true, MS_NOATIME},     {"noatime", false, MS_NOATIME},
    {"diratime", true, MS_NODIRATIME}, {"nodiratime", false, MS_NODIRATIME},
    {"relatime", false, MS_RELATIME}, {"norelatime", true, MS_RELATIME},
    {"strictatime", false, MS_STRICTATIME}, {"nostrictatime", true, MS_STRICTATIME}};
constexpr NamedValue kPropagation[] = {
    {"private", MS_PRIVATE},         {"rprivate", MS_PRIVATE | MS_REC},
    {"shared", MS_SHARED},           {"rshared", MS_SHARED | MS_REC},
    {"slave", MS_SLAVE},             {"rslave", MS_SLAVE | MS_REC},
    {"unbindable", MS_UNBINDABLE},   {"runbindable", MS_UNBINDABLE | MS_REC}};

// A parse error at a field; thrown inside this file only and turned into an Error by
// parse_spec (no exception leaves the module).
struct FieldError {
  std::string message;
};

[[noreturn]] void fail(const std::string& where, const std::string& what) {
  throw FieldError{where + ": " + what};
}

const json* member(const json& object, const char* key, const std::string& where) {
  if (!object.is_object()) fail(where, "expected an object");
  auto it = object.find(key);
  if (it == object.end() || it->is_null()) return nullptr;
  return &*it;
}

std::string get_string(const json& v, const std::string& where) {
  if (!v.is_string()) fail(where, "expected a string");
  return v.get<std::string>();
}

std::optional<std::string> opt_string(const json& o, const char* key, const std::string& where) {
  const json* v = member(o, key, where);
  if (!v) return std::nullopt;
  return get_string(*v, where + "." + key);
}

bool opt_bool(const json& o, const char* key, const std::string& where, bool fallback) {
  const json* v = member(o, key, where);
  if (!v) return fallback;
  if (!v->is_boolean()) fail(where + "." + key, "expected true or false");
  return v->get<bool>();
}

template <typename T>
T get_int(const json& v, const std::string& where) {
  if (v.is_number_unsigned()) {
    auto u = v.get<uint64_t>();
    if (u > static_cast<uint64_t>(std::numeric_limits<T>::max())) fail(where, "out of range");
    return static_cast<T>(u);
  }
  if (v.is_number_integer()) {
    auto i = v.get<int64_t>();
    if constexpr (std::is_signed_v<T>) {
      if (i < static_cast<int64_t>(std::numeric_limits<T>::min()) ||
          i > static_cast<int64_t>(std::numeric_limits<T>::max()))
        fail(where, "out of range");
    } else {
      if (i < 0) fail(where, "must not be negative");
    }
    return static_cast<T>(i);
  }
  fail(where, "expected an integer");
}

template <typename T>
std::optional<T> opt_int(const json& o, const char* key, const std::string& where) {
  const json* v = member(o, key, where);
  if (!v) return std::nullopt;
  return get_int<T>(*v, where + "." + key);
}

std::vector<std::string> string_list(const json& o, const char* key, const std::string& where) {
  std::vector<std::string> out;
  const json* v = member(o, key, where);
  if (!v) return out;
  std::string at = where + "." + key;
  if (!v->is_array()) fail(at, "expected an array of strings");
  for (size_t i = 0; i < v->size(); i++) out.push_back(get_string((*v)[i], fmt::format("{}[{}]", at, i)));
  return out;
}

const json& array_member(const json& o, const char* key, const std::string& where, const json& empty) {
  const json* v = member(o, key, where);
  if (!v) return empty;
  if (!v->is_array()) fail(where + "." + key, "expected an array");
  return *v;
}

std::map<std::string, std::string> string_map(const json& o, const char* key, const std::string& where) {
  std::map<std::string, std::string> out;
  const json* v = member(o, key, where);
  if (!v) return out;
  if (!v->is_object()) fail(where + "." + key, "expected an object of strings");
  for (auto& [k, val] : v->items()) out[k] = get_string(val, where + "." + key + "." + k);
  return out;
}

bool has_nul(const std::string& s) { return s.find('\0') != std::string::npos; }

std::string checked_path(const json& v, const std::string& where, bool absolute) {
  std::string s = get_string(v, where);
  if (s.empty()) fail(where, "empty path");
  if (has_nul(s)) fail(where, "path contains a NUL byte");
  if (absolute && s[0] != '/') fail(where, fmt::format("'{}' is not an absolute path", s));
  return s;
}

std::vector<int> capability_list(const json& caps, const char* key, const std::string& where) {
  (void)where;
  std::vector<int> out;
  auto names = string_list(caps, key, where);
  // As runc and crun: a capability this runtime does not know is ignored (a newer
  // config on an older kernel), not an error.
  for (auto& name : names) {
    auto cap = capability_from_name(name);
    if (cap.ok()) out.push_back(cap.value());
  }
  return out;
}

Process parse_process_object(const json& p, const std::string& w) {
  Process proc;
  if (!p.is_object()) fail(w, "expected an object");
  proc.terminal = opt_bool(p, "terminal", w, false);
  if (const json* cs = member(p, "consoleSize", w)) {
    proc.console_height = opt_int<uint16_t>(*cs, "height", w + ".consoleSize").value_or(0);
    proc.console_width = opt_int<uint16_t>(*cs, "width", w + ".consoleSize").value_or(0);
  }
  if (const json* u = member(p, "user", w)) {
    std::string uw = w + ".user";
    proc.user.uid = opt_int<uint32_t>(*u, "uid", uw).value_or(0);
    proc.user.gid = opt_int<uint32_t>(*u, "gid", uw).value_or(0);
    proc.user.umask = opt_int<uint32_t>(*u, "umask", uw);
    json empty = json::array();
    const json& gids = array_member(*u, "additionalGids", uw, empty);
    for (size_t i = 0; i < gids.size(); i++)
      proc.user.additional_gids.push_back(get_int<uint32_t>(gids[i], fmt::format("{}.additionalGids[{}]", uw, i)));
  }
  proc.args = string_list(p, "args", w);
  if (proc.args.empty()) fail(w + ".args", "must name the program to run");
  for (auto& a : proc.args)
    if (has_nul(a)) fail(w + ".args", "argument contains a NUL byte");
  proc.env = string_list(p, "env", w);
  for (auto& e : proc.env)
    if (has_nul(e)) fail(w + ".env", "entry contains a NUL byte");
  if (const json* cwd = member(p, "cwd", w)) proc.cwd = checked_path(*cwd, w + ".cwd", true);
  if (const json* caps = member(p, "capabilities", w)) {
    std::string cw = w + ".capabilities";
    proc.capabilities.bounding = capability_list(*caps, "bounding", cw);
    proc.capabilities.effective = capability_list(*caps, "effective", cw);
    proc.capabilities.inheritable = capability_list(*caps, "inheritable", cw);
    proc.capabilities.permitted = capability_list(*caps, "permitted", cw);
    proc.capabilities.ambient = capability_list(*caps, "ambient", cw);
  }
  json empty = json::array();
  const json& rl = array_member(p, "rlimits", w, empty);
  for (size_t i = 0; i < rl.size(); i++) {
    std::string rw = fmt::format("{}.rlimits[{}]", w, i);
    Rlimit r;
    auto type = opt_string(rl[i], "type", rw);
    if (!type) fail(rw + ".type", "missing");
    auto res = rlimit_from_name(*type);
    if (!res.ok()) fail(rw + ".type", res.error().message());
    r.resource = res.value();
    r.soft = opt_int<uint64_t>(rl[i], "soft", rw).value_or(0);
    r.hard = opt_int<uint64_t>(rl[i], "hard", rw).value_or(0);
    if (r.soft > r.hard) fail(rw, "soft limit is above the hard limit");
    proc.rlimits.push_back(r);
  }
  proc.no_new_privileges = opt_bool(p, "noNewPrivileges", w, false);
  proc.oom_score_adj = opt_int<int>(p, "oomScoreAdj", w);
  if (proc.oom_score_adj && (*proc.oom_score_adj < -1000 || *proc.oom_score_adj > 1000))
    fail(w + ".oomScoreAdj", "must be between -1000 and 1000");
  return proc;
}

std::vector<Hook> parse_hooks(const json& hooks, const char* key) {
  std::vector<Hook> out;
  json empty = json::array();
  std::string w = std::string("hooks.") + key;
  const json& list = array_member(hooks, key, "hooks", empty);
  for (size_t i = 0; i < list.size(); i++) {
    std::string hw = fmt::format("{}[{}]", w, i);
    Hook h;
    const json* path = member(list[i], "path", hw);
    if (!path) fail(hw + ".path", "missing");
    h.path = checked_path(*path, hw + ".path", true);
    h.args = string_list(list[i], "args", hw);
    h.env = string_list(list[i], "env", hw);
    h.timeout = opt_int<int>(list[i], "timeout", hw);
    if (h.timeout && *h.timeout <= 0) fail(hw + ".timeout", "must be positive");
    out.push_back(std::move(h));
  }
  return out;
}

std::vector<IdMapping> parse_id_mappings(const json& l, const char* key) {
  std::vector<IdMapping> out;
  json empty = json::array();
  std::string w = std::string("linux.") + key;
  const json& list = array_member(l, key, "linux", empty);
  for (size_t i = 0; i < list.size(); i++) {
    std::string mw = fmt::format("{}[{}]", w, i);
    IdMapping m;
    m.container_id = opt_int<uint32_t>(list[i], "containerID", mw).value_or(0);
    m.host_id = opt_int<uint32_t>(list[i], "hostID", mw).value_or(0);
    m.size = opt_int<uint32_t>(list[i], "size", mw).value_or(0);
    if (m.size == 0) fail(mw + ".size", "must be at least 1");
    out.push_back(m);
  }
  return out;
}

Resources parse_resources(const json& r) {
  Resources res;
  std::string w = "linux.resources";
  if (const json* m = member(r, "memory", w)) {
    res.memory_limit = opt_int<int64_t>(*m, "limit", w + ".memory");
    res.memory_reservation = opt_int<int64_t>(*m, "reservation", w + ".memory");
    res.memory_swap = opt_int<int64_t>(*m, "swap", w + ".memory");
  }
  if (const json* c = member(r, "cpu", w)) {
    res.cpu_shares = opt_int<uint64_t>(*c, "shares", w + ".cpu");
    res.cpu_quota = opt_int<int64_t>(*c, "quota", w + ".cpu");
    res.cpu_period = opt_int<uint64_t>(*c, "period", w + ".cpu");
    res.cpuset_cpus = opt_string(*c, "cpus", w + ".cpu").value_or("");
    res.cpuset_mems = opt_string(*c, "mems", w + ".cpu").value_or("");
    for (auto* s : {&res.cpuset_cpus, &res.cpuset_mems})
      if (s->find_first_not_of("0123456789,-") != std::string::npos)
        fail(w + ".cpu", fmt::format("'{}' is not a CPU or node list", *s));
  }
  if (const json* p = member(r, "pids", w)) res.pids_limit = opt_int<int64_t>(*p, "limit", w + ".pids");
  if (const json* b = member(r, "blockIO", w)) {
    res.blkio_weight = opt_int<uint16_t>(*b, "weight", w + ".blockIO");
  }
  json empty = json::array();
  const json& devs = array_member(r, "devices", w, empty);
  for (size_t i = 0; i < devs.size(); i++) {
    std::string dw = fmt::format("{}.devices[{}]", w, i);
    DeviceRule d;
    d.allow = opt_bool(devs[i], "allow", dw, false);
    std::string type = opt_string(devs[i], "type", dw).value_or("a");
    if (type != "a" && type != "c" && type != "b") fail(dw + ".type", fmt::format("'{}' is not a, b or c", type));
    d.type = type[0];
    d.major = opt_int<int64_t>(devs[i], "major", dw).value_or(-1);
    d.minor = opt_int<int64_t>(devs[i], "minor", dw).value_or(-1);
    d.access = opt_string(devs[i], "access", dw).value_or("rwm");
    if (d.access.find_first_not_of("rwm") != std::string::npos)
      fail(dw + ".access", fmt::format("'{}' is not made of r, w and m", d.access));
    res.devices.push_back(d);
  }
  res.unified = string_map(r, "unified", w);
  for (auto& [k, v] : res.unified)
    if (k.find('/') != std::string::npos || k == "." || k == "..")
      fail(w + ".unified", fmt::format("'{}' is not a cgroup file name", k));
  return res;
}

const std::string_view kSeccompActions[] = {"SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD",
                                            "SCMP_ACT_TRAP", "SCMP_ACT_ERRNO", "SCMP_ACT_TRACE",
                                            "SCMP_ACT_ALLOW", "SCMP_ACT_LOG", "SCMP_ACT_NOTIFY"};
const std::string_view kSeccompOps[] = {"SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_EQ",
                                        "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_MASKED_EQ"};

std::string seccomp_action(const json& o, const char* key, const std::string& w) {
  auto a = opt_string(o, key, w);
  if (!a) fail(w + "." + key, "missing");
  for (auto known : kSeccompActions)
    if (*a == known) return *a;
  fail(w + "." + key, fmt::format("unknown action '{}'", *a));
}

Seccomp parse_seccomp(const json& s) {
  Seccomp sc;
  std::string w = "linux.seccomp";
  sc.default_action = seccomp_action(s, "defaultAction", w);
  sc.default_errno_ret = opt_int<uint32_t>(s, "defaultErrnoRet", w);
  sc.architectures = string_list(s, "architectures", w);
  sc.flags = string_list(s, "flags", w);
  json empty = json::array();
  const json& rules = array_member(s, "syscalls", w, empty);
  for (size_t i = 0; i < rules.size(); i++) {
    std::string rw = fmt::format("{}.syscalls[{}]", w, i);
    SeccompRule rule;
    rule.names = string_list(rules[i], "names", rw);
    rule.action = seccomp_action(rules[i], "action", rw);
    rule.errno_ret = opt_int<uint32_t>(rules[i], "errnoRet", rw);
    const json& args = array_member(rules[i], "args", rw, empty);
    for (size_t j = 0; j < args.size(); j++) {
      std::string aw = fmt::format("{}.args[{}]", rw, j);
      SeccompArg a;
      a.index = opt_int<uint32_t>(args[j], "index", aw).value_or(0);
      if (a.index > 5) fail(aw + ".index", "a system call has 6 arguments (0-5)");
      a.value = opt_int<uint64_t>(args[j], "value", aw).value_or(0);
      a.value_two = opt_int<uint64_t>(args[j], "valueTwo", aw).value_or(0);
      a.op = opt_string(args[j], "op", aw).value_or("");
      bool known = false;
      for (auto op : kSeccompOps) known = known || a.op == op;
      if (!known) fail(aw + ".op", fmt::format("unknown operator '{}'", a.op));
      rule.args.push_back(a);
    }
    sc.syscalls.push_back(std::move(rule));
  }
  return sc;
}

Linux parse_linux(const json& l) {
  Linux lx;
  std::string w = "linux";
  json empty = json::array();
  const json& ns = array_member(l, "namespaces", w, empty);
  for (size_t i = 0; i < ns.size(); i++) {
    std::string nw = fmt::format("linux.namespaces[{}]", i);
    Namespace n;
    n.type = opt_string(ns[i], "type", nw).value_or("");
    for (auto& known : kNamespaces)
      if (n.type == known.name) n.clone_flag = known.value;
    if (n.clone_flag == 0) fail(nw + ".type", fmt::format("unknown namespace type '{}'", n.type));
    if (const json* p = member(ns[i], "path", nw)) n.path = checked_path(*p, nw + ".path", true);
    for (auto& other : lx.namespaces)
      if (other.type == n.type) fail(nw, fmt::format("namespace '{}' given twice", n.type));
    lx.namespaces.push_back(std::move(n));
  }
  lx.uid_mappings = parse_id_mappings(l, "uidMappings");
  lx.gid_mappings = parse_id_mappings(l, "gidMappings");
  const json& devs = array_member(l, "devices", w, empty);
  for (size_t i = 0; i < devs.size(); i++) {
    std::string dw = fmt::format("linux.devices[{}]", i);
    Device d;
    const json* path = member(devs[i], "path", dw);
    if (!path) fail(dw + ".path", "missing");
    d.path = checked_path(*path, dw + ".path", true);
    std::string type = opt_string(devs[i], "type", dw).value_or("");
    if (type != "c" && type != "b" && type != "p" && type != "u")
      fail(dw + ".type", fmt::format("'{}' is not c, b, u or p", type));
    d.type = type == "u" ? 'c' : type[0];
    d.major = opt_int<int64_t>(devs[i], "major", dw).value_or(0);
    d.minor = opt_int<int64_t>(devs[i], "minor", dw).value_or(0);
    if (d.major < 0 || d.major > 0xfff || d.minor < 0 || d.minor > 0xfffff)
      fail(dw, "major/minor out of range");
    d.file_mode = opt_int<uint32_t>(devs[i], "fileMode", dw).value_or(0666) & 07777;
    d.uid = opt_int<uint32_t>(devs[i], "uid", dw).value_or(0);
    d.gid = opt_int<uint32_t>(devs[i], "gid", dw).value_or(0);
    lx.devices.push_back(std::move(d));
  }
  if (const json* cp = member(l, "cgroupsPath", w)) {
    lx.cgroups_path = get_string(*cp, "linux.cgroupsPath");
    if (has_nul(lx.cgroups_path)) fail("linux.cgroupsPath", "contains a NUL byte");
    // A path that climbs out of the cgroup tree is refused, not resolved.
    if (("/" + lx.cgroups_path + "/").find("/../") != std::string::npos)
      fail("linux.cgroupsPath", fmt::format("'{}' contains '..'", lx.cgroups_path));
  }
  if (const json* r = member(l, "resources", w)) lx.resources = parse_resources(*r);
  lx.rootfs_propagation = opt_string(l, "rootfsPropagation", w).value_or("");
  if (!lx.rootfs_propagation.empty()) {
    bool known = false;
    for (auto& p : kPropagation) known = known || lx.rootfs_propagation == p.name;
    if (!known) fail("linux.rootfsPropagation", fmt::format("unknown propagation '{}'", lx.rootfs_propagation));
  }
  lx.masked_paths = string_list(l, "maskedPaths", w);
  lx.readonly_paths = string_list(l, "readonlyPaths", w);
  for (auto* list : {&lx.masked_paths, &lx.readonly_paths})
    for (auto& p : *list)
      if (p.empty() || p[0] != '/' || has_nul(p)) fail("linux", fmt::format("masked/read-only path '{}' is not absolute", p));
  lx.sysctl = string_map(l, "sysctl", w);
  for (auto& [k, v] : lx.sysctl)
    if (k.empty() || k.find("..") != std::string::npos || k.find('\0') != std::string::npos)
      fail("linux.sysctl", fmt::format("'{}' is not a sysctl name", k));
  if (const json* s = member(l, "seccomp", w)) lx.seccomp = parse_seccomp(*s);
  return lx;
}

Spec parse_spec_json(const json& j) {
  Spec spec;
  if (!j.is_object()) fail("config.json", "expected an object");
  spec.oci_version = opt_string(j, "ociVersion", "").value_or("");
  if (const json* p = member(j, "process", "")) spec.process = parse_process_object(*p, "process");
  const json* root = member(j, "root", "");
  if (!root) fail("root", "missing");
  const json* root_path = member(*root, "path", "root");
  if (!root_path) fail("root.path", "missing");
  spec.root_path = checked_path(*root_path, "root.path", false);
  spec.root_readonly = opt_bool(*root, "readonly", "root", false);
  spec.hostname = opt_string(j, "hostname", "").value_or("");
  spec.domainname = opt_string(j, "domainname", "").value_or("");
  json empty = json::array();
  const json& mounts = array_member(j, "mounts", "", empty);
  for (size_t i = 0; i < mounts.size(); i++) {
    std::string mw = fmt::format("mounts[{}]", i);
    Mount m;
    const json* dest = member(mounts[i], "destination", mw);
    if (!dest) fail(mw + ".destination", "missing");
    m.destination = checked_path(*dest, mw + ".destination", true);
    m.type = opt_string(mounts[i], "type", mw).value_or("");
    m.source = opt_string(mounts[i], "source", mw).value_or("");
    if (has_nul(m.source) || has_nul(m.type)) fail(mw, "contains a NUL byte");
    m.options = string_list(mounts[i], "options", mw);
    auto parsed = parse_mount_options(m.options);
    if (!parsed.ok()) fail(mw + ".options", parsed.error().message());
    spec.mounts.push_back(std::move(m));
  }
  if (const json* h = member(j, "hooks", "")) {
    spec.hooks.prestart = parse_hooks(*h, "prestart");
    spec.hooks.create_runtime = parse_hooks(*h, "createRuntime");
    spec.hooks.create_container = parse_hooks(*h, "createContainer");
    spec.hooks.start_container = parse_hooks(*h, "startContainer");
    spec.hooks.poststart = parse_hooks(*h, "poststart");
    spec.hooks.poststop = parse_hooks(*h, "poststop");
  }
  spec.annotations = string_map(j, "annotations", "");
  if (const json* l = member(j, "linux", "")) spec.linux = parse_linux(*l);
  if (!spec.hostname.empty() && !spec.find_namespace("uts"))
    fail("hostname", "setting the hostname needs a UTS namespace");
  return spec;
}

template <typename F>
auto guarded(std::string_view text, F&& f) -> Result<decltype(f(json()))> {
  try {
    json j = json::parse(text);
    return f(j);
  } catch (const FieldError& e) {
    return Error(e.message);
  } catch (const json::exception& e) {
    return Error(fmt::format("not valid JSON: {}", e.what()));
  }
}

}  // namespace

const Namespace* Spec::find_namespace(std::string_view type) const {
  for (auto& n : linux.namespaces)
    if (n.type == type) return &n;
  return nullptr;
}

Result<MountOptions> parse_mount_options(const std::vector<std::string>& options) {
  MountOptions out;
  for (auto& o : options) {
    bool done = false;
    for (auto& f : kMountFlags) {
      if (o != f.name) continue;
      if (f.clear) {
        out.flags &= ~f.flag;
        out.clear_flags |= f.flag;
      } else {
        out.flags |= f.flag;
      }
      done = true;
    }
    for (auto& p : kPropagation) {
      if (o != p.name) continue;
      out.propagation.push_back(static_cast<unsigned long>(p.value));
      done = true;
    }
    if (o == "bind" || o == "rbind") {
      out.bind = true;
      out.recursive = out.recursive || o == "rbind";
      done = true;
    }
    if (o == "tmpcopyup" || o == "rro" || o == "rrw") done = true;
    if (o == "idmap" || o == "ridmap") return Error::format("'{}' mounts are not supported", o);
    if (done) continue;
    if (o.find('\0') != std::string::npos) return Error("option contains a NUL byte");
    if (!out.data.empty()) out.data += ",";
    out.data += o;
  }
  return out;
}

Result<Spec> parse_spec(std::string_view json_text) {
  return guarded(json_text, [](const json& j) { return parse_spec_json(j); });
}

Result<Process> parse_process(std::string_view json_text) {
  return guarded(json_text, [](const json& j) { return parse_process_object(j, "process"); });
}

Result<int> capability_from_name(std::string_view name) {
  for (size_t i = 0; i < kCapabilityNames.size(); i++)
    if (kCapabilityNames[i] == name) return static_cast<int>(i);
  return Error::format("unknown capability '{}'", name);
}

Result<int> rlimit_from_name(std::string_view name) {
  for (auto& r : kRlimits)
    if (r.name == name) return r.value;
  return Error::format("unknown rlimit '{}'", name);
}

std::vector<std::string> known_capability_names() {
  return {kCapabilityNames.begin(), kCapabilityNames.end()};
}

std::vector<std::string> known_mount_option_names() {
  std::vector<std::string> out;
  for (auto& f : kMountFlags) out.emplace_back(f.name);
  for (auto& p : kPropagation) out.emplace_back(p.name);
  out.emplace_back("bind");
  out.emplace_back("rbind");
  out.emplace_back("tmpcopyup");
  return out;
}

std::string cgroup_path_for(const Spec& spec, const std::string& id) {
  if (!spec.linux.cgroups_path.empty()) {
    std::string p = spec.linux.cgroups_path;
    return p[0] == '/' ? p : "/" + p;
  }
  return "/" + id;
}

}  // namespace doppel::oci
