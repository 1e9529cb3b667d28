#include "oci/sync.h"

#include <sys/socket.h>
#include <sys/uio.h>

#include <cerrno>
#include <cstring>

namespace doppel::oci {

Result<void> sync_send(int fd, SyncKind kind, const std::string& text) {
  std::string msg(1, static_cast<char>(kind));
  msg += text.substr(0, 4000);
  for (;;) {
    ssize_t n = ::send(fd, msg.data(), msg.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Error::from_errno("sync send");
    return ok();
  }
}

Result<SyncMessage> sync_recv(int fd) {
  char buf[4097];
  for (;;) {
    ssize_t n = ::recv(fd, buf, sizeof buf - 1, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Error::from_errno("sync recv");
    if (n == 0) return Error("the container process exited during set-up");
    return SyncMessage{static_cast<SyncKind>(buf[0]), std::string(buf + 1, static_cast<size_t>(n - 1))};
  }
}

Result<void> send_fd(int socket_fd, int fd, const std::string& name) {
  char data[1024];
  size_t len = std::min(name.size(), sizeof data);
  std::memcpy(data, name.data(), len);
  if (len == 0) data[len++] = '\0';
  struct iovec iov = {data, len};
  alignas(struct cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  struct msghdr msg {};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  struct cmsghdr* c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  std::memcpy(CMSG_DATA(c), &fd, sizeof(int));
  if (::sendmsg(socket_fd, &msg, MSG_NOSIGNAL) < 0) return Error::from_errno("send the console to --console-socket");
  return ok();
}

}  // namespace doppel::oci
