#include "sandbox/vmm_seccomp.h"

#include <fcntl.h>
#include <linux/kvm.h>
#include <linux/if_tun.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <termios.h>
#include <ucontext.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <initializer_list>
#include <thread>
#include <vector>

#include "base/log.h"

namespace doppel::sandbox {

namespace {

// ---- the SIGSYS report ----
// Written once by enable_vmm_seccomp() before any filter exists; read by the handler.
constexpr int kMaxNamedSyscall = 512;
char g_syscall_names[kMaxNamedSyscall][24];
std::atomic<FatalHook> g_on_fatal{nullptr};

void append(char* buf, size_t& len, size_t cap, const char* s) {
  while (*s && len + 1 < cap) buf[len++] = *s++;
}

void append_number(char* buf, size_t& len, size_t cap, long v) {
  char digits[24];
  int n = 0;
  const bool negative = v < 0;
  unsigned long u = negative ? 0ul - static_cast<unsigned long>(v) : static_cast<unsigned long>(v);
  do {
    digits[n++] = static_cast<char>('0' + u % 10);
    u /= 10;
  } while (u && n < 23);
  if (negative && len + 1 < cap) buf[len++] = '-';
  while (n > 0 && len + 1 < cap) buf[len++] = digits[--n];
}

void append_hex(char* buf, size_t& len, size_t cap, unsigned long v) {
  char digits[17];
  int n = 0;
  do {
    digits[n++] = "0123456789abcdef"[v & 0xf];
    v >>= 4;
  } while (v && n < 16);
  append(buf, len, cap, "0x");
  while (n > 0 && len + 1 < cap) buf[len++] = digits[--n];
}

// The call's first three arguments, from the registers the kernel saved (an ioctl's
// request number is the second), where the architecture is known.
bool syscall_args(void* context, unsigned long (&args)[3]) {
  [[maybe_unused]] auto* uc = static_cast<ucontext_t*>(context);
#if defined(__x86_64__)
  args[0] = static_cast<unsigned long>(uc->uc_mcontext.gregs[REG_RDI]);
  args[1] = static_cast<unsigned long>(uc->uc_mcontext.gregs[REG_RSI]);
  args[2] = static_cast<unsigned long>(uc->uc_mcontext.gregs[REG_RDX]);
  return true;
#elif defined(__aarch64__)
  for (int i = 0; i < 3; ++i) args[i] = uc->uc_mcontext.regs[i];
  return true;
#else
  return false;
#endif
}

// Async-signal-safe only: write(2), the hook (tcsetattr), _exit.
void on_sigsys(int, siginfo_t* info, void* context) {
  char msg[384];
  size_t len = 0;
  const int nr = info->si_syscall;
  const char* thread = current_thread_name();
  append(msg, len, sizeof msg, "\r\ndoppel: seccomp: thread '");
  append(msg, len, sizeof msg, *thread ? thread : "?");
  append(msg, len, sizeof msg, "' made a forbidden system call: ");
  append(msg, len, sizeof msg,
         nr >= 0 && nr < kMaxNamedSyscall && g_syscall_names[nr][0] ? g_syscall_names[nr] : "?");
  append(msg, len, sizeof msg, " (");
  append_number(msg, len, sizeof msg, nr);
  append(msg, len, sizeof msg, ")");
  if (unsigned long args[3]; syscall_args(context, args)) {
    append(msg, len, sizeof msg, ", arguments ");
    for (int i = 0; i < 3; ++i) {
      if (i) append(msg, len, sizeof msg, ", ");
      append_hex(msg, len, sizeof msg, args[i]);
    }
    // A file opened by name: which (the path is the caller's own memory).
    const char* path = nullptr;
#ifdef __NR_open
    if (nr == __NR_open) path = reinterpret_cast<const char*>(args[0]);
#endif
    if (nr == __NR_openat) path = reinterpret_cast<const char*>(args[1]);
    if (path) {
      append(msg, len, sizeof msg, " (\"");
      size_t n = 0;
      while (path[n] && n < 96 && len + 3 < sizeof msg) msg[len++] = path[n++];
      append(msg, len, sizeof msg, "\")");
    }
  }
  append(msg, len, sizeof msg, "\r\n");
  if (const FatalHook hook = g_on_fatal.load(std::memory_order_acquire)) hook();
  (void)!::write(STDERR_FILENO, msg, len);
  _exit(kExitSeccomp);
}

// ---- building a filter ----

// One argument's condition, every field set (libseccomp's SCMP_A<n> macros leave datum_b to
// aggregate zero-initialization, which -Wmissing-field-initializers rejects under clang).
scmp_arg_cmp arg_eq(unsigned index, scmp_datum_t value) {
  return scmp_arg_cmp{index, SCMP_CMP_EQ, value, 0};
}
scmp_arg_cmp arg_masked_eq(unsigned index, scmp_datum_t mask, scmp_datum_t value) {
  return scmp_arg_cmp{index, SCMP_CMP_MASKED_EQ, mask, value};
}

class Filter {
 public:
  explicit Filter(scmp_filter_ctx ctx) : m_ctx(ctx) {}
  ~Filter() { seccomp_release(m_ctx); }
  Filter(const Filter&) = delete;
  Filter& operator=(const Filter&) = delete;

  // Calls the host's architecture lacks (open, poll on arm64) are skipped.
  template <typename... Args>
  void allow(const char* name, Args... conditions) {
    add(SCMP_ACT_ALLOW, name, conditions...);
  }
  template <typename... Args>
  void add(uint32_t action, const char* name, Args... conditions) {
    const int nr = seccomp_syscall_resolve_name(name);
    if (nr == __NR_SCMP_ERROR) return;
    const int rc = seccomp_rule_add(m_ctx, action, nr, sizeof...(conditions), conditions...);
    if (rc != 0 && m_error == 0) {
      m_error = -rc;
      m_failed = name;
    }
  }
  void allow_all(std::initializer_list<const char*> names) {
    for (const char* n : names) allow(n);
  }
  void allow_ioctl(unsigned long cmd) { allow("ioctl", arg_eq(1, cmd)); }
  void allow_ioctls(std::initializer_list<unsigned long> cmds) {
    for (unsigned long c : cmds) allow_ioctl(c);
  }

  scmp_filter_ctx ctx() const { return m_ctx; }
  Result<void> status() const {
    if (m_error) return Error::format("seccomp: the rule for {}: {}", m_failed, std::strerror(m_error));
    return ok();
  }

 private:
  scmp_filter_ctx m_ctx;
  int m_error = 0;
  const char* m_failed = "";
};

// Every thread: memory, locks, time, signals' return, I/O on descriptors it already has,
// and what installing a further filter takes (a thread started by a filtered one adds its
// own: filters only ever narrow).
void add_base(Filter& f) {
  f.allow_all({"read", "readv", "write", "writev", "close", "lseek", "fstat", "newfstatat",
               "futex", "exit", "exit_group", "rt_sigreturn", "rt_sigprocmask", "restart_syscall",
               "clock_gettime", "clock_getres", "gettimeofday", "clock_nanosleep", "nanosleep",
               "sched_yield", "getpid", "gettid", "getrandom", "munmap", "mremap", "madvise",
               "brk", "poll", "ppoll", "epoll_wait", "epoll_pwait", "epoll_ctl", "fcntl",
               "sigaltstack", "rseq", "set_robust_list", "seccomp"});
  // No executable memory: the riscv64 JIT maps its code cache (jit/translator.cpp) while
  // the board is built, before any thread seals itself, and never maps or protects more.
  f.allow("mmap", arg_masked_eq(2, PROT_EXEC, 0));
  f.allow("mprotect", arg_masked_eq(2, PROT_EXEC, 0));
  for (int op : {PR_SET_NAME, PR_GET_NAME, PR_SET_NO_NEW_PRIVS, PR_GET_SECCOMP, PR_SET_SECCOMP})
    f.allow("prctl", arg_eq(0, static_cast<scmp_datum_t>(op)));
  // Signals to this process's own threads only (a KVM vCPU's kick, abort()).
  f.allow("tgkill", arg_eq(0, static_cast<scmp_datum_t>(getpid())));
  // The terminal: its state read and restored (the SIGSYS handler restores it too), non-
  // blocking mode, bytes waiting.
  f.allow_ioctls({TCGETS, TCSETS, TCSETSW, TCSETSF, TIOCGWINSZ, FIONBIO, FIONREAD});
  // Every device thread raises interrupts: on KVM, an interrupt line of the VM.
  f.allow_ioctls({KVM_IRQ_LINE, KVM_IRQ_LINE_STATUS});
}

// Sending and receiving on sockets it has.
void add_socket_io(Filter& f) {
  f.allow_all({"sendto", "recvfrom", "sendmsg", "recvmsg", "sendmmsg", "recvmmsg", "shutdown",
               "getsockopt", "setsockopt", "getsockname", "getpeername", "accept", "accept4"});
}

// New Unix-domain sockets (vsock's guest connections, migration to a unix: endpoint).
void add_unix_connect(Filter& f) {
  f.allow("socket", arg_eq(0, AF_UNIX));
  f.allow("connect");
}

// Threads (clone with CLONE_THREAD only: no new process). clone3's flags are behind a
// pointer a filter cannot read: ENOSYS makes glibc fall back to clone.
void add_thread_spawn(Filter& f) {
  f.allow("clone", arg_masked_eq(0, CLONE_THREAD, CLONE_THREAD));
  f.add(SCMP_ACT_ERRNO(ENOSYS), "clone3");
  f.allow("sched_getaffinity");
}

// Block I/O on open images (raw and qcow2: reads, writes, flushes, growth).
void add_block_io(Filter& f) {
  f.allow_all({"pread64", "pwrite64", "preadv", "pwritev", "preadv2", "pwritev2", "fsync",
               "fdatasync", "fallocate", "ftruncate"});
}

// Files by name: snapshots and their memory files, merging, the API socket's removal.
void add_files(Filter& f) {
  f.allow_all({"openat", "open", "statx", "stat", "lstat", "unlink", "unlinkat", "rename",
               "renameat", "renameat2", "mkdir", "mkdirat", "getdents64", "readlink",
               "readlinkat", "access", "faccessat", "faccessat2", "copy_file_range", "fadvise64",
               "memfd_create", "flock", "eventfd2", "dup", "dup3"});
}

// Any KVM ioctl (type KVMIO): the threads that save, restore, pause or debug a KVM guest
// (state, clocks, dirty logs, guest debug) from outside its vCPUs.
void add_kvm_any(Filter& f) {
  f.allow("ioctl", arg_masked_eq(1, 0xff00, KVMIO << 8));
}

// A vCPU's own KVM ioctls: running, its registers (a kicked vCPU's state is read by
// others; these are for the exits that need them), its debug state, and the UART's
// coalesced zone.
void add_kvm_vcpu(Filter& f) {
  f.allow_ioctls({KVM_RUN, KVM_GET_REGS, KVM_SET_REGS, KVM_GET_SREGS, KVM_SET_SREGS,
                  KVM_GET_FPU, KVM_SET_FPU, KVM_GET_LAPIC, KVM_SET_LAPIC, KVM_GET_MP_STATE,
                  KVM_SET_MP_STATE, KVM_GET_VCPU_EVENTS, KVM_SET_VCPU_EVENTS, KVM_GET_XCRS,
                  KVM_SET_XCRS, KVM_GET_MSRS, KVM_SET_MSRS, KVM_GET_XSAVE, KVM_SET_XSAVE,
                  KVM_SET_GUEST_DEBUG, KVM_TRANSLATE,
                  KVM_GET_TSC_KHZ, KVM_SET_USER_MEMORY_REGION,
                  // The UART's transmit coalescing follows the guest's IER writes.
                  KVM_REGISTER_COALESCED_MMIO, KVM_UNREGISTER_COALESCED_MMIO});
}

void add_kind(Filter& f, ThreadKind kind) {
  add_base(f);
  switch (kind) {
    case ThreadKind::kVcpu:
      // MMIO and PIO are handled on the vCPU: a virtio notify sends a frame (TAP, slirp's
      // socketpair), connects a vsock stream, writes the console; DRIVER_OK starts a
      // device's thread, which runs under this filter and its own.
      add_socket_io(f);
      add_unix_connect(f);
      add_block_io(f);
      add_thread_spawn(f);
      add_kvm_vcpu(f);
      f.allow_ioctl(TUNSETOFFLOAD);
      f.allow("eventfd2");
      break;
    case ThreadKind::kMain:
      // Once the VM runs: waits for it, stops the devices (flushing images), removes its
      // sockets, puts back the signal handlers the console set for the terminal, reports
      // and exits.
      add_socket_io(f);
      add_block_io(f);
      add_kvm_any(f);
      f.allow_all({"unlink", "unlinkat", "rt_sigaction"});
      break;
    case ThreadKind::kTimer:
      break;
    case ThreadKind::kBlockIo:
      add_block_io(f);
      break;
    case ThreadKind::kThrottle:
      // Runs a limited request when its time comes: a disk's I/O or a frame's send.
      add_block_io(f);
      add_socket_io(f);
      break;
    case ThreadKind::kNetRx:
      add_socket_io(f);
      break;
    case ThreadKind::kConsoleRx:
      add_socket_io(f);
      break;
    case ThreadKind::kVsock:
      add_socket_io(f);
      add_unix_connect(f);
      break;
    case ThreadKind::kSlirp:
      // libslirp's own sockets for the guest's connections, host forwards and DNS.
      add_socket_io(f);
      for (int domain : {AF_INET, AF_INET6, AF_UNIX})
        f.allow("socket", arg_eq(0, static_cast<scmp_datum_t>(domain)));
      f.allow_all({"connect", "bind", "listen"});
      f.allow_ioctls({FIONREAD, SIOCATMARK});
      // It reads /etc/resolv.conf (read-only) for the DNS forwarder.
      f.allow("openat", arg_masked_eq(2, O_ACCMODE | O_CREAT, O_RDONLY));
      break;
    case ThreadKind::kIoeventfd:
      // On KVM a virtqueue notify arrives here rather than on the vCPU: the device's work
      // runs on this thread (a frame sent, a vsock stream connected, a disk request queued,
      // an interrupt raised through an irqfd).
      add_socket_io(f);
      add_unix_connect(f);
      add_block_io(f);
      break;
    case ThreadKind::kStdin:
      break;
    case ThreadKind::kApi:
    case ThreadKind::kApiJob:
      // The same list for both: a job runs under the server thread's filter and its own.
      // Snapshots (files), migration (a socket to the destination, dirty logs), pause and
      // resume (KVM state and clocks; resume restarts the devices' threads), start.
      add_socket_io(f);
      for (int domain : {AF_INET, AF_INET6, AF_UNIX})
        f.allow("socket", arg_eq(0, static_cast<scmp_datum_t>(domain)));
      f.allow("connect");
      // PUT /actions InstanceStart checks the VM's memory against the host's
      // (host_memory_bytes(): sysconf(_SC_PHYS_PAGES) is sysinfo).
      f.allow("sysinfo");
      add_block_io(f);
      add_files(f);
      add_thread_spawn(f);
      add_kvm_any(f);
      f.allow_ioctl(TUNSETOFFLOAD);
      break;
    case ThreadKind::kGdb:
      // Reads and writes guest state (KVM's registers, guest debug) and pauses the VM.
      add_socket_io(f);
      add_kvm_any(f);
      f.allow("eventfd2");
      break;
  }
}

Result<void> build(ThreadKind kind, bool load) {
  scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_TRAP);
  if (!ctx) return Error("seccomp: seccomp_init failed");
  Filter f(ctx);
  add_kind(f, kind);
  TRY(f.status().context(thread_kind_name(kind)));
  if (load) {
    if (const int rc = seccomp_load(f.ctx()); rc != 0)
      return Error::format("seccomp: loading the {} filter: {}", thread_kind_name(kind), std::strerror(-rc));
  }
  return ok();
}

void seal_or_die(ThreadKind kind) {
  if (auto r = install_vmm_filter(kind); !r.ok()) {
    // Checked by enable_vmm_seccomp() already: this is a broken host, not a guest's doing.
    spdlog::critical("{} (thread {}); --seccomp off runs without", r.error().message(),
                     current_thread_name());
    if (const FatalHook hook = g_on_fatal.load(std::memory_order_acquire)) hook();
    _exit(1);
  }
}

// glibc reads /proc/sys/vm/overcommit_memory, once per process, the first time a thread's
// malloc arena shrinks (malloc/arena.c, check_may_shrink_heap): a sealed thread freeing
// memory would die opening it. A thread of our own makes that first shrink now, before any
// filter: 64 small blocks (a new arena's heap, not mmap) freed back to its top.
void warm_up_malloc() {
  std::thread([] {
    std::vector<void*> blocks;
    for (int i = 0; i < 64; ++i) blocks.push_back(std::malloc(8 * 1024));
    for (void* b : blocks) std::free(b);
  }).join();
}

}  // namespace

Result<void> install_vmm_filter(ThreadKind kind) { return build(kind, true); }

Result<void> enable_vmm_seccomp(FatalHook on_fatal) {
  if (seccomp_api_get() < 1) return Error("seccomp: the kernel has no seccomp filters (--seccomp off runs without)");
  for (int k = 0; k < kThreadKinds; ++k) TRY(build(static_cast<ThreadKind>(k), false));
  for (int nr = 0; nr < kMaxNamedSyscall; ++nr) {
    char* name = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, nr);
    if (!name) continue;
    std::strncpy(g_syscall_names[nr], name, sizeof g_syscall_names[nr] - 1);
    std::free(name);
  }
  // Time zone files are read now, not by a sealed thread's first log line.
  tzset();
  warm_up_malloc();
  g_on_fatal.store(on_fatal, std::memory_order_release);
  struct sigaction sa {};
  sa.sa_sigaction = on_sigsys;
  sa.sa_flags = SA_SIGINFO;
  sigemptyset(&sa.sa_mask);
  if (sigaction(SIGSYS, &sa, nullptr) != 0) return Error::from_errno("seccomp: sigaction(SIGSYS)");
  set_thread_sealer(seal_or_die);
  return ok();
}

}  // namespace doppel::sandbox
