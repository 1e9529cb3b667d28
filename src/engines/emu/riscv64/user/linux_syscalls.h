// The Linux system calls a static riscv64 program needs (the difftest programs, and a
// static glibc program's startup, stdio, malloc and exit), by the riscv64 (asm-generic)
// numbers: the start of a process VM that translates a foreign binary's system calls to
// the host's. Memory protection is not enforced (the hart runs with satp bare), so
// mprotect() only validates its range; signals are never delivered, so rt_sigaction and
// rt_sigprocmask only succeed.
//
// The guest is hostile: every pointer and length is checked against guest memory and bad
// ones return -EFAULT, as the kernel does. Unknown system calls return -ENOSYS and are
// logged (rate-limited) and counted.
//
// Threads: one LinuxSyscalls serves one hart's thread.
#pragma once

#include <array>
#include <cstdint>
#include <string>

#include "core/guest_memory.h"

namespace doppel::rv64::user {

// asm-generic/unistd.h numbers (riscv64 uses the generic table).
enum class Sysno : uint64_t {
  kRead = 63,
  kWrite = 64,
  kReadv = 65,
  kWritev = 66,
  kExit = 93,
  kExitGroup = 94,
  kSetTidAddress = 96,
  kUname = 160,
  kGetpid = 172,
  kGetppid = 173,
  kGetuid = 174,
  kGeteuid = 175,
  kGetgid = 176,
  kGetegid = 177,
  kGettid = 178,
  kBrk = 214,
  kReadlinkat = 78,
  kSetRobustList = 99,
  kClockGettime = 113,
  kRtSigaction = 134,
  kRtSigprocmask = 135,
  kMunmap = 215,
  kMmap = 222,
  kMprotect = 226,
  kPrlimit64 = 261,
  kGetrandom = 278,
};

struct SyscallOutcome {
  bool exited = false;   // exit / exit_group: the process is over
  int exit_status = 0;   // valid when exited (the low 8 bits, as wait() reports it)
  uint64_t ret = 0;      // a0 on return: a value or -errno
};

class LinuxSyscalls {
 public:
  struct Config {
    int stdin_fd = 0;    // guest fd 0 reads from this host fd
    int stdout_fd = 1;   // guest fd 1 writes here
    int stderr_fd = 2;   // guest fd 2 writes here
    uint64_t brk_start = 0;  // initial program break (end of the image)
    uint64_t brk_limit = 0;  // the break never grows past this (end of the heap area)
    uint64_t mmap_base = 0;  // anonymous mmap() hands out pages from [base, limit)
    uint64_t mmap_limit = 0;
    uint64_t stack_size = 0;  // what getrlimit(RLIMIT_STACK) reports
    std::string execfn;       // what readlink("/proc/self/exe") returns
  };

  LinuxSyscalls(GuestMemory& memory, const Config& config);

  // a0..a5 are the arguments; nr is a7.
  SyscallOutcome handle(uint64_t nr, const std::array<uint64_t, 6>& args);

  uint64_t brk() const { return m_brk; }
  uint64_t unknown_calls() const { return m_unknown_calls; }

 private:
  int host_fd(uint64_t guest_fd, bool for_write) const;
  uint64_t sys_read(uint64_t fd, uint64_t buf, uint64_t len);
  uint64_t sys_write(uint64_t fd, uint64_t buf, uint64_t len);
  uint64_t sys_iov(uint64_t fd, uint64_t iov, uint64_t count, bool write);
  uint64_t sys_brk(uint64_t addr);
  uint64_t sys_uname(uint64_t buf);
  uint64_t sys_mmap(uint64_t addr, uint64_t len, uint64_t prot, uint64_t flags, uint64_t fd);
  uint64_t sys_munmap(uint64_t addr, uint64_t len);
  uint64_t sys_mprotect(uint64_t addr, uint64_t len);
  uint64_t sys_prlimit64(uint64_t pid, uint64_t resource, uint64_t new_limit, uint64_t old_limit);
  uint64_t sys_clock_gettime(uint64_t clock, uint64_t ts);
  uint64_t sys_getrandom(uint64_t buf, uint64_t len);
  uint64_t sys_readlinkat(uint64_t dirfd, uint64_t path, uint64_t buf, uint64_t len);

  GuestMemory& m_memory;
  Config m_config;
  uint64_t m_brk;
  uint64_t m_mmap_next;  // anonymous mappings are handed out upwards and never reused
  uint64_t m_unknown_calls = 0;
};

}  // namespace doppel::rv64::user
