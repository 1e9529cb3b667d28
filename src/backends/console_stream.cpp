#include "backends/console_stream.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <cerrno>
#include <cstring>
#include <vector>

#include "backends/image_lock.h"
#include "base/log.h"

namespace doppel {

namespace {

// Whether a listening Unix socket is bound to path (the kernel's table, /proc/net/unix, of
// this network namespace: connecting to find out would take the listener's one client slot).
bool has_listener(const std::string& path) {
  std::error_code ec;
  const std::string absolute = std::filesystem::absolute(path, ec).lexically_normal().string();
  std::ifstream in("/proc/net/unix");
  std::string line;
  std::getline(in, line);  // Num RefCount Protocol Flags Type St Inode Path
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string num, refs, protocol, flags, type, state, inode, bound;
    if (!(fields >> num >> refs >> protocol >> flags >> type >> state >> inode >> bound)) continue;
    constexpr unsigned long kAcceptCon = 0x10000;  // __SO_ACCEPTCON: listen() was called
    if ((std::strtoul(flags.c_str(), nullptr, 16) & kAcceptCon) == 0) continue;
    if (bound == path || bound == absolute) return true;
  }
  return false;
}

}  // namespace

Result<std::unique_ptr<ConsoleStream>> ConsoleStream::open_file(const std::string& path) {
  auto s = std::unique_ptr<ConsoleStream>(new ConsoleStream());
  s->m_path = path;
  // Opened without O_TRUNC first: truncated only once it is known not to be a disk image
  // some VM has open (this one's too: its disks are opened first) or a block device.
  s->m_file.reset(::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC | O_NOCTTY, 0644));
  if (!s->m_file.valid()) return Error::from_errno(fmt::format("console file {}", path));
  struct stat st {};
  if (::fstat(s->m_file.get(), &st) != 0) return Error::from_errno(fmt::format("console file {}", path));
  if (S_ISBLK(st.st_mode) || S_ISDIR(st.st_mode))
    return Error::format("console file {}: is a {}; refusing to write console output over it", path,
                         S_ISBLK(st.st_mode) ? "block device" : "directory");
  if (S_ISREG(st.st_mode)) {
    struct flock fl {};
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET;
    if (::fcntl(s->m_file.get(), F_OFD_GETLK, &fl) == 0 && fl.l_type != F_UNLCK) {
      const std::string holders = image_lock_holders(s->m_file.get());
      return Error::format("console file {}: is a disk image in use{}; refusing to overwrite it", path,
                           holders.empty() ? "" : fmt::format(" ({})", holders));
    }
    if (::ftruncate(s->m_file.get(), 0) != 0)
      return Error::from_errno(fmt::format("console file {}: truncate", path));
  }
  return s;
}

Result<std::unique_ptr<ConsoleStream>> ConsoleStream::listen_unix(const std::string& path) {
  auto s = std::unique_ptr<ConsoleStream>(new ConsoleStream());
  s->m_path = path;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof(addr.sun_path))
    return Error::format("console socket {}: path must be 1 to {} bytes", path,
                         sizeof(addr.sun_path) - 1);
  std::copy(path.begin(), path.end(), addr.sun_path);
  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode))
      return Error::format("console socket {}: exists and is not a socket", path);
    // A live listener (another VM's console) is not taken over; a stale file, whose
    // listener is gone, is replaced.
    if (has_listener(path))
      return Error::format("console socket {}: another process is listening on it (another VM's "
                           "console?); refusing to take it over",
                           path);
    ::unlink(path.c_str());
  }
  s->m_listen.reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!s->m_listen.valid()) return Error::from_errno(fmt::format("console socket {}", path));
  if (::bind(s->m_listen.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
    return Error::from_errno(fmt::format("console socket {}: bind", path));
  if (::listen(s->m_listen.get(), 1) != 0)
    return Error::from_errno(fmt::format("console socket {}: listen", path));
  return s;
}

ConsoleStream::~ConsoleStream() {
  if (m_listen.valid()) ::unlink(m_path.c_str());
}

void ConsoleStream::write(std::span<const iovec> in) {
  std::lock_guard lock(m_lock);
  const int fd = m_file.valid() ? m_file.get() : m_client.get();
  if (fd < 0) return;
  std::vector<iovec> iov(in.begin(), in.end());
  size_t first = 0;
  while (first < iov.size()) {
    const int count = static_cast<int>(std::min<size_t>(iov.size() - first, IOV_MAX));
    const ssize_t n = ::writev(fd, iov.data() + first, count);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      DOPPEL_GUEST_WARN("console {}: output dropped: {}", m_path,
                        n < 0 ? std::strerror(errno) : "short write");
      return;
    }
    auto left = static_cast<size_t>(n);
    while (first < iov.size() && left >= iov[first].iov_len) left -= iov[first++].iov_len;
    if (left > 0) {
      iov[first].iov_base = static_cast<uint8_t*>(iov[first].iov_base) + left;
      iov[first].iov_len -= left;
    }
  }
}

ConsoleStream::WriteResult ConsoleStream::write_some(std::span<const iovec> iov) {
  size_t total = 0;
  for (const auto& v : iov) total += v.iov_len;
  if (m_file.valid()) {
    write(iov);
    return {total, false};
  }
  std::lock_guard lock(m_lock);
  if (!m_client.valid()) return {total, false};  // nobody listening: dropped
  const int count = static_cast<int>(std::min<size_t>(iov.size(), IOV_MAX));
  ssize_t n;
  do n = ::writev(m_client.get(), iov.data(), count);
  while (n < 0 && errno == EINTR);
  if (n >= 0) return {static_cast<size_t>(n), static_cast<size_t>(n) < total};
  if (errno == EAGAIN) return {0, true};
  // EPIPE, ECONNRESET: the client went away; what it did not read is lost with it.
  spdlog::info("console {}: the client went away ({})", m_path, std::strerror(errno));
  m_client.reset();
  return {total, false};
}

void ConsoleStream::accept_client() {
  UniqueFd c(::accept4(m_listen.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
  if (!c.valid()) return;
  std::lock_guard lock(m_lock);
  m_client = std::move(c);
}

int ConsoleStream::client_fd() const {
  std::lock_guard lock(m_lock);
  return m_client.get();
}

void ConsoleStream::drop_client() {
  std::lock_guard lock(m_lock);
  m_client.reset();
}

}  // namespace doppel
