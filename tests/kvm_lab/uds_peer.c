// uds_peer: the host side of doppel's vsock in the KVM lab's L1 (its busybox has no Unix
// socket client). Built statically by net_vsock_test.sh.
//   uds_peer listen PATH          accept one connection on PATH, read it to EOF, print
//                                 "uds_peer: got <bytes>", answer "host-reply\n", close
//   uds_peer connect PATH PORT    "CONNECT PORT\n" on PATH (retried for 60 s while the
//                                 guest has no listener), print the "OK <port>" line, send
//                                 "host-data\n", shut down, print what the guest sent back
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static int unix_socket(const char* path, struct sockaddr_un* a) {
  memset(a, 0, sizeof *a);
  a->sun_family = AF_UNIX;
  strncpy(a->sun_path, path, sizeof a->sun_path - 1);
  return socket(AF_UNIX, SOCK_STREAM, 0);
}

static size_t read_all(int s, char* buf, size_t cap) {
  size_t n = 0;
  for (;;) {
    ssize_t r = read(s, buf + n, cap - 1 - n);
    if (r <= 0) break;
    n += (size_t)r;
    if (n + 1 >= cap) break;
  }
  buf[n] = '\0';
  return n;
}

int main(int argc, char** argv) {
  static char buf[1 << 16];
  struct sockaddr_un a;
  if (argc == 3 && !strcmp(argv[1], "listen")) {
    int ls = unix_socket(argv[2], &a);
    if (bind(ls, (struct sockaddr*)&a, sizeof a) || listen(ls, 1)) { perror("uds_peer: listen"); return 1; }
    int s = accept(ls, NULL, NULL);
    if (s < 0) { perror("uds_peer: accept"); return 1; }
    size_t n = read_all(s, buf, sizeof buf);
    printf("uds_peer: got %zu bytes: %s", n, buf);
    if (write(s, "host-reply\n", 11) != 11) perror("uds_peer: write");
    close(s);
    return 0;
  }
  if (argc == 4 && !strcmp(argv[1], "connect")) {
    for (int attempt = 0; attempt < 120; attempt++) {
      int s = unix_socket(argv[2], &a);
      if (connect(s, (struct sockaddr*)&a, sizeof a) == 0) {
        char line[64];
        int len = snprintf(line, sizeof line, "CONNECT %s\n", argv[3]);
        if (write(s, line, (size_t)len) == len) {
          size_t n = 0;
          while (n + 1 < sizeof line && read(s, line + n, 1) == 1 && line[n++] != '\n') {
          }
          line[n] = '\0';
          if (!strncmp(line, "OK ", 3)) {
            printf("uds_peer: handshake %s", line);
            if (write(s, "host-data\n", 10) != 10) perror("uds_peer: write");
            shutdown(s, SHUT_WR);
            read_all(s, buf, sizeof buf);
            printf("uds_peer: the guest sent: %s", buf);
            return 0;
          }
        }
      }
      close(s);
      usleep(500000);
    }
    fprintf(stderr, "uds_peer: no OK from the guest\n");
    return 1;
  }
  fprintf(stderr, "usage: uds_peer listen PATH | uds_peer connect PATH PORT\n");
  return 2;
}
