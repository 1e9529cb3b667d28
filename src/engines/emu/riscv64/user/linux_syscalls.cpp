#include "engines/emu/riscv64/user/linux_syscalls.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "base/log.h"

namespace doppel::rv64::user {

namespace {

uint64_t neg_errno(int e) { return static_cast<uint64_t>(-static_cast<int64_t>(e)); }

constexpr uint64_t kIovMax = 1024;  // UIO_MAXIOV

}  // namespace

LinuxSyscalls::LinuxSyscalls(GuestMemory& memory, const Config& config)
    : m_memory(memory), m_config(config), m_brk(config.brk_start) {}

SyscallOutcome LinuxSyscalls::handle(uint64_t nr, const std::array<uint64_t, 6>& a) {
  SyscallOutcome out;
  switch (static_cast<Sysno>(nr)) {
    case Sysno::kRead: out.ret = sys_read(a[0], a[1], a[2]); break;
    case Sysno::kWrite: out.ret = sys_write(a[0], a[1], a[2]); break;
    case Sysno::kReadv: out.ret = sys_iov(a[0], a[1], a[2], false); break;
    case Sysno::kWritev: out.ret = sys_iov(a[0], a[1], a[2], true); break;
    case Sysno::kExit:
    case Sysno::kExitGroup:
      out.exited = true;
      out.exit_status = static_cast<int>(a[0] & 0xff);
      break;
    case Sysno::kSetTidAddress:  // one thread, whose id is the process id
    case Sysno::kGettid:
    case Sysno::kGetpid: out.ret = 1; break;
    case Sysno::kGetppid:
    case Sysno::kGetuid:
    case Sysno::kGeteuid:
    case Sysno::kGetgid:
    case Sysno::kGetegid: out.ret = 0; break;
    case Sysno::kUname: out.ret = sys_uname(a[0]); break;
    case Sysno::kBrk: out.ret = sys_brk(a[0]); break;
    default:
      ++m_unknown_calls;
      DOPPEL_GUEST_WARN("user: unsupported system call {} (a0 {:#x}); returning -ENOSYS", nr, a[0]);
      out.ret = neg_errno(ENOSYS);
  }
  return out;
}

int LinuxSyscalls::host_fd(uint64_t guest_fd, bool for_write) const {
  if (!for_write) return guest_fd == 0 ? m_config.stdin_fd : -1;
  if (guest_fd == 1) return m_config.stdout_fd;
  if (guest_fd == 2) return m_config.stderr_fd;
  return -1;
}

uint64_t LinuxSyscalls::sys_read(uint64_t fd, uint64_t buf, uint64_t len) {
  const int host = host_fd(fd, false);
  if (host < 0) return neg_errno(EBADF);
  uint8_t* p = m_memory.host_ptr(buf, len);
  if (!p) return neg_errno(EFAULT);
  for (;;) {
    const ssize_t n = ::read(host, p, static_cast<size_t>(len));
    if (n >= 0) return static_cast<uint64_t>(n);
    if (errno != EINTR) return neg_errno(errno);
  }
}

uint64_t LinuxSyscalls::sys_write(uint64_t fd, uint64_t buf, uint64_t len) {
  const int host = host_fd(fd, true);
  if (host < 0) return neg_errno(EBADF);
  const uint8_t* p = m_memory.host_ptr(buf, len);
  if (!p) return neg_errno(EFAULT);
  uint64_t done = 0;
  while (done < len) {
    const ssize_t n = ::write(host, p + done, static_cast<size_t>(len - done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return done ? done : neg_errno(errno);
    }
    done += static_cast<uint64_t>(n);
  }
  return done;
}

uint64_t LinuxSyscalls::sys_iov(uint64_t fd, uint64_t iov, uint64_t count, bool write) {
  if (count > kIovMax) return neg_errno(EINVAL);
  uint64_t total = 0;
  for (uint64_t i = 0; i < count; ++i) {
    // struct iovec { void* iov_base; size_t iov_len; }: 16 bytes on riscv64.
    const auto base = m_memory.read_le<uint64_t>(iov + 16 * i);
    const auto len = m_memory.read_le<uint64_t>(iov + 16 * i + 8);
    if (!base || !len) return total ? total : neg_errno(EFAULT);
    const uint64_t r = write ? sys_write(fd, *base, *len) : sys_read(fd, *base, *len);
    if (static_cast<int64_t>(r) < 0) return total ? total : r;
    total += r;
    if (r < *len) break;  // short transfer: stop like the kernel does
  }
  return total;
}

uint64_t LinuxSyscalls::sys_brk(uint64_t addr) {
  // brk(0) or a bad request returns the current break unchanged (Linux semantics).
  if (addr < m_config.brk_start || addr > m_config.brk_limit) return m_brk;
  if (addr < m_brk) {
    // Memory given back reads as zero when it is handed out again.
    if (uint8_t* p = m_memory.host_ptr(addr, m_brk - addr)) std::memset(p, 0, static_cast<size_t>(m_brk - addr));
  }
  m_brk = addr;
  return m_brk;
}

uint64_t LinuxSyscalls::sys_uname(uint64_t buf) {
  // struct utsname: six fields of 65 bytes.
  constexpr size_t kField = 65;
  const char* fields[6] = {"Linux", "doppel", "6.1.0", "#1 doppel user-mode", "riscv64", "(none)"};
  uint8_t* p = m_memory.host_ptr(buf, 6 * kField);
  if (!p) return neg_errno(EFAULT);
  std::memset(p, 0, 6 * kField);
  for (size_t i = 0; i < 6; ++i) std::memcpy(p + i * kField, fields[i], std::strlen(fields[i]));
  return 0;
}

}  // namespace doppel::rv64::user
