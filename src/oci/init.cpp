#include "oci/init.h"

#include <fcntl.h>
#include <grp.h>
#include <linux/close_range.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <sstream>

#include "base/unique_fd.h"
#include "sandbox/files.h"
#include "oci/hooks.h"
#include "oci/process.h"
#include "oci/sync.h"

namespace doppel::oci {
// File helpers and cgroups: the sandbox layer, shared with the jailer.
using namespace sandbox;
namespace {

// Flags a bind remount must keep: in a user namespace they are locked and dropping one is
// EPERM.
unsigned long locked_flags(const std::string& path) {
  struct statvfs st {};
  if (::statvfs(path.c_str(), &st) != 0) return 0;
  unsigned long f = 0;
  if (st.f_flag & ST_NOSUID) f |= MS_NOSUID;
  if (st.f_flag & ST_NODEV) f |= MS_NODEV;
  if (st.f_flag & ST_NOEXEC) f |= MS_NOEXEC;
  if (st.f_flag & ST_RDONLY) f |= MS_RDONLY;
  if (st.f_flag & ST_NOATIME) f |= MS_NOATIME;
  if (st.f_flag & ST_NODIRATIME) f |= MS_NODIRATIME;
  if (st.f_flag & ST_RELATIME) f |= MS_RELATIME;
  return f;
}

Result<void> do_mount(const std::string& source, const std::string& target, const std::string& type,
                      unsigned long flags, const std::string& data) {
  if (::mount(source.empty() ? nullptr : source.c_str(), target.c_str(), type.empty() ? nullptr : type.c_str(),
              flags, data.empty() ? nullptr : data.c_str()) != 0)
    return Error::from_errno(fmt::format("mount {} to {}", source.empty() ? type : source, target));
  return ok();
}

// mkdir -p of a container path, each component resolved inside the root.
Result<void> make_dir_in_root(const std::string& root, const std::string& path) {
  std::string cur;
  std::stringstream ss(path);
  std::string part;
  while (std::getline(ss, part, '/')) {
    if (part.empty()) continue;
    cur += "/" + part;
    std::string host = resolve_in_root(root, cur);
    if (::mkdir(host.c_str(), 0755) != 0 && errno != EEXIST) return Error::from_errno(fmt::format("mkdir {}", host));
  }
  return ok();
}

// The mount point for a destination: a directory, or an empty file when the source is
// not a directory (a bind mount of a file).
Result<std::string> make_mount_point(const std::string& root, const std::string& dest, bool file) {
  std::string host = resolve_in_root(root, dest);
  struct stat st {};
  if (::lstat(host.c_str(), &st) == 0) return host;
  if (!file) {
    TRY(make_dir_in_root(root, dest));
    return resolve_in_root(root, dest);
  }
  auto slash = dest.rfind('/');
  TRY(make_dir_in_root(root, dest.substr(0, slash)));
  host = resolve_in_root(root, dest);
  int fd = ::open(host.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
  if (fd < 0) return Error::from_errno(fmt::format("create {}", host));
  ::close(fd);
  return host;
}

Result<void> apply_propagation(const std::string& target, const MountOptions& o) {
  for (unsigned long p : o.propagation) TRY(do_mount("", target, "", p, ""));
  return ok();
}

Result<void> mount_cgroup(const InitOptions& opt, const Mount& m, const MountOptions& o, const std::string& target) {
  unsigned long flags = o.flags & ~static_cast<unsigned long>(MS_RDONLY);
  if (opt.cgroup_unified) {
    if (opt.new_cgroup_ns) {
      auto r = do_mount("cgroup2", target, "cgroup2", o.flags, "");
      if (r.ok()) return ok();
    }
    TRY(do_mount(opt.cgroup_dirs[0].second, target, "", MS_BIND | MS_REC, ""));
    if (o.flags & MS_RDONLY)
      TRY(do_mount("", target, "", MS_BIND | MS_REMOUNT | MS_RDONLY | locked_flags(target), ""));
    return ok();
  }
  // cgroup v1: a tmpfs holding each hierarchy's own directory of this container.
  TRY(do_mount("tmpfs", target, "tmpfs", flags, "mode=755"));
  for (auto& [name, dir] : opt.cgroup_dirs) {
    std::string sub = target + "/" + name;
    if (::mkdir(sub.c_str(), 0755) != 0 && errno != EEXIST) return Error::from_errno(fmt::format("mkdir {}", sub));
    TRY(do_mount(dir, sub, "", MS_BIND | MS_REC, ""));
    if (o.flags & MS_RDONLY) TRY(do_mount("", sub, "", MS_BIND | MS_REMOUNT | MS_RDONLY | locked_flags(sub), ""));
  }
  if (o.flags & MS_RDONLY) TRY(do_mount("", target, "", MS_REMOUNT | MS_RDONLY | flags, "mode=755"));
  (void)m;
  return ok();
}

Result<void> mount_one(const InitOptions& opt, const Mount& m) {
  MountOptions o = TRY(parse_mount_options(m.options));
  bool bind = o.bind || m.type == "bind";
  std::string source = m.source;
  if (bind && !source.empty() && source[0] != '/') source = opt.bundle + "/" + source;
  bool file = false;
  if (bind) {
    struct stat st {};
    if (::stat(source.c_str(), &st) != 0) return Error::from_errno(fmt::format("mount {}", source));
    file = !S_ISDIR(st.st_mode);
  }
  std::string target = TRY(make_mount_point(opt.rootfs, m.destination, file));
  if (m.type == "cgroup" || m.type == "cgroup2") return mount_cgroup(opt, m, o, target);
  if (bind) {
    TRY(do_mount(source, target, "", MS_BIND | (o.recursive ? MS_REC : 0), ""));
    unsigned long extra = o.flags & ~static_cast<unsigned long>(MS_REMOUNT);
    if (extra) TRY(do_mount("", target, "", MS_BIND | MS_REMOUNT | extra | (locked_flags(target) & ~o.clear_flags & ~static_cast<unsigned long>(MS_RDONLY)), ""));
    return apply_propagation(target, o);
  }
  auto r = do_mount(source.empty() ? m.type : source, target, m.type, o.flags, o.data);
  if (!r.ok() && r.error().errno_value() == EPERM && (m.type == "sysfs" || m.type == "mqueue")) {
    // Without a network (IPC) namespace of its own, a user namespace may not mount sysfs
    // (mqueue): bind the host's, as runc does.
    std::string host = m.type == "sysfs" ? "/sys" : "/dev/mqueue";
    TRY(do_mount(host, target, "", MS_BIND | MS_REC, ""));
    TRY(do_mount("", target, "", MS_BIND | MS_REMOUNT | MS_REC | o.flags | locked_flags(target), ""));
  } else if (!r.ok()) {
    return r;
  }
  return apply_propagation(target, o);
}

struct DefaultDevice {
  const char* path;
  unsigned major, minor;
};
constexpr DefaultDevice kDefaultDevices[] = {{"/dev/null", 1, 3},    {"/dev/zero", 1, 5},
                                             {"/dev/full", 1, 7},    {"/dev/random", 1, 8},
                                             {"/dev/urandom", 1, 9}, {"/dev/tty", 5, 0}};

Result<void> make_device(const std::string& root, const Device& d, bool user_ns) {
  auto slash = d.path.rfind('/');
  TRY(make_dir_in_root(root, d.path.substr(0, slash)));
  std::string host = resolve_in_root(root, d.path);
  // A device node already there is kept, as runc keeps it: the container's /dev may be a
  // bind mount of the host's, whose nodes must never be replaced. Anything else in the way
  // (a placeholder file in the bundle's rootfs) is replaced.
  struct stat existing {};
  if (::lstat(host.c_str(), &existing) == 0) {
    if (S_ISCHR(existing.st_mode) || S_ISBLK(existing.st_mode)) return ok();
    ::unlink(host.c_str());
  }
  mode_t type = d.type == 'b' ? S_IFBLK : d.type == 'p' ? S_IFIFO : S_IFCHR;
  if (!user_ns && ::mknod(host.c_str(), type | d.file_mode, makedev(static_cast<unsigned>(d.major), static_cast<unsigned>(d.minor))) == 0) {
    if (::chown(host.c_str(), d.uid, d.gid) != 0) return Error::from_errno(fmt::format("chown {}", host));
    if (::chmod(host.c_str(), d.file_mode) != 0) return Error::from_errno(fmt::format("chmod {}", host));
    return ok();
  }
  if (!user_ns && errno != EPERM) return Error::from_errno(fmt::format("mknod {}", host));
  // A user namespace cannot mknod: bind the host's node over an empty file.
  int fd = ::open(host.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
  if (fd < 0) return Error::from_errno(fmt::format("create {}", host));
  ::close(fd);
  return do_mount(d.path, host, "", MS_BIND, "");
}

Result<void> populate_dev(const InitOptions& opt) {
  const Spec& spec = *opt.spec;
  for (auto& dd : kDefaultDevices) {
    bool overridden = false;
    for (auto& d : spec.linux.devices) overridden = overridden || d.path == dd.path;
    if (overridden) continue;
    Device d;
    d.path = dd.path;
    d.major = dd.major;
    d.minor = dd.minor;
    TRY(make_device(opt.rootfs, d, opt.new_user_ns));
  }
  for (auto& d : spec.linux.devices) TRY(make_device(opt.rootfs, d, opt.new_user_ns));
  std::string dev = resolve_in_root(opt.rootfs, "/dev");
  const std::pair<const char*, const char*> links[] = {{"/proc/self/fd", "fd"},   {"/proc/self/fd/0", "stdin"},
                                                       {"/proc/self/fd/1", "stdout"}, {"/proc/self/fd/2", "stderr"},
                                                       {"pts/ptmx", "ptmx"}};
  for (auto& [to, name] : links) {
    std::string path = dev + "/" + name;
    // ptmx becomes a link into the container's devpts, unless a device node is there (a
    // /dev bound from the host: never touched, as make_device() keeps its nodes).
    struct stat existing {};
    if (std::string(name) == "ptmx" && ::lstat(path.c_str(), &existing) == 0 && !S_ISCHR(existing.st_mode))
      ::unlink(path.c_str());
    if (::symlink(to, path.c_str()) != 0 && errno != EEXIST) return Error::from_errno(fmt::format("symlink {}", path));
  }
  return ok();
}

// "/dev", "//dev/", "/dev/." all name /dev.
std::string clean_path(const std::string& path) {
  std::vector<std::string> parts;
  std::stringstream ss(path);
  std::string part;
  while (std::getline(ss, part, '/')) {
    if (part.empty() || part == ".") continue;
    if (part == "..") {
      if (!parts.empty()) parts.pop_back();
      continue;
    }
    parts.push_back(part);
  }
  std::string out;
  for (auto& p : parts) out += "/" + p;
  return out.empty() ? "/" : out;
}

}  // namespace

bool needs_dev_setup(const Spec& spec) {
  for (auto& m : spec.mounts) {
    if (clean_path(m.destination) != "/dev") continue;
    if (m.type == "bind") return false;
    for (auto& o : m.options)
      if (o == "bind" || o == "rbind") return false;
  }
  return true;
}

namespace {

Result<void> pivot_into(const InitOptions& opt) {
  if (::chdir(opt.rootfs.c_str()) != 0) return Error::from_errno(fmt::format("chdir {}", opt.rootfs));
  if (opt.no_pivot) {
    TRY(do_mount(opt.rootfs, "/", "", MS_MOVE, ""));
    if (::chroot(".") != 0) return Error::from_errno("chroot");
  } else {
    if (::syscall(SYS_pivot_root, ".", ".") != 0) return Error::from_errno(fmt::format("pivot_root {}", opt.rootfs));
    // The old root is stacked under the new one: detach it without propagating the
    // unmount to the host.
    TRY(do_mount("", ".", "", MS_SLAVE | MS_REC, ""));
    if (::umount2(".", MNT_DETACH) != 0) return Error::from_errno("unmount the old root");
  }
  if (::chdir("/") != 0) return Error::from_errno("chdir /");
  return ok();
}

Result<void> write_sysctls(const Spec& spec) {
  for (auto& [key, value] : spec.linux.sysctl) {
    std::string path = "/proc/sys/" + key;
    for (size_t i = 10; i < path.size(); i++)
      if (path[i] == '.') path[i] = '/';
    TRY(write_file(path, value).context("sysctl " + key));
  }
  return ok();
}

Result<void> mask_paths(const Spec& spec) {
  for (auto& p : spec.linux.masked_paths) {
    struct stat st {};
    if (::stat(p.c_str(), &st) != 0) {
      if (errno == ENOENT) continue;
      return Error::from_errno(fmt::format("masked path {}", p));
    }
    if (S_ISDIR(st.st_mode)) {
      TRY(do_mount("tmpfs", p, "tmpfs", MS_RDONLY, "size=0k"));
    } else {
      TRY(do_mount("/dev/null", p, "", MS_BIND, ""));
    }
  }
  for (auto& p : spec.linux.readonly_paths) {
    auto r = do_mount(p, p, "", MS_BIND | MS_REC, "");
    if (!r.ok() && r.error().errno_value() == ENOENT) continue;
    TRY(std::move(r));
    TRY(do_mount("", p, "", MS_BIND | MS_REMOUNT | MS_REC | MS_RDONLY | locked_flags(p), ""));
  }
  return ok();
}

// Opens a pty in the container's devpts, sends the master to the console socket and
// makes the slave the controlling terminal and stdio.
}  // namespace

Result<void> setup_console(const Process& proc, int console_socket) {
  UniqueFd master(::open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC));
  if (!master.valid()) return Error::from_errno("open /dev/ptmx");
  int unlock = 0;
  if (::ioctl(master.get(), TIOCSPTLCK, &unlock) != 0) return Error::from_errno("unlock the pty");
  UniqueFd slave(::ioctl(master.get(), TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC));
  if (!slave.valid()) return Error::from_errno("open the pty's slave");
  if (proc.console_width || proc.console_height) {
    struct winsize ws {};
    ws.ws_row = proc.console_height;
    ws.ws_col = proc.console_width;
    ::ioctl(master.get(), TIOCSWINSZ, &ws);
  }
  // /dev/console is the slave, as runc makes it.
  int fd = ::open("/dev/console", O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
  if (fd >= 0) ::close(fd);
  (void)do_mount(fmt::format("/proc/self/fd/{}", slave.get()), "/dev/console", "", MS_BIND, "");
  TRY(send_fd(console_socket, master.get(), "/dev/ptmx"));
  master.reset();
  ::close(console_socket);
  if (::setsid() < 0) return Error::from_errno("setsid");
  if (::ioctl(slave.get(), TIOCSCTTY, 0) != 0) return Error::from_errno("make the pty the controlling terminal");
  for (int i = 0; i < 3; i++)
    if (::dup2(slave.get(), i) < 0) return Error::from_errno("dup2 the pty");
  return ok();
}

namespace {

Result<void> setup(const InitOptions& opt, std::string* state_json) {
  const Spec& spec = *opt.spec;
  const Process& proc = *spec.process;
  // Wait until the runtime wrote our id maps and moved us into the cgroup.
  auto go = TRY(sync_recv(opt.sync_fd));
  if (go.kind != SyncKind::kGo) return Error("unexpected message from the runtime");
  if (opt.new_user_ns) {
    if (::setresgid(0, 0, 0) != 0) return Error::from_errno("setresgid 0 in the user namespace");
    if (::setresuid(0, 0, 0) != 0) return Error::from_errno("setresuid 0 in the user namespace");
  }
  if (opt.new_cgroup_ns && ::unshare(CLONE_NEWCGROUP) != 0) return Error::from_errno("unshare the cgroup namespace");

  if (!spec.find_namespace("mount")) return Error("a mount namespace is required");
  unsigned long propagation = MS_REC | MS_PRIVATE;
  if (!spec.linux.rootfs_propagation.empty()) {
    MountOptions p = TRY(parse_mount_options({spec.linux.rootfs_propagation}));
    propagation = p.propagation.at(0);
  }
  TRY(do_mount("", "/", "", propagation, ""));
  // pivot_root wants the new root to be a mount point.
  TRY(do_mount(opt.rootfs, opt.rootfs, "", MS_BIND | MS_REC, ""));
  for (auto& m : spec.mounts) TRY(mount_one(opt, m).context(fmt::format("mount {}", m.destination)));
  // A /dev bound from elsewhere (the host's, in crun's test_devices.py) is used as it is,
  // as runc does (its needsSetupDev): nothing is created in it, not even the spec's devices.
  if (needs_dev_setup(spec)) TRY(populate_dev(opt));

  if (opt.runtime_hooks) {
    TRY(sync_send(opt.sync_fd, SyncKind::kHooks));
    auto reply = TRY(sync_recv(opt.sync_fd));
    if (reply.kind != SyncKind::kGo) return Error("unexpected message from the runtime");
    TRY(run_hooks(spec.hooks.create_container, reply.text, "createContainer"));
    *state_json = reply.text;
  }

  // As runc: a missing cwd is made, while the root is still writable.
  TRY(make_dir_in_root(opt.rootfs, proc.cwd).context("cwd"));
  TRY(pivot_into(opt));
  TRY(write_sysctls(spec));
  TRY(mask_paths(spec));
  if (!spec.hostname.empty() && ::sethostname(spec.hostname.data(), spec.hostname.size()) != 0)
    return Error::from_errno(fmt::format("sethostname {}", spec.hostname));
  if (!spec.domainname.empty() && ::setdomainname(spec.domainname.data(), spec.domainname.size()) != 0)
    return Error::from_errno(fmt::format("setdomainname {}", spec.domainname));
  if (spec.root_readonly)
    TRY(do_mount("", "/", "", MS_BIND | MS_REMOUNT | MS_RDONLY | locked_flags("/"), "").context("make / read-only"));
  if (proc.terminal && opt.console_socket >= 0) TRY(setup_console(proc, opt.console_socket));
  if (proc.oom_score_adj)
    TRY(write_file("/proc/self/oom_score_adj", fmt::format("{}", *proc.oom_score_adj)));
  TRY(apply_rlimits(proc));
  if (::chdir(proc.cwd.c_str()) != 0) return Error::from_errno(fmt::format("chdir to cwd (\"{}\")", proc.cwd));
  return ok();
}

}  // namespace

std::string resolve_in_root(const std::string& root, const std::string& path) {
  std::vector<std::string> done;  // resolved components below root
  std::vector<std::string> todo;
  auto push_path = [&](const std::string& p) {
    std::vector<std::string> parts;
    std::stringstream ss(p);
    std::string part;
    while (std::getline(ss, part, '/'))
      if (!part.empty() && part != ".") parts.push_back(part);
    for (auto it = parts.rbegin(); it != parts.rend(); ++it) todo.push_back(*it);
  };
  push_path(path);
  int links = 0;
  while (!todo.empty()) {
    std::string part = todo.back();
    todo.pop_back();
    if (part == "..") {
      if (!done.empty()) done.pop_back();
      continue;
    }
    std::string host = root;
    for (auto& d : done) host += "/" + d;
    host += "/" + part;
    char target[4096];
    ssize_t n = ::readlink(host.c_str(), target, sizeof target - 1);
    if (n < 0 || ++links > 40) {
      done.push_back(part);
      continue;
    }
    std::string link(target, static_cast<size_t>(n));
    if (!link.empty() && link[0] == '/') done.clear();
    push_path(link);
  }
  std::string out = root;
  for (auto& d : done) out += "/" + d;
  return out;
}

void container_init(const InitOptions& opt) {
  const Process& proc = *opt.spec->process;
  auto report = [&](const Error& e) {
    (void)sync_send(opt.sync_fd, SyncKind::kError, e.message());
    ::_exit(1);
  };
  std::string state_json = "{}";
  auto r = setup(opt, &state_json);
  if (!r.ok()) report(r.error());
  auto path = find_executable(proc);
  if (!path.ok()) report(path.error());
  std::vector<std::string> env = process_environment(proc);
  // Only the preserved descriptors reach the program; ours close on exec.
  ::syscall(SYS_close_range, 3 + opt.preserve_fds, ~0U, CLOSE_RANGE_CLOEXEC);

  // Hooks and the fifo need privileges the process may not keep: both come before the
  // user switch; seccomp comes last, so it filters only the program.
  // crun's annotation: keep the runtime's supplementary groups.
  auto keep = opt.spec->annotations.find("run.oci.keep_original_groups");
  bool keep_groups = keep != opt.spec->annotations.end() && keep->second == "1";
  auto caps = apply_user_and_capabilities(proc, opt.setgroups_allowed && !keep_groups);
  if (!caps.ok()) report(caps.error());
  // A changed uid makes the process non-dumpable, which would make /proc/self/fd (the
  // fifo's way in) root's; exec resets this.
  ::prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
  int fifo = -1;
  if (opt.fifo_fd >= 0) {
    // Opening by /proc/self/fd keeps working after pivot_root; blocks until `start`.
    (void)sync_send(opt.sync_fd, SyncKind::kReady);
    fifo = ::open(fmt::format("/proc/self/fd/{}", opt.fifo_fd).c_str(), O_WRONLY | O_CLOEXEC);
    if (fifo < 0 || ::write(fifo, "0", 1) != 1) {
      fmt::print(stderr, "doppel oci: init: open exec.fifo: {}\n", strerror(errno));
      ::_exit(1);
    }
    ::close(fifo);
  } else {
    (void)sync_send(opt.sync_fd, SyncKind::kReady);
  }
  ::close(opt.sync_fd);
  if (!opt.spec->hooks.start_container.empty()) {
    auto h = run_hooks(opt.spec->hooks.start_container, state_json, "startContainer");
    if (!h.ok()) {
      fmt::print(stderr, "doppel oci: {}\n", h.error().message());
      ::_exit(1);
    }
  }
  if (opt.spec->linux.seccomp) {
    auto s = apply_seccomp(*opt.spec->linux.seccomp);
    if (!s.ok()) {
      fmt::print(stderr, "doppel oci: {}\n", s.error().message());
      ::_exit(1);
    }
  }
  Error e = exec_process(path.value(), proc, env);
  fmt::print(stderr, "doppel oci: {}\n", e.message());
  ::_exit(127);
}

}  // namespace doppel::oci
