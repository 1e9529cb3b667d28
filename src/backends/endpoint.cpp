#include "backends/endpoint.h"

#include <cerrno>
#include <charconv>
#include <cstring>

#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

namespace doppel {

namespace {

Result<sockaddr_un> unix_address(const Endpoint& e) {
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  if (e.path.empty() || e.path.size() >= sizeof a.sun_path)
    return Error::format("{}: a Unix socket path must be 1 to {} bytes", e.text,
                         sizeof a.sun_path - 1);
  std::memcpy(a.sun_path, e.path.c_str(), e.path.size() + 1);
  return a;
}

// getaddrinfo for a TCP endpoint: the first IPv4 or IPv6 address.
Result<addrinfo*> resolve(const Endpoint& e, bool passive) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  if (passive) hints.ai_flags = AI_PASSIVE;
  addrinfo* res = nullptr;
  const std::string port = std::to_string(e.port);
  const char* host = e.host.empty() ? nullptr : e.host.c_str();
  if (int rc = ::getaddrinfo(host, port.c_str(), &hints, &res); rc != 0)
    return Error::format("{}: {}", e.text, ::gai_strerror(rc));
  return res;
}

}  // namespace

Result<Endpoint> parse_endpoint(const std::string& text) {
  Endpoint e;
  e.text = text;
  if (text.starts_with("unix:")) {
    e.kind = Endpoint::Kind::kUnix;
    e.path = text.substr(5);
    TRY(unix_address(e));
    return e;
  }
  if (!text.starts_with("tcp:"))
    return Error::format("'{}': expected tcp:HOST:PORT or unix:PATH", text);
  const std::string rest = text.substr(4);
  const size_t colon = rest.rfind(':');
  if (colon == std::string::npos)
    return Error::format("'{}': expected tcp:HOST:PORT (no port)", text);
  e.host = rest.substr(0, colon);
  if (e.host.size() >= 2 && e.host.front() == '[' && e.host.back() == ']')
    e.host = e.host.substr(1, e.host.size() - 2);  // [::1]
  const std::string port = rest.substr(colon + 1);
  unsigned value = 0;
  const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (ec != std::errc() || end != port.data() + port.size() || value == 0 || value > 65535)
    return Error::format("'{}': the port must be a number from 1 to 65535", text);
  e.port = static_cast<uint16_t>(value);
  return e;
}

Result<UniqueFd> listen_endpoint(const Endpoint& e) {
  if (e.kind == Endpoint::Kind::kUnix) {
    const sockaddr_un a = TRY(unix_address(e));
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd.valid()) return Error::format("{}: socket: {}", e.text, std::strerror(errno));
    ::unlink(e.path.c_str());
    if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&a), sizeof a) != 0 ||
        ::listen(fd.get(), 1) != 0)
      return Error::format("{}: {}", e.text, std::strerror(errno));
    return fd;
  }
  addrinfo* res = TRY(resolve(e, true));
  UniqueFd fd(::socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  int err = errno;
  if (fd.valid()) {
    const int one = 1;
    (void)::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(fd.get(), res->ai_addr, res->ai_addrlen) != 0 || ::listen(fd.get(), 1) != 0) {
      err = errno;
      fd.reset();
    }
  }
  ::freeaddrinfo(res);
  if (!fd.valid()) return Error::format("{}: {}", e.text, std::strerror(err));
  return fd;
}

Result<UniqueFd> accept_one(int listen_fd, const Endpoint& e) {
  for (;;) {
    const int fd = ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd >= 0) {
      if (e.kind == Endpoint::Kind::kTcp) {
        const int one = 1;
        (void)::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      }
      return UniqueFd(fd);
    }
    if (errno != EINTR) return Error::format("{}: accept: {}", e.text, std::strerror(errno));
  }
}

Result<UniqueFd> connect_endpoint(const Endpoint& e) {
  if (e.kind == Endpoint::Kind::kUnix) {
    const sockaddr_un a = TRY(unix_address(e));
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd.valid() || ::connect(fd.get(), reinterpret_cast<const sockaddr*>(&a), sizeof a) != 0)
      return Error::format("{}: {}", e.text, std::strerror(errno));
    return fd;
  }
  addrinfo* res = TRY(resolve(e, false));
  UniqueFd fd(::socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  int err = errno;
  if (fd.valid() && ::connect(fd.get(), res->ai_addr, res->ai_addrlen) != 0) {
    err = errno;
    fd.reset();
  }
  ::freeaddrinfo(res);
  if (!fd.valid()) return Error::format("{}: {}", e.text, std::strerror(err));
  const int one = 1;
  (void)::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

}  // namespace doppel
