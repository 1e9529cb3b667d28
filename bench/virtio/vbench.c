// vbench: the in-guest half of bench/virtio. Built statically for riscv64 by run.sh and
// carried into the guest on a small ext4 image.
//
//   vbench seqwrite DEV MIB     sequential 1 MiB O_DIRECT writes, prints MB/s
//   vbench seqread  DEV MIB     sequential 1 MiB O_DIRECT reads
//   vbench randread DEV SECONDS 4 KiB O_DIRECT reads at random aligned offsets, prints IOPS
//   vbench randwrite DEV SECONDS
//   vbench tcpsend IP PORT MIB  sends MIB MiB over TCP, prints MB/s
//   vbench tcprecv PORT         accepts one TCP connection, reads it to EOF, prints MB/s
//                               (timed from the first byte) and "vbench tcprecv: N bytes"
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <linux/fs.h>

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char* what) {
  perror(what);
  exit(1);
}

static uint64_t rng_state = 88172645463325252ull;
static uint64_t xorshift(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return rng_state;
}

static int seq(const char* mode, const char* dev, long mib) {
  const int write_mode = strcmp(mode, "seqwrite") == 0;
  int fd = open(dev, (write_mode ? O_WRONLY : O_RDONLY) | O_DIRECT);
  if (fd < 0) die(dev);
  void* buf;
  if (posix_memalign(&buf, 4096, 1 << 20) != 0) die("posix_memalign");
  memset(buf, 0x5a, 1 << 20);
  const double t0 = now();
  for (long i = 0; i < mib; i++) {
    ssize_t n = write_mode ? pwrite(fd, buf, 1 << 20, (off_t)i << 20) : pread(fd, buf, 1 << 20, (off_t)i << 20);
    if (n != 1 << 20) die(mode);
  }
  if (write_mode && fdatasync(fd) != 0) die("fdatasync");
  const double t = now() - t0;
  printf("vbench %s: %ld MiB in %.3f s = %.2f MB/s\n", mode, mib, t, (double)mib * 1.048576 / t);
  return 0;
}

static int rand_io(const char* mode, const char* dev, double seconds) {
  const int write_mode = strcmp(mode, "randwrite") == 0;
  int fd = open(dev, (write_mode ? O_WRONLY : O_RDONLY) | O_DIRECT);
  if (fd < 0) die(dev);
  uint64_t size = 0;
  if (ioctl(fd, BLKGETSIZE64, &size) != 0) die("BLKGETSIZE64");
  const uint64_t blocks = size / 4096;
  void* buf;
  if (posix_memalign(&buf, 4096, 4096) != 0) die("posix_memalign");
  memset(buf, 0xa5, 4096);
  long ops = 0;
  const double t0 = now();
  double t = 0;
  while ((t = now() - t0) < seconds) {
    for (int k = 0; k < 64; k++, ops++) {
      const off_t off = (off_t)((xorshift() % blocks) * 4096);
      ssize_t n = write_mode ? pwrite(fd, buf, 4096, off) : pread(fd, buf, 4096, off);
      if (n != 4096) die(mode);
    }
  }
  printf("vbench %s: %ld ops in %.3f s = %.0f IOPS\n", mode, ops, t, (double)ops / t);
  return 0;
}

static int tcpsend(const char* ip, int port, long mib) {
  int s = socket(AF_INET, SOCK_STREAM, 0);
  if (s < 0) die("socket");
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  if (inet_pton(AF_INET, ip, &a.sin_addr) != 1) die("inet_pton");
  if (connect(s, (struct sockaddr*)&a, sizeof a) != 0) die("connect");
  static char buf[1 << 16];
  memset(buf, 0x33, sizeof buf);
  const double t0 = now();
  for (long left = mib << 20; left > 0;) {
    ssize_t n = send(s, buf, left < (long)sizeof buf ? (size_t)left : sizeof buf, 0);
    if (n <= 0) die("send");
    left -= n;
  }
  shutdown(s, SHUT_WR);
  char c;
  while (read(s, &c, 1) > 0) {
  }
  const double t = now() - t0;
  printf("vbench tcpsend: %ld MiB in %.3f s = %.2f MB/s\n", mib, t, (double)mib * 1.048576 / t);
  return 0;
}

static int tcprecv(int port) {
  int ls = socket(AF_INET, SOCK_STREAM, 0);
  if (ls < 0) die("socket");
  int one = 1;
  setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  if (bind(ls, (struct sockaddr*)&a, sizeof a) != 0) die("bind");
  if (listen(ls, 1) != 0) die("listen");
  printf("vbench tcprecv: listening on %d\n", port);
  fflush(stdout);
  int s = accept(ls, NULL, NULL);
  if (s < 0) die("accept");
  static char buf[1 << 16];
  long total = 0;
  double t0 = 0;
  for (;;) {
    ssize_t n = read(s, buf, sizeof buf);
    if (n < 0) die("read");
    if (n == 0) break;
    if (total == 0) t0 = now();
    total += n;
  }
  const double t = now() - t0;
  close(s);
  printf("vbench tcprecv: %ld bytes in %.3f s = %.2f MB/s\n", total, t, (double)total / 1e6 / t);
  return 0;
}

int main(int argc, char** argv) {
  if (argc == 4 && (!strcmp(argv[1], "seqwrite") || !strcmp(argv[1], "seqread")))
    return seq(argv[1], argv[2], atol(argv[3]));
  if (argc == 4 && (!strcmp(argv[1], "randread") || !strcmp(argv[1], "randwrite")))
    return rand_io(argv[1], argv[2], atof(argv[3]));
  if (argc == 5 && !strcmp(argv[1], "tcpsend")) return tcpsend(argv[2], atoi(argv[3]), atol(argv[4]));
  if (argc == 3 && !strcmp(argv[1], "tcprecv")) return tcprecv(atoi(argv[2]));
  fprintf(stderr, "usage: vbench seqwrite|seqread DEV MIB | randread|randwrite DEV SECONDS | tcpsend IP PORT MIB | tcprecv PORT\n");
  return 2;
}
