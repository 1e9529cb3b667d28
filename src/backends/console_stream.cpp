#include "backends/console_stream.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <vector>

#include "base/log.h"

namespace doppel {

Result<std::unique_ptr<ConsoleStream>> ConsoleStream::open_file(const std::string& path) {
  auto s = std::unique_ptr<ConsoleStream>(new ConsoleStream());
  s->m_path = path;
  s->m_file.reset(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!s->m_file.valid()) return Error::from_errno(fmt::format("console file {}", path));
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
