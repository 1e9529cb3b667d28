#include "engines/emu/riscv64/user/linux_syscalls.h"

#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <algorithm>

#include "base/bits.h"
#include "base/log.h"

namespace doppel::rv64::user {

namespace {

uint64_t neg_errno(int e) { return static_cast<uint64_t>(-static_cast<int64_t>(e)); }

constexpr uint64_t kIovMax = 1024;  // UIO_MAXIOV

}  // namespace

LinuxSyscalls::LinuxSyscalls(GuestMemory& memory, const Config& config)
    : m_memory(memory), m_config(config), m_brk(config.brk_start), m_mmap_next(config.mmap_base) {}

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
    case Sysno::kMmap: out.ret = sys_mmap(a[0], a[1], a[2], a[3], a[4]); break;
    case Sysno::kMunmap: out.ret = sys_munmap(a[0], a[1]); break;
    case Sysno::kMprotect: out.ret = sys_mprotect(a[0], a[1]); break;
    case Sysno::kPrlimit64: out.ret = sys_prlimit64(a[0], a[1], a[2], a[3]); break;
    case Sysno::kClockGettime: out.ret = sys_clock_gettime(a[0], a[1]); break;
    case Sysno::kGetrandom: out.ret = sys_getrandom(a[0], a[1]); break;
    case Sysno::kReadlinkat: out.ret = sys_readlinkat(a[0], a[1], a[2], a[3]); break;
    case Sysno::kRtSigaction:
    case Sysno::kRtSigprocmask: out.ret = 0; break;  // no signal is ever delivered
    case Sysno::kSetRobustList: out.ret = neg_errno(ENOSYS); break;  // as qemu-user: no futexes
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
  uint8_t* p = m_memory.host_ptr_for_write(buf, len);
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
    if (uint8_t* p = m_memory.host_ptr_for_write(addr, m_brk - addr)) std::memset(p, 0, static_cast<size_t>(m_brk - addr));
  }
  m_brk = addr;
  return m_brk;
}

uint64_t LinuxSyscalls::sys_uname(uint64_t buf) {
  // struct utsname: six fields of 65 bytes.
  constexpr size_t kField = 65;
  const char* fields[6] = {"Linux", "doppel", "6.1.0", "#1 doppel user-mode", "riscv64", "(none)"};
  uint8_t* p = m_memory.host_ptr_for_write(buf, 6 * kField);
  if (!p) return neg_errno(EFAULT);
  std::memset(p, 0, 6 * kField);
  for (size_t i = 0; i < 6; ++i) std::memcpy(p + i * kField, fields[i], std::strlen(fields[i]));
  return 0;
}

uint64_t LinuxSyscalls::sys_mmap(uint64_t addr, uint64_t len, uint64_t prot, uint64_t flags,
                                 uint64_t fd) {
  (void)prot;
  constexpr uint64_t kMapShared = 0x01, kMapPrivate = 0x02, kMapFixed = 0x10, kMapAnonymous = 0x20;
  constexpr uint64_t kMapFixedNoReplace = 0x100000;
  if (len == 0) return neg_errno(EINVAL);
  if (!(flags & kMapAnonymous)) return neg_errno(ENODEV);  // no files yet
  if ((flags & (kMapShared | kMapPrivate)) == 0) return neg_errno(EINVAL);
  (void)fd;  // ignored for anonymous mappings, as Linux does
  if (len > m_config.mmap_limit - m_config.mmap_base) return neg_errno(ENOMEM);
  const uint64_t size = align_up(len, 4096);
  if (flags & (kMapFixed | kMapFixedNoReplace)) {
    // Only inside what was already handed out: zero it, as a fresh mapping would be.
    if (addr % 4096 || addr < m_config.mmap_base || addr > m_mmap_next || size > m_mmap_next - addr)
      return neg_errno(ENOMEM);
    if (flags & kMapFixedNoReplace) return neg_errno(EEXIST);
    uint8_t* p = m_memory.host_ptr_for_write(addr, size);
    if (!p) return neg_errno(ENOMEM);
    std::memset(p, 0, static_cast<size_t>(size));
    return addr;
  }
  if (size > m_config.mmap_limit - m_mmap_next) return neg_errno(ENOMEM);
  const uint64_t at = m_mmap_next;
  m_mmap_next += size;  // fresh pages: guest memory starts zeroed
  return at;
}

uint64_t LinuxSyscalls::sys_munmap(uint64_t addr, uint64_t len) {
  if (addr % 4096 || len == 0) return neg_errno(EINVAL);
  const uint64_t size = align_up(len, 4096);
  if (size < len) return neg_errno(EINVAL);
  // The pages are not reused; clear what lies in the mmap area so a later MAP_FIXED or a
  // stale pointer sees zeros rather than old data.
  if (addr >= m_config.mmap_base && addr <= m_mmap_next && size <= m_mmap_next - addr) {
    if (uint8_t* p = m_memory.host_ptr_for_write(addr, size)) std::memset(p, 0, static_cast<size_t>(size));
  }
  return 0;
}

uint64_t LinuxSyscalls::sys_mprotect(uint64_t addr, uint64_t len) {
  if (addr % 4096) return neg_errno(EINVAL);
  if (!m_memory.contains(addr, align_up(len, 4096))) return neg_errno(ENOMEM);
  return 0;  // not enforced: see the file comment
}

uint64_t LinuxSyscalls::sys_prlimit64(uint64_t pid, uint64_t resource, uint64_t new_limit,
                                      uint64_t old_limit) {
  constexpr uint64_t kRlimitStack = 3, kRlimInfinity = ~0ull;
  if (pid != 0 && pid != 1) return neg_errno(ESRCH);
  if (new_limit != 0) return neg_errno(EPERM);  // limits are fixed
  if (old_limit != 0) {
    const uint64_t cur = resource == kRlimitStack ? m_config.stack_size : kRlimInfinity;
    if (!m_memory.write_le<uint64_t>(old_limit, cur) ||
        !m_memory.write_le<uint64_t>(old_limit + 8, kRlimInfinity))
      return neg_errno(EFAULT);
  }
  return 0;
}

uint64_t LinuxSyscalls::sys_clock_gettime(uint64_t clock, uint64_t ts) {
  if (clock > 11) return neg_errno(EINVAL);
  timespec t{};
  if (clock_gettime(static_cast<clockid_t>(clock), &t) != 0) return neg_errno(errno);
  if (!m_memory.write_le<int64_t>(ts, t.tv_sec) || !m_memory.write_le<int64_t>(ts + 8, t.tv_nsec))
    return neg_errno(EFAULT);
  return 0;
}

uint64_t LinuxSyscalls::sys_getrandom(uint64_t buf, uint64_t len) {
  len = std::min<uint64_t>(len, 1 << 20);
  uint8_t* p = m_memory.host_ptr_for_write(buf, len);
  if (!p) return neg_errno(EFAULT);
  const ssize_t n = getrandom(p, static_cast<size_t>(len), 0);
  return n < 0 ? neg_errno(errno) : static_cast<uint64_t>(n);
}

uint64_t LinuxSyscalls::sys_readlinkat(uint64_t dirfd, uint64_t path, uint64_t buf, uint64_t len) {
  (void)dirfd;
  static constexpr char kSelf[] = "/proc/self/exe";
  char name[sizeof kSelf] = {};
  for (size_t i = 0; i < sizeof kSelf; ++i) {
    auto c = m_memory.read_le<uint8_t>(path + i);
    if (!c) return neg_errno(EFAULT);
    name[i] = static_cast<char>(*c);
    if (*c == 0) break;
  }
  if (std::memcmp(name, kSelf, sizeof kSelf) != 0) return neg_errno(ENOENT);  // no file system yet
  const uint64_t n = std::min<uint64_t>(len, m_config.execfn.size());
  uint8_t* p = m_memory.host_ptr_for_write(buf, n);
  if (!p) return neg_errno(EFAULT);
  std::memcpy(p, m_config.execfn.data(), static_cast<size_t>(n));
  return n;
}

}  // namespace doppel::rv64::user
