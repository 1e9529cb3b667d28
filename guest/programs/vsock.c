// vsock: netcat for AF_VSOCK stream sockets (busybox nc has no vsock).
//
//   vsock listen PORT          accept one connection on PORT (any CID)
//   vsock connect CID PORT     connect to CID:PORT (the host is CID 2)
//
// Either way stdin goes to the socket and the socket to stdout, at once; at the end of
// stdin the sending side is shut down (the peer reads EOF) and vsock exits once the peer
// has shut down its side too. Exit status 0, or 1 with a message naming what failed.
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
// After sys/socket.h: the kernel header needs sa_family_t.
#include <linux/vm_sockets.h>

static int die(const char* what) {
  fprintf(stderr, "vsock: %s: %s\n", what, strerror(errno));
  return 1;
}

static int parse_u32(const char* s, unsigned* out) {
  char* end;
  errno = 0;
  unsigned long v = strtoul(s, &end, 10);
  if (errno || *s == '\0' || *end != '\0' || v > 0xffffffffUL) return -1;
  *out = (unsigned)v;
  return 0;
}

static int write_all(int fd, const char* buf, size_t len) {
  while (len > 0) {
    ssize_t n = write(fd, buf, len);
    if (n < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    buf += n;
    len -= (size_t)n;
  }
  return 0;
}

// Copies stdin -> sock and sock -> stdout until both directions have ended.
static int pump(int sock) {
  static char buf[65536];
  int in_open = 1, sock_open = 1;
  while (sock_open) {
    struct pollfd p[2] = {{sock, POLLIN, 0}, {0, POLLIN, 0}};
    if (poll(p, in_open ? 2 : 1, -1) < 0) {
      if (errno == EINTR) continue;
      return die("poll");
    }
    if (p[0].revents) {
      ssize_t n = read(sock, buf, sizeof buf);
      if (n < 0 && errno != EINTR) return die("read from the socket");
      if (n == 0) sock_open = 0;
      if (n > 0 && write_all(1, buf, (size_t)n) < 0) return die("write to stdout");
    }
    if (in_open && p[1].revents) {
      ssize_t n = read(0, buf, sizeof buf);
      if (n < 0 && errno != EINTR) return die("read from stdin");
      if (n == 0) {
        in_open = 0;
        shutdown(sock, SHUT_WR);
      }
      if (n > 0 && write_all(sock, buf, (size_t)n) < 0) return die("write to the socket");
    }
  }
  return 0;
}

int main(int argc, char** argv) {
  unsigned cid = 0, port = 0;
  struct sockaddr_vm addr;
  memset(&addr, 0, sizeof addr);
  addr.svm_family = AF_VSOCK;
  if (argc == 3 && strcmp(argv[1], "listen") == 0 && parse_u32(argv[2], &port) == 0) {
    int ls = socket(AF_VSOCK, SOCK_STREAM, 0);
    if (ls < 0) return die("socket");
    addr.svm_cid = VMADDR_CID_ANY;
    addr.svm_port = port;
    if (bind(ls, (struct sockaddr*)&addr, sizeof addr) < 0) return die("bind");
    if (listen(ls, 1) < 0) return die("listen");
    int s = accept(ls, NULL, NULL);
    if (s < 0) return die("accept");
    close(ls);
    return pump(s);
  }
  if (argc == 4 && strcmp(argv[1], "connect") == 0 && parse_u32(argv[2], &cid) == 0 &&
      parse_u32(argv[3], &port) == 0) {
    int s = socket(AF_VSOCK, SOCK_STREAM, 0);
    if (s < 0) return die("socket");
    addr.svm_cid = cid;
    addr.svm_port = port;
    if (connect(s, (struct sockaddr*)&addr, sizeof addr) < 0) return die("connect");
    return pump(s);
  }
  fprintf(stderr, "usage: vsock listen PORT | vsock connect CID PORT\n");
  return 2;
}
