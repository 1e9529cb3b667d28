#include "oci/runtime.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/close_range.h>
#include <poll.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <chrono>
#include <climits>
#include <cstring>
#include <ctime>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "base/unique_fd.h"
#include "sandbox/cgroup.h"
#include "sandbox/files.h"
#include "oci/hooks.h"
#include "oci/init.h"
#include "oci/process.h"
#include "oci/sync.h"

namespace doppel::oci {
// File helpers and cgroups: the sandbox layer, shared with the jailer.
using namespace sandbox;

using nlohmann::json;

namespace {
constexpr const char* kCgroupRoot = "/sys/fs/cgroup";

// Where the container's cgroup hierarchies are: /sys/fs/cgroup, or (tests) the directory in
// DOPPEL_OCI_CGROUP_ROOT, e.g. a hybrid host's /sys/fs/cgroup/unified to run on its v2 tree.
std::string cgroup_root() {
  const char* dir = std::getenv("DOPPEL_OCI_CGROUP_ROOT");
  return dir && *dir ? dir : kCgroupRoot;
}
}  // namespace

// What the state directory holds about one container.
struct Runtime::Loaded {
  ContainerState state;
  unsigned long long start_time = 0;  // /proc/<pid>/stat field 22, against pid reuse
  std::string cgroup_path;            // empty: no cgroup (--cgroup-manager disabled)
  std::string cgroup_root = kCgroupRoot;
  std::string dir;
  Spec spec;
  std::optional<Cgroup> cgroup;
};

// Everything create made so far, undone on failure (no half-made container is left).
struct CreateCleanup {
  std::string state_dir;
  std::optional<Cgroup> cgroup;
  pid_t pid = 0;
  bool armed = true;
  ~CreateCleanup() {
    if (!armed) return;
    if (pid > 0) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
    if (cgroup) (void)cgroup->destroy();
    if (!state_dir.empty()) {
      for (const char* f : {"exec.fifo", "state.json", "config.json", "state.json.tmp"})
        ::unlink((state_dir + "/" + f).c_str());
      ::rmdir(state_dir.c_str());
    }
  }
};

namespace {

std::string now_rfc3339() {
  struct timespec ts {};
  clock_gettime(CLOCK_REALTIME, &ts);
  struct tm tm {};
  gmtime_r(&ts.tv_sec, &tm);
  char buf[64];
  strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  return fmt::format("{}.{:09}Z", buf, ts.tv_nsec);
}

// Field 22 (starttime) and field 3 (state) of /proc/<pid>/stat.
bool proc_stat(pid_t pid, unsigned long long* start_time, char* state) {
  auto text = read_file(fmt::format("/proc/{}/stat", pid));
  if (!text.ok()) return false;
  auto close = text.value().rfind(')');
  if (close == std::string::npos) return false;
  std::stringstream ss(text.value().substr(close + 2));
  std::string field;
  std::vector<std::string> f;
  while (ss >> field) f.push_back(field);
  if (f.size() < 20) return false;
  *state = f[0][0];
  *start_time = std::stoull(f[19]);
  return true;
}

bool alive(pid_t pid, unsigned long long start_time) {
  unsigned long long st = 0;
  char s = 0;
  if (pid <= 0 || !proc_stat(pid, &st, &s)) return false;
  return st == start_time && s != 'Z' && s != 'X';
}

std::string owner_name() {
  struct passwd* pw = getpwuid(::geteuid());
  return pw ? pw->pw_name : fmt::format("{}", ::geteuid());
}

Result<std::string> absolute(const std::string& path) {
  char buf[PATH_MAX];
  if (!::realpath(path.c_str(), buf)) return Error::from_errno(path);
  return std::string(buf);
}

Result<void> write_id_map(pid_t pid, const char* file, const std::vector<IdMapping>& maps) {
  std::string text;
  for (auto& m : maps) text += fmt::format("{} {} {}\n", m.container_id, m.host_id, m.size);
  return write_file(fmt::format("/proc/{}/{}", pid, file), text);
}

void reap(pid_t pid) {
  while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
  }
}

int wait_status_code(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 1;
}

Result<UniqueFd> connect_console_socket(const std::string& path) {
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return Error::from_errno("socket");
  struct sockaddr_un addr {};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) return Error::format("--console-socket {}: path too long", path);
  std::memcpy(addr.sun_path, path.c_str(), path.size());
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
    return Error::from_errno(fmt::format("--console-socket {}", path));
  return fd;
}

// The namespaces of `pid`, opened, user first and mount last (setns order).
Result<std::vector<std::pair<std::string, UniqueFd>>> open_namespaces(pid_t pid) {
  std::vector<std::pair<std::string, UniqueFd>> out;
  for (const char* ns : {"user", "ipc", "uts", "net", "pid", "cgroup", "mnt"}) {
    std::string theirs = fmt::format("/proc/{}/ns/{}", pid, ns), mine = fmt::format("/proc/self/ns/{}", ns);
    struct stat a {}, b {};
    if (::stat(theirs.c_str(), &a) != 0) continue;
    if (::stat(mine.c_str(), &b) == 0 && a.st_ino == b.st_ino && a.st_dev == b.st_dev) continue;
    UniqueFd fd(::open(theirs.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd.valid()) return Error::from_errno(theirs);
    out.emplace_back(ns, std::move(fd));
  }
  return out;
}

pid_t clone_parent(unsigned long flags) {
  return static_cast<pid_t>(::syscall(SYS_clone, flags | CLONE_PARENT | SIGCHLD, nullptr, nullptr, nullptr, nullptr));
}

// Forwarded to the container by a foreground `run`/`exec`.
volatile sig_atomic_t g_forward_pid = 0;
void forward_signal(int sig) {
  if (g_forward_pid > 0) ::kill(g_forward_pid, sig);
}

int wait_foreground(pid_t pid) {
  g_forward_pid = pid;
  struct sigaction sa {};
  sa.sa_handler = forward_signal;
  for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH}) ::sigaction(sig, &sa, nullptr);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  g_forward_pid = 0;
  return wait_status_code(status);
}

}  // namespace

std::string ContainerState::to_json(bool pretty) const {
  json j;
  j["ociVersion"] = "1.0.2";
  j["id"] = id;
  j["pid"] = status == "stopped" ? 0 : pid;
  j["status"] = status;
  j["bundle"] = bundle;
  j["rootfs"] = rootfs;
  j["created"] = created;
  j["owner"] = owner;
  if (!annotations.empty()) j["annotations"] = annotations;
  return pretty ? j.dump(2) : j.dump();
}

Result<void> validate_container_id(const std::string& id) {
  if (id.empty()) return Error("container id cannot be empty");
  if (id == "." || id == ".." || id.size() > 1024) return Error::format("invalid container id '{}'", id);
  for (char c : id)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '+' || c == '-' || c == '.'))
      return Error::format("invalid container id '{}': only letters, digits and _+-. are allowed", id);
  return ok();
}

Result<int> parse_signal(const std::string& text) {
  if (!text.empty() && std::isdigit(static_cast<unsigned char>(text[0]))) {
    char* end = nullptr;
    long v = std::strtol(text.c_str(), &end, 10);
    if (*end || v <= 0 || v >= NSIG) return Error::format("invalid signal '{}'", text);
    return static_cast<int>(v);
  }
  std::string name = text.rfind("SIG", 0) == 0 ? text.substr(3) : text;
  for (int s = 1; s < NSIG; s++) {
    const char* abbrev = sigabbrev_np(s);
    if (abbrev && name == abbrev) return s;
  }
  return Error::format("invalid signal '{}'", text);
}

Result<void> validate_sysctls(const Spec& spec) {
  auto new_ns = [&](const char* type) {
    const Namespace* n = spec.find_namespace(type);
    return n != nullptr;
  };
  static const char* kIpc[] = {"kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem",
                               "kernel.shmall", "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced"};
  for (auto& [key, value] : spec.linux.sysctl) {
    bool ipc = key.rfind("fs.mqueue.", 0) == 0;
    for (auto k : kIpc) ipc = ipc || key == k;
    if (ipc) {
      if (!new_ns("ipc")) return Error::format("sysctl {}: needs an IPC namespace", key);
      continue;
    }
    if (key.rfind("net.", 0) == 0) {
      if (!new_ns("network")) return Error::format("sysctl {}: needs a network namespace", key);
      continue;
    }
    if (key == "kernel.domainname") {
      if (!new_ns("uts")) return Error::format("sysctl {}: needs a UTS namespace", key);
      continue;
    }
    if (key == "kernel.hostname") return Error::format("sysctl {}: use the config's hostname", key);
    return Error::format("sysctl {}: not allowed in a container (not namespaced)", key);
  }
  return ok();
}

Result<pid_t> Runtime::spawn(const CreateOptions& o, bool wait_on_fifo, CreateCleanup& cleanup) {
  TRY(validate_container_id(o.id));
  std::string bundle = TRY(absolute(o.bundle.empty() ? "." : o.bundle).context("bundle"));
  std::string config_path = o.config[0] == '/' ? o.config : bundle + "/" + o.config;
  std::string config_text = TRY(read_file(config_path));
  Spec spec = TRY(parse_spec(config_text).context(config_path));
  if (!spec.process) return Error::format("{}: process: missing", config_path);
  TRY(validate_sysctls(spec));
  std::string root_rel = spec.root_path[0] == '/' ? spec.root_path : bundle + "/" + spec.root_path;
  std::string rootfs = TRY(absolute(root_rel).context("root.path"));
  struct stat st {};
  if (::stat(rootfs.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) return Error::format("root.path: {} is not a directory", rootfs);
  int preserve_fds = o.preserve_fds;
  if (const char* listen = ::getenv("LISTEN_FDS"); listen && std::atoi(listen) > 0) {
    // systemd socket activation, as runc: the sockets (fds 3...) and their variables
    // reach the container's process, whose pid there is 1.
    preserve_fds += std::atoi(listen);
    spec.process->env.push_back(fmt::format("LISTEN_FDS={}", std::atoi(listen)));
    spec.process->env.push_back("LISTEN_PID=1");
  }
  if (spec.process->terminal && o.console_socket.empty())
    return Error("process.terminal is true but no console was given: use --console-socket");
  UniqueFd console;
  if (!o.console_socket.empty()) console = TRY(connect_console_socket(o.console_socket));

  TRY(mkdir_all(m_options.root, 0700));
  std::string dir = m_options.root + "/" + o.id;
  if (::mkdir(dir.c_str(), 0711) != 0) {
    if (errno == EEXIST) return Error::format("container with id {} already exists", o.id);
    return Error::from_errno(dir);
  }
  cleanup.state_dir = dir;
  TRY(write_file_atomic(dir + "/config.json", config_text));
  UniqueFd fifo;
  if (wait_on_fifo) {
    std::string fifo_path = dir + "/exec.fifo";
    if (::mkfifo(fifo_path.c_str(), 0622) != 0) return Error::from_errno(fifo_path);
    ::chmod(fifo_path.c_str(), 0622);
    fifo = UniqueFd(::open(fifo_path.c_str(), O_PATH | O_CLOEXEC));
    if (!fifo.valid()) return Error::from_errno(fifo_path);
  }
  std::string cgroup_path;
  if (m_options.cgroup_manager == CgroupManager::kCgroupfs) {
    cgroup_path = cgroup_path_for(spec, o.id);
    Cgroup cg = TRY(Cgroup::open(cgroup_path, cgroup_root()));
    TRY(cg.create(spec.linux.resources, spec.linux.devices));
    cleanup.cgroup = cg;
  }

  InitOptions init;
  init.spec = &spec;
  init.bundle = bundle;
  init.rootfs = rootfs;
  init.fifo_fd = fifo.valid() ? fifo.get() : -1;
  init.console_socket = console.valid() ? console.get() : -1;
  init.no_pivot = o.no_pivot;
  init.preserve_fds = preserve_fds;
  const Namespace* userns = spec.find_namespace("user");
  init.new_user_ns = userns && userns->path.empty();
  const Namespace* cgns = spec.find_namespace("cgroup");
  init.new_cgroup_ns = cgns && cgns->path.empty();
  init.runtime_hooks = !spec.hooks.prestart.empty() || !spec.hooks.create_runtime.empty() ||
                       !spec.hooks.create_container.empty() || !spec.hooks.start_container.empty();
  if (cleanup.cgroup) {
    init.cgroup_unified = cleanup.cgroup->unified();
    init.cgroup_dirs = cleanup.cgroup->dirs();
  }
  if (init.new_user_ns && (spec.linux.uid_mappings.empty() || spec.linux.gid_mappings.empty()))
    return Error("linux.uidMappings and linux.gidMappings are required with a new user namespace");

  // Open the namespaces to join before forking, so a bad path fails here.
  std::vector<std::pair<std::string, UniqueFd>> joins;
  for (const char* type : {"user", "ipc", "uts", "network", "pid", "cgroup", "mount"}) {
    const Namespace* n = spec.find_namespace(type);
    if (!n || n->path.empty()) continue;
    UniqueFd fd(::open(n->path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd.valid()) return Error::from_errno(fmt::format("namespace {} {}", type, n->path));
    joins.emplace_back(type, std::move(fd));
  }
  unsigned long clone_flags = 0;
  for (auto& n : spec.linux.namespaces)
    if (n.path.empty() && n.clone_flag != CLONE_NEWCGROUP) clone_flags |= static_cast<unsigned long>(n.clone_flag);

  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) return Error::from_errno("socketpair");
  UniqueFd ours(sv[0]), theirs(sv[1]);
  init.sync_fd = theirs.get();

  // Stage 1 joins the namespaces given by path, then clones the init as our sibling
  // (CLONE_PARENT) so that the init is this process's child, and exits.
  pid_t stage1 = ::fork();
  if (stage1 < 0) return Error::from_errno("fork");
  if (stage1 == 0) {
    ours.reset();
    for (auto& [type, fd] : joins) {
      if (::setns(fd.get(), 0) != 0) {
        (void)sync_send(theirs.get(), SyncKind::kError,
                        fmt::format("join the {} namespace: {}", type, strerror(errno)));
        ::_exit(1);
      }
    }
    pid_t child = clone_parent(clone_flags);
    if (child < 0) {
      (void)sync_send(theirs.get(), SyncKind::kError, fmt::format("clone: {}", strerror(errno)));
      ::_exit(1);
    }
    if (child == 0) container_init(init);
    (void)sync_send(theirs.get(), SyncKind::kPid, fmt::format("{}", child));
    ::_exit(0);
  }
  theirs.reset();
  reap(stage1);
  auto first = TRY(sync_recv(ours.get()));
  if (first.kind == SyncKind::kError) return Error(first.text);
  if (first.kind != SyncKind::kPid) return Error("unexpected message from the container");
  pid_t pid = static_cast<pid_t>(std::stol(first.text));
  cleanup.pid = pid;

  if (init.new_user_ns) {
    TRY(write_id_map(pid, "uid_map", spec.linux.uid_mappings).context("uid_map"));
    TRY(write_id_map(pid, "gid_map", spec.linux.gid_mappings).context("gid_map"));
  }
  if (cleanup.cgroup) TRY(cleanup.cgroup->add_process(pid));
  TRY(sync_send(ours.get(), SyncKind::kGo));

  unsigned long long start_time = 0;
  char s = 0;
  proc_stat(pid, &start_time, &s);
  ContainerState cs;
  cs.id = o.id;
  cs.pid = pid;
  cs.status = "creating";
  cs.bundle = bundle;
  cs.rootfs = rootfs;
  cs.created = now_rfc3339();
  cs.owner = owner_name();
  cs.annotations = spec.annotations;
  for (;;) {
    auto msg = TRY(sync_recv(ours.get()));
    if (msg.kind == SyncKind::kError) return Error(msg.text);
    if (msg.kind == SyncKind::kReady) break;
    if (msg.kind == SyncKind::kHooks) {
      std::string state_json = cs.to_json(false);
      TRY(run_hooks(spec.hooks.prestart, state_json, "prestart"));
      TRY(run_hooks(spec.hooks.create_runtime, state_json, "createRuntime"));
      TRY(sync_send(ours.get(), SyncKind::kGo, state_json));
      continue;
    }
    return Error("unexpected message from the container");
  }
  json saved;
  saved["id"] = cs.id;
  saved["pid"] = pid;
  saved["start_time"] = start_time;
  saved["bundle"] = bundle;
  saved["rootfs"] = rootfs;
  saved["created"] = cs.created;
  saved["owner"] = cs.owner;
  saved["cgroup_path"] = cgroup_path;
  saved["cgroup_root"] = cgroup_root();
  TRY(write_file_atomic(dir + "/state.json", saved.dump()));
  if (!o.pid_file.empty()) TRY(write_file_atomic(o.pid_file, fmt::format("{}", pid)).context("--pid-file"));
  return pid;
}

Result<void> Runtime::create(const CreateOptions& options) {
  CreateCleanup cleanup;
  TRY(spawn(options, true, cleanup));
  cleanup.armed = false;
  return ok();
}

Result<int> Runtime::run(const CreateOptions& options, bool detach) {
  pid_t pid;
  {
    CreateCleanup cleanup;
    pid = TRY(spawn(options, false, cleanup));
    cleanup.armed = false;
  }
  Loaded c = TRY(load(options.id));
  auto hooks = run_hooks(c.spec.hooks.poststart, c.state.to_json(false), "poststart");
  if (!hooks.ok()) {
    destroy(c);
    return hooks.release_error();
  }
  if (detach) return 0;
  int code = wait_foreground(pid);
  Loaded after = TRY(load(options.id));
  destroy(after);
  return code;
}

Result<Runtime::Loaded> Runtime::load(const std::string& id) const {
  TRY(validate_container_id(id));
  Loaded c;
  c.dir = m_options.root + "/" + id;
  auto text = read_file(c.dir + "/state.json");
  if (!text.ok()) {
    if (text.error().errno_value() == ENOENT) return Error::format("container {} does not exist", id);
    return text.release_error();
  }
  try {
    json j = json::parse(text.value());
    c.state.id = j.at("id").get<std::string>();
    c.state.pid = j.at("pid").get<pid_t>();
    c.start_time = j.at("start_time").get<unsigned long long>();
    c.state.bundle = j.at("bundle").get<std::string>();
    c.state.rootfs = j.at("rootfs").get<std::string>();
    c.state.created = j.at("created").get<std::string>();
    c.state.owner = j.at("owner").get<std::string>();
    c.cgroup_path = j.at("cgroup_path").get<std::string>();
    c.cgroup_root = j.value("cgroup_root", std::string(kCgroupRoot));
  } catch (const json::exception& e) {
    return Error::format("{}/state.json: {}", c.dir, e.what());
  }
  auto config = TRY(read_file(c.dir + "/config.json"));
  c.spec = TRY(parse_spec(config).context(c.dir + "/config.json"));
  c.state.annotations = c.spec.annotations;
  if (!c.cgroup_path.empty()) {
    auto cg = Cgroup::open(c.cgroup_path, c.cgroup_root);
    if (cg.ok()) c.cgroup = cg.release_value();
  }
  struct stat st {};
  if (!alive(c.state.pid, c.start_time)) c.state.status = "stopped";
  else if (::stat((c.dir + "/exec.fifo").c_str(), &st) == 0) c.state.status = "created";
  else if (c.cgroup && c.cgroup->frozen()) c.state.status = "paused";
  else c.state.status = "running";
  return c;
}

Result<ContainerState> Runtime::state(const std::string& id) const {
  Loaded c = TRY(load(id));
  return c.state;
}

Result<std::vector<ContainerState>> Runtime::list() const {
  std::vector<ContainerState> out;
  DIR* d = ::opendir(m_options.root.c_str());
  if (!d) {
    if (errno == ENOENT) return out;
    return Error::from_errno(m_options.root);
  }
  std::vector<std::string> ids;
  while (struct dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    if (name != "." && name != "..") ids.push_back(name);
  }
  ::closedir(d);
  std::sort(ids.begin(), ids.end());
  for (auto& id : ids) {
    auto c = load(id);
    if (c.ok()) out.push_back(c.value().state);
  }
  return out;
}

Result<void> Runtime::start(const std::string& id) {
  Loaded c = TRY(load(id));
  if (c.state.status != "created")
    return Error::format("cannot start a container that is {} (only a created one)", c.state.status);
  std::string fifo_path = c.dir + "/exec.fifo";
  UniqueFd fifo(::open(fifo_path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC));
  if (!fifo.valid()) return Error::from_errno(fifo_path);
  // The init opens its end, writes one byte, and execs (closing it). Wait for the byte,
  // watching that the init is still there.
  for (;;) {
    struct pollfd p = {fifo.get(), POLLIN, 0};
    int r = ::poll(&p, 1, 100);
    if (r > 0) {
      char b;
      ssize_t n = ::read(fifo.get(), &b, 1);
      if (n == 1) break;
    }
    if (!alive(c.state.pid, c.start_time)) return Error("the container's process exited before start");
  }
  ::unlink(fifo_path.c_str());
  c.state.status = "running";
  auto hooks = run_hooks(c.spec.hooks.poststart, c.state.to_json(false), "poststart");
  if (!hooks.ok()) {
    // runtime-spec: a failing poststart hook is a warning; the container keeps running.
    fmt::print(stderr, "doppel oci: warning: {}\n", hooks.error().message());
  }
  return ok();
}

Result<void> Runtime::kill(const std::string& id, int signal, bool all) {
  Loaded c = TRY(load(id));
  if (c.state.status == "stopped") return Error::format("container {} is not running", id);
  if (all && c.cgroup) {
    auto pids = TRY(c.cgroup->processes());
    for (pid_t p : pids) ::kill(p, signal);
    if (signal == SIGKILL && c.state.status == "paused") (void)c.cgroup->set_frozen(false);
    return ok();
  }
  if (::kill(c.state.pid, signal) != 0) return Error::from_errno(fmt::format("kill {}", c.state.pid));
  return ok();
}

void Runtime::destroy(const Loaded& c) {
  if (c.cgroup) {
    auto r = c.cgroup->destroy();
    if (!r.ok()) fmt::print(stderr, "doppel oci: warning: {}\n", r.error().message());
  }
  auto hooks = run_hooks(c.spec.hooks.poststop, c.state.to_json(false), "poststop");
  if (!hooks.ok()) fmt::print(stderr, "doppel oci: warning: {}\n", hooks.error().message());
  for (const char* f : {"exec.fifo", "state.json", "config.json", "state.json.tmp"})
    ::unlink((c.dir + "/" + f).c_str());
  ::rmdir(c.dir.c_str());
}

Result<void> Runtime::remove(const std::string& id, bool force) {
  auto loaded = load(id);
  if (!loaded.ok()) {
    if (force && loaded.error().message().find("does not exist") != std::string::npos) return ok();
    return loaded.release_error();
  }
  Loaded c = loaded.release_value();
  if (c.state.status == "running" || c.state.status == "paused") {
    if (!force)
      return Error::format("cannot delete container {} that is not stopped: {}", id, c.state.status);
  }
  if (c.state.status != "stopped") {
    // Every process of the container, then wait until the init is gone.
    if (c.cgroup) {
      auto pids = c.cgroup->processes();
      if (pids.ok())
        for (pid_t p : pids.value()) ::kill(p, SIGKILL);
      if (c.state.status == "paused") (void)c.cgroup->set_frozen(false);
    }
    ::kill(c.state.pid, SIGKILL);
    for (int i = 0; i < 2000 && alive(c.state.pid, c.start_time); i++) {
      // Our own child (a `run` in this process): reap it.
      ::waitpid(c.state.pid, nullptr, WNOHANG);
      // Still there: someone else's freezer cgroup may hold it (crun's test_delete.py
      // does that); back in the container's own cgroups, which are thawed, the kill lands.
      if (i == 100 && c.cgroup) (void)c.cgroup->add_process(c.state.pid);
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    if (alive(c.state.pid, c.start_time)) {
      // E.g. frozen by someone else's freezer cgroup: the kill stays pending. The
      // container is deleted; its cgroups stay until the process is gone.
      fmt::print(stderr, "doppel oci: warning: delete {}: process {} has not exited after SIGKILL\n", id,
                 c.state.pid);
    }
    c.state.status = "stopped";
  }
  destroy(c);
  return ok();
}

Result<void> Runtime::pause(const std::string& id) {
  Loaded c = TRY(load(id));
  if (c.state.status != "running") return Error::format("container {} is not running", id);
  if (!c.cgroup) return Error("pause needs a cgroup (the freezer)");
  return c.cgroup->set_frozen(true);
}

Result<void> Runtime::resume(const std::string& id) {
  Loaded c = TRY(load(id));
  if (c.state.status != "paused") return Error::format("container {} is not paused", id);
  return c.cgroup->set_frozen(false);
}

Result<std::vector<pid_t>> Runtime::processes(const std::string& id) const {
  Loaded c = TRY(load(id));
  if (!c.cgroup) return std::vector<pid_t>{c.state.pid};
  return c.cgroup->processes();
}

Result<int> Runtime::exec(const ExecOptions& o) {
  Loaded c = TRY(load(o.id));
  if (c.state.status != "running" && c.state.status != "created")
    return Error::format("cannot exec in a {} container", c.state.status);
  Process proc;
  if (!o.process_file.empty()) {
    proc = TRY(parse_process(TRY(read_file(o.process_file))).context(o.process_file));
  } else {
    if (o.args.empty()) return Error("exec: no command given");
    proc = *c.spec.process;
    proc.args = o.args;
    proc.terminal = o.tty;
    for (auto& e : o.env) {
      // --env KEY=V replaces the config's KEY.
      std::string key = e.substr(0, e.find('='));
      std::erase_if(proc.env, [&](const std::string& old) { return old.substr(0, old.find('=')) == key; });
      proc.env.push_back(e);
    }
    if (!o.cwd.empty()) proc.cwd = o.cwd;
    if (o.uid) proc.user.uid = *o.uid;
    if (o.gid) proc.user.gid = *o.gid;
    if (!o.additional_gids.empty()) proc.user.additional_gids = o.additional_gids;
    for (auto& name : o.caps) {
      // An unknown capability is ignored, as in config.json.
      auto known = capability_from_name(name);
      if (!known.ok()) continue;
      int cap = known.value();
      for (auto* set : {&proc.capabilities.bounding, &proc.capabilities.effective, &proc.capabilities.permitted})
        set->push_back(cap);
    }
    if (o.no_new_privs) proc.no_new_privileges = true;
  }
  if (proc.terminal && o.console_socket.empty())
    return Error("exec: a terminal was asked for but no console was given: use --console-socket");
  UniqueFd console;
  if (!o.console_socket.empty()) console = TRY(connect_console_socket(o.console_socket));
  auto namespaces = TRY(open_namespaces(c.state.pid));
  bool user_ns = false;
  for (auto& [name, fd] : namespaces) user_ns = user_ns || name == "user";

  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) return Error::from_errno("socketpair");
  UniqueFd ours(sv[0]), theirs(sv[1]);
  pid_t stage1 = ::fork();
  if (stage1 < 0) return Error::from_errno("fork");
  if (stage1 == 0) {
    ours.reset();
    int sync = theirs.get();
    for (auto& [name, fd] : namespaces) {
      if (::setns(fd.get(), 0) != 0) {
        (void)sync_send(sync, SyncKind::kError, fmt::format("join the {} namespace: {}", name, strerror(errno)));
        ::_exit(1);
      }
    }
    pid_t child = clone_parent(0);
    if (child < 0) {
      (void)sync_send(sync, SyncKind::kError, fmt::format("clone: {}", strerror(errno)));
      ::_exit(1);
    }
    if (child > 0) {
      (void)sync_send(sync, SyncKind::kPid, fmt::format("{}", child));
      ::_exit(0);
    }
    auto fail = [&](const Error& e) {
      (void)sync_send(sync, SyncKind::kError, e.message());
      ::_exit(1);
    };
    auto go = sync_recv(sync);
    if (!go.ok()) ::_exit(1);
    if (proc.terminal) {
      auto r = setup_console(proc, console.get());
      if (!r.ok()) fail(r.error());
    }
    if (::chdir(proc.cwd.c_str()) != 0) fail(Error::from_errno(fmt::format("chdir to cwd (\"{}\")", proc.cwd)));
    auto path = find_executable(proc);
    if (!path.ok()) fail(path.error());
    auto env = process_environment(proc);
    ::syscall(SYS_close_range, 3 + o.preserve_fds, ~0U, CLOSE_RANGE_CLOEXEC);
    auto caps = apply_user_and_capabilities(proc, !user_ns);
    if (!caps.ok()) fail(caps.error());
    (void)sync_send(sync, SyncKind::kReady);
    if (c.spec.linux.seccomp) {
      auto s = apply_seccomp(*c.spec.linux.seccomp);
      if (!s.ok()) {
        fmt::print(stderr, "doppel oci: exec: {}\n", s.error().message());
        ::_exit(1);
      }
    }
    Error e = exec_process(path.value(), proc, env);
    fmt::print(stderr, "doppel oci: exec: {}\n", e.message());
    ::_exit(127);
  }
  theirs.reset();
  console.reset();
  reap(stage1);
  auto first = TRY(sync_recv(ours.get()));
  if (first.kind == SyncKind::kError) return Error(first.text);
  pid_t pid = static_cast<pid_t>(std::stol(first.text));
  auto abort_child = [&](Error e) -> Result<int> {
    ::kill(pid, SIGKILL);
    reap(pid);
    return e;
  };
  if (c.cgroup) {
    auto r = c.cgroup->add_process(pid);
    if (!r.ok()) return abort_child(r.release_error());
  }
  auto sent = sync_send(ours.get(), SyncKind::kGo);
  if (!sent.ok()) return abort_child(sent.release_error());
  auto msg = sync_recv(ours.get());
  if (!msg.ok()) return abort_child(msg.release_error());
  if (msg.value().kind == SyncKind::kError) {
    reap(pid);
    return Error(msg.value().text);
  }
  if (!o.pid_file.empty()) {
    auto w = write_file_atomic(o.pid_file, fmt::format("{}", pid));
    if (!w.ok()) return abort_child(w.release_error().context("--pid-file"));
  }
  if (o.detach) return 0;
  return wait_foreground(pid);
}

}  // namespace doppel::oci
