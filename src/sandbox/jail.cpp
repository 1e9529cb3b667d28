#include "sandbox/jail.h"

#include <elf.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/close_range.h>
#include <sys/capability.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <set>
#include <sstream>

#include <fmt/format.h>

#include "base/unique_fd.h"
#include "sandbox/files.h"

namespace doppel::sandbox {
namespace {

Error fail(const std::string& what) { return Error::from_errno(what); }

// mkdir -p of the parents of `path` (host path), mode 0755, owned by root.
Result<void> make_parents(const std::string& path) {
  std::filesystem::path parent = std::filesystem::path(path).parent_path();
  std::error_code ec;
  std::filesystem::create_directories(parent, ec);
  if (ec) return Error::format("mkdir {}: {}", parent.string(), ec.message());
  return ok();
}

Result<void> bind_into(const std::string& root, const JailBind& b) {
  const std::string target = root + b.target;
  struct stat st {};
  if (::stat(b.source.c_str(), &st) != 0) return fail(fmt::format("stat {}", b.source));
  TRY(make_parents(target));
  if (S_ISDIR(st.st_mode)) {
    if (::mkdir(target.c_str(), 0755) != 0 && errno != EEXIST) return fail(fmt::format("mkdir {}", target));
  } else {
    UniqueFd fd(::open(target.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600));
    if (!fd.valid()) return fail(fmt::format("create {}", target));
  }
  if (::mount(b.source.c_str(), target.c_str(), nullptr, MS_BIND, nullptr) != 0)
    return fail(fmt::format("bind {} to {}", b.source, target));
  unsigned long flags = MS_BIND | MS_REMOUNT | MS_NOSUID | MS_NODEV | (b.read_only ? MS_RDONLY : 0);
  if (::mount(nullptr, target.c_str(), nullptr, flags, nullptr) != 0)
    return fail(fmt::format("remount {}{}", target, b.read_only ? " read-only" : ""));
  return ok();
}

Result<void> make_device(const std::string& root, const Device& d, uid_t uid, gid_t gid) {
  const std::string path = root + d.path;
  TRY(make_parents(path));
  const mode_t type = d.type == 'b' ? S_IFBLK : S_IFCHR;
  if (::mknod(path.c_str(), type | (d.file_mode & 07777),
              ::makedev(static_cast<unsigned>(d.major), static_cast<unsigned>(d.minor))) != 0)
    return fail(fmt::format("mknod {}", path));
  if (::chown(path.c_str(), uid, gid) != 0) return fail(fmt::format("chown {}", path));
  // mknod applies the umask.
  if (::chmod(path.c_str(), d.file_mode & 07777) != 0) return fail(fmt::format("chmod {}", path));
  return ok();
}

Result<void> drop_privileges(const JailSpec& spec) {
  // The bounding set first (needs CAP_SETPCAP, still held), so that nothing regains them.
  int last = 40;
  if (auto v = read_file("/proc/sys/kernel/cap_last_cap"); v.ok()) last = std::atoi(v.value().c_str());
  for (int cap = 0; cap <= last; cap++)
    if (::prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 && errno != EINVAL)
      return fail(fmt::format("drop capability {} from the bounding set", cap));
  if (::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0) return fail("clear the ambient capabilities");
  if (::setgroups(0, nullptr) != 0) return fail("setgroups");
  if (::setresgid(spec.gid, spec.gid, spec.gid) != 0) return fail(fmt::format("setresgid {}", spec.gid));
  if (::setresuid(spec.uid, spec.uid, spec.uid) != 0) return fail(fmt::format("setresuid {}", spec.uid));
  // Changing to a non-zero uid cleared the permitted and effective sets; clear all of them
  // explicitly (inheritable too).
  cap_t none = cap_init();
  if (!none) return fail("cap_init");
  const int rc = cap_set_proc(none);
  cap_free(none);
  if (rc != 0) return fail("drop all capabilities");
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return fail("prctl(PR_SET_NO_NEW_PRIVS)");
  return ok();
}

Result<void> build_and_enter(const JailSpec& spec) {
  if (!spec.netns.empty()) {
    UniqueFd ns(::open(spec.netns.c_str(), O_RDONLY | O_CLOEXEC));
    if (!ns.valid()) return fail(fmt::format("open the network namespace {}", spec.netns));
    if (::setns(ns.get(), CLONE_NEWNET) != 0) return fail(fmt::format("join the network namespace {}", spec.netns));
  }
  // Nothing below propagates back to the host's mount namespace.
  if (::mount(nullptr, "/", nullptr, MS_SLAVE | MS_REC, nullptr) != 0) return fail("make / a slave mount");
  // pivot_root wants the new root to be a mount point.
  if (::mount(spec.root.c_str(), spec.root.c_str(), nullptr, MS_BIND | MS_NOSUID | MS_NODEV, nullptr) != 0)
    return fail(fmt::format("bind {} onto itself", spec.root));
  for (const JailBind& b : spec.binds) TRY(bind_into(spec.root, b));
  for (const Device& d : spec.devices) TRY(make_device(spec.root, d, spec.uid, spec.gid));
  for (const std::string& dir : spec.writable_dirs) {
    const std::string path = spec.root + dir;
    TRY(make_parents(path));
    if (::mkdir(path.c_str(), 0700) != 0) return fail(fmt::format("mkdir {}", path));
    if (::chown(path.c_str(), spec.uid, spec.gid) != 0) return fail(fmt::format("chown {}", path));
  }
  if (!spec.hostname.empty() && ::sethostname(spec.hostname.data(), spec.hostname.size()) != 0)
    return fail(fmt::format("sethostname {}", spec.hostname));
  if (::chdir(spec.root.c_str()) != 0) return fail(fmt::format("chdir {}", spec.root));
  if (::syscall(SYS_pivot_root, ".", ".") != 0) return fail(fmt::format("pivot_root {}", spec.root));
  if (::umount2(".", MNT_DETACH) != 0) return fail("unmount the old root");
  if (::chdir("/") != 0) return fail("chdir /");

  struct rlimit nofile {spec.rlimit_nofile, spec.rlimit_nofile};
  if (::setrlimit(RLIMIT_NOFILE, &nofile) != 0) return fail(fmt::format("setrlimit NOFILE {}", spec.rlimit_nofile));
  if (spec.rlimit_fsize) {
    struct rlimit fsize {*spec.rlimit_fsize, *spec.rlimit_fsize};
    if (::setrlimit(RLIMIT_FSIZE, &fsize) != 0) return fail(fmt::format("setrlimit FSIZE {}", *spec.rlimit_fsize));
  }
  // Every inherited descriptor but stdin, stdout and stderr.
  if (::syscall(SYS_close_range, 3U, ~0U, 0U) != 0) return fail("close the inherited file descriptors");
  TRY(drop_privileges(spec));
  return ok();
}

// The PT_INTERP of the running program.
Result<std::string> interpreter() {
  auto text = TRY(read_file("/proc/self/exe"));
  if (text.size() < sizeof(Elf64_Ehdr)) return Error("/proc/self/exe: not an ELF file");
  Elf64_Ehdr eh;
  std::memcpy(&eh, text.data(), sizeof eh);
  for (unsigned i = 0; i < eh.e_phnum; i++) {
    const size_t off = eh.e_phoff + size_t{i} * eh.e_phentsize;
    if (off + sizeof(Elf64_Phdr) > text.size()) break;
    Elf64_Phdr ph;
    std::memcpy(&ph, text.data() + off, sizeof ph);
    if (ph.p_type != PT_INTERP || ph.p_offset + ph.p_filesz > text.size()) continue;
    return std::string(text.c_str() + ph.p_offset);
  }
  return std::string();  // static
}

}  // namespace

Error enter_jail(const JailSpec& spec) {
  if (auto r = build_and_enter(spec); !r.ok()) return r.release_error();
  std::vector<char*> argv, env;
  for (auto& a : spec.argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  for (auto& e : spec.env) env.push_back(const_cast<char*>(e.c_str()));
  env.push_back(nullptr);
  ::execve(argv[0], argv.data(), env.data());
  return fail(fmt::format("exec {}", spec.argv[0]));
}

Result<std::vector<JailBind>> self_exec_binds() {
  std::vector<JailBind> out;
  std::set<std::string> seen;
  const std::string exe = std::filesystem::canonical("/proc/self/exe").string();
  auto maps = TRY(read_file("/proc/self/maps"));
  std::stringstream lines(maps);
  std::string line;
  while (std::getline(lines, line)) {
    const size_t slash = line.find('/');
    if (slash == std::string::npos) continue;
    std::string path = line.substr(slash);
    if (path == exe || path.ends_with(" (deleted)") || path.find(".so") == std::string::npos) continue;
    if (seen.insert(path).second) out.push_back({path, path, true});
  }
  // The loader looks for sonames (libfdt.so.1, libcap.so.2): symlinks beside the files
  // mapped (libfdt-1.6.1.so, libcap.so.2.66). Bind the file at each of them too.
  std::set<std::string> dirs;
  for (auto& b : out) dirs.insert(std::filesystem::path(b.source).parent_path().string());
  const std::set<std::string> files = seen;
  for (const std::string& dir : dirs) {
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
      std::error_code e2;
      if (!entry.is_symlink(e2)) continue;
      const std::string target = std::filesystem::canonical(entry.path(), e2).string();
      if (e2 || !files.count(target)) continue;
      if (seen.insert(entry.path().string()).second) out.push_back({target, entry.path().string(), true});
    }
  }
  const std::string interp = TRY(interpreter());
  if (!interp.empty() && !seen.count(interp)) {
    std::error_code ec;
    const std::string real = std::filesystem::canonical(interp, ec).string();
    if (ec) return Error::format("{}: {}", interp, ec.message());
    out.push_back({real, interp, true});
  }
  return out;
}

Result<void> remove_jail_dir(const std::string& dir) {
  auto info = TRY(read_file("/proc/self/mountinfo"));
  std::stringstream lines(info);
  std::string line;
  while (std::getline(lines, line)) {
    std::stringstream f(line);
    std::string id, parent, dev, root, mountpoint;
    f >> id >> parent >> dev >> root >> mountpoint;
    if (mountpoint == dir || mountpoint.starts_with(dir + "/"))
      return Error::format("remove {}: {} is still mounted; left in place", dir, mountpoint);
  }
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  if (ec) return Error::format("remove {}: {}", dir, ec.message());
  return ok();
}

}  // namespace doppel::sandbox
