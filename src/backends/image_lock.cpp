#include "backends/image_lock.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <vector>

#include "base/log.h"

namespace doppel {

namespace {

// QEMU's scheme (block/file-posix.c, raw_apply_lock_bytes): byte 100 + p is read-locked by
// every user holding permission p, byte 200 + p by every user that does not let others have
// it. Permission bits (include/block/block-common.h): consistent read 0, write 1, resize 3.
constexpr off_t kPermBase = 100;
constexpr off_t kSharedBase = 200;
constexpr int kConsistentRead = 0, kWrite = 1, kResize = 3;

int lock_byte(int fd, off_t byte, short type) {
  struct flock fl {};
  fl.l_type = type;
  fl.l_whence = SEEK_SET;
  fl.l_start = byte;
  fl.l_len = 1;
  int r;
  do r = ::fcntl(fd, F_OFD_SETLK, &fl);
  while (r != 0 && errno == EINTR);
  return r == 0 ? 0 : errno;
}

// Whether another open file description holds any lock on the byte.
bool byte_locked_by_others(int fd, off_t byte) {
  struct flock fl {};
  fl.l_type = F_WRLCK;
  fl.l_whence = SEEK_SET;
  fl.l_start = byte;
  fl.l_len = 1;
  return ::fcntl(fd, F_OFD_GETLK, &fl) == 0 && fl.l_type != F_UNLCK;
}

struct Perms {
  std::vector<int> held;      // permissions this user takes
  std::vector<int> unshared;  // permissions it does not let others have
};

// A reader: consistent reads, and nobody writes meanwhile (QEMU's default, share-rw=off).
// A writer: also write and resize; the same unshared set, so writers exclude each other.
Perms perms_for(ImageLockMode mode) {
  if (mode == ImageLockMode::kExclusive) return {{kConsistentRead, kWrite, kResize}, {kWrite, kResize}};
  return {{kConsistentRead}, {kWrite, kResize}};
}

std::string read_small(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace

std::string image_lock_holders(int fd) {
  struct stat target {};
  if (::fstat(fd, &target) != 0) return {};
  const std::string self = std::to_string(::getpid());
  std::vector<std::string> found;
  DIR* proc = ::opendir("/proc");
  if (!proc) return {};
  while (dirent* p = ::readdir(proc)) {
    char* end = nullptr;
    const long pid = std::strtol(p->d_name, &end, 10);
    if (pid <= 0 || *end != '\0') continue;
    const std::string base = std::string("/proc/") + p->d_name;
    DIR* fds = ::opendir((base + "/fd").c_str());
    if (!fds) continue;  // another user's process, or gone
    bool holds = false;
    while (dirent* f = ::readdir(fds)) {
      if (f->d_name[0] == '.') continue;
      if (p->d_name == self && std::atoi(f->d_name) == fd) continue;  // our own description
      struct stat st {};
      if (::stat((base + "/fd/" + f->d_name).c_str(), &st) != 0) continue;
      if (st.st_dev != target.st_dev || st.st_ino != target.st_ino) continue;
      // fdinfo lists the locks held through this descriptor ("lock:\t1: OFDLCK ...").
      const std::string info = read_small(base + "/fdinfo/" + f->d_name);
      if (info.find("OFDLCK") != std::string::npos || info.find("POSIX") != std::string::npos) {
        holds = true;
        break;
      }
    }
    ::closedir(fds);
    if (!holds) continue;
    std::string comm = read_small(base + "/comm");
    while (!comm.empty() && comm.back() == '\n') comm.pop_back();
    found.push_back(fmt::format("pid {} ({})", pid, comm));
  }
  ::closedir(proc);
  std::string out;
  for (const auto& h : found) out += (out.empty() ? "" : ", ") + h;
  return out;
}

Result<void> ImageLock::acquire() {
  if (!m_enabled || m_held) return ok();
  const bool exclusive = m_mode == ImageLockMode::kExclusive;
  const Perms perms = perms_for(m_mode);
  // Lock first, then look for conflicts (as QEMU does): of two racing openers, at least
  // one sees the other.
  for (int p : perms.held) {
    if (int err = lock_byte(m_fd, kPermBase + p, F_RDLCK); err != 0) {
      unlock_all();
      return Error::from_errno(fmt::format("disk {}: lock", m_path), err);
    }
  }
  for (int p : perms.unshared) {
    if (int err = lock_byte(m_fd, kSharedBase + p, F_RDLCK); err != 0) {
      unlock_all();
      return Error::from_errno(fmt::format("disk {}: lock", m_path), err);
    }
  }
  bool conflict = false;
  for (int p : perms.held) conflict |= byte_locked_by_others(m_fd, kSharedBase + p);
  for (int p : perms.unshared) conflict |= byte_locked_by_others(m_fd, kPermBase + p);
  if (!conflict) {
    m_held = true;
    return ok();
  }
  unlock_all();
  const std::string holders = image_lock_holders(m_fd);
  return Error::format(
      "disk {}: in use by another VM or program{}: cannot open it {} while it is; "
      "',locking=off' shares it anyway (unsafe: two writers corrupt a file system)",
      m_path, holders.empty() ? "" : fmt::format(" ({})", holders),
      exclusive ? "for writing" : "read-only");
}

void ImageLock::unlock_all() {
  for (off_t base : {kPermBase, kSharedBase}) {
    struct flock fl {};
    fl.l_type = F_UNLCK;
    fl.l_whence = SEEK_SET;
    fl.l_start = base;
    fl.l_len = 100;
    if (::fcntl(m_fd, F_OFD_SETLK, &fl) != 0)
      spdlog::warn("disk {}: unlock: {}", m_path, std::strerror(errno));
  }
}

void ImageLock::release() {
  if (!m_held) return;
  unlock_all();
  m_held = false;
}

}  // namespace doppel
