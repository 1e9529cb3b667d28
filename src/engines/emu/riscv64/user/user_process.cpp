#include "engines/emu/riscv64/user/user_process.h"

#include <climits>
#include <csignal>
#include <cstdlib>
#include <fstream>
#include <random>

#include "engines/emu/riscv64/user/initial_stack.h"

namespace doppel::rv64::user {

namespace {

constexpr uint64_t kMaxElfSize = 512 * MiB;
constexpr uint64_t kChunk = 1 << 20;  // instructions per step() when there is no limit

// CSR numbers (privileged spec 2.2).
constexpr uint16_t kCsrMstatus = 0x300;
constexpr uint16_t kCsrMcounteren = 0x306;
constexpr uint16_t kCsrScounteren = 0x106;
constexpr uint16_t kCsrSatp = 0x180;
constexpr uint16_t kCsrPmpcfg0 = 0x3a0;
constexpr uint16_t kCsrPmpaddr0 = 0x3b0;
constexpr uint64_t kMstatusFsInitial = 1ull << 13;  // FS = Initial: F/D instructions allowed

Result<std::vector<uint8_t>> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) return Error::from_errno(path);
  const auto size = static_cast<uint64_t>(in.tellg());
  if (size > kMaxElfSize) return Error::format("{}: {} bytes is too large for an executable", path, size);
  std::vector<uint8_t> bytes(static_cast<size_t>(size));
  in.seekg(0);
  if (!in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(size)))
    return Error::format("{}: read failed", path);
  return bytes;
}

// The signal Linux delivers for an exception in user mode (arch/riscv/kernel/traps.c).
int signal_for(uint64_t cause, const char*& name) {
  switch (static_cast<Exception>(cause)) {
    case Exception::kIllegalInsn: name = "illegal instruction"; return SIGILL;
    case Exception::kBreakpoint: name = "breakpoint"; return SIGTRAP;
    case Exception::kInsnMisaligned: name = "misaligned instruction fetch"; return SIGBUS;
    case Exception::kLoadMisaligned: name = "misaligned load"; return SIGBUS;
    case Exception::kStoreMisaligned: name = "misaligned store/AMO"; return SIGBUS;
    case Exception::kInsnAccessFault: name = "instruction access fault"; return SIGSEGV;
    case Exception::kLoadAccessFault: name = "load access fault"; return SIGSEGV;
    case Exception::kStoreAccessFault: name = "store/AMO access fault"; return SIGSEGV;
    case Exception::kInsnPageFault: name = "instruction page fault"; return SIGSEGV;
    case Exception::kLoadPageFault: name = "load page fault"; return SIGSEGV;
    case Exception::kStorePageFault: name = "store/AMO page fault"; return SIGSEGV;
    default: name = "unexpected exception"; return SIGSEGV;
  }
}

}  // namespace

int UserExit::shell_status() const { return kind == Kind::kSignaled ? 128 + status : status; }

UserProcess::~UserProcess() = default;

Result<std::unique_ptr<UserProcess>> UserProcess::create(const UserProcessConfig& config) {
  const auto bytes = TRY(read_file(config.path));
  return create_from_image(bytes, config);
}

Result<std::unique_ptr<UserProcess>> UserProcess::create_from_image(std::span<const uint8_t> elf,
                                                                    const UserProcessConfig& config) {
  if (config.stack_size < 64 * KiB || config.stack_size % kUserPageSize)
    return Error::format("user stack size {:#x}: must be a multiple of 4 KiB and at least 64 KiB",
                         config.stack_size);
  if (config.heap_size % kUserPageSize || config.mmap_size % kUserPageSize)
    return Error::format("user heap size {:#x} / mmap size {:#x}: not a multiple of 4 KiB",
                         config.heap_size, config.mmap_size);
  std::unique_ptr<UserProcess> p(new UserProcess());
  p->m_config = config;
  p->m_image = TRY(parse_elf(elf, config.path));
  const ElfImage& image = p->m_image;

  const uint64_t stack_bottom = kUserStackTop - config.stack_size;
  const uint64_t mmap_base = stack_bottom - config.mmap_size;
  const uint64_t heap_end = image.high + config.heap_size;
  if (config.mmap_size > stack_bottom || heap_end < image.high || heap_end > mmap_base)
    return Error::format("{}: image and heap [{:#x}, {:#x}) run into the mmap area and stack at {:#x}",
                         config.path, image.low, heap_end, mmap_base);
  p->m_memory = TRY(GuestMemory::create({{image.low, heap_end - image.low},
                                         {mmap_base, config.mmap_size + config.stack_size}}));
  TRY(load_elf(image, elf, *p->m_memory));

  StackSpec spec;
  spec.argv = config.argv.empty() ? std::vector<std::string>{config.path} : config.argv;
  spec.envp = config.envp;
  spec.execfn = config.path;
  std::random_device rd;
  for (auto& b : spec.random) b = static_cast<uint8_t>(rd());
  const uint64_t sp = TRY(build_initial_stack(*p->m_memory, stack_bottom, kUserStackTop, image, spec));

  p->m_mmio = std::make_unique<Bus>("user");
  p->m_timebase = std::make_unique<Timebase>();
  p->m_hart = std::make_unique<Hart>(*p->m_memory, *p->m_mmio, *p->m_timebase);
  Hart& h = *p->m_hart;
  // M-mode setup before dropping to U: FP on, counters visible, one PMP entry covering
  // everything (with PMP implemented, an unmatched U-mode access would fail), paging off.
  struct CsrInit {
    uint16_t csr;
    uint64_t value;
    const char* name;
  };
  const CsrInit inits[] = {
      {kCsrMstatus, kMstatusFsInitial, "mstatus"},
      {kCsrMcounteren, 7, "mcounteren"},
      {kCsrScounteren, 7, "scounteren"},
      {kCsrPmpaddr0, ~0ull >> 10, "pmpaddr0"},
      {kCsrPmpcfg0, 0x1f, "pmpcfg0"},  // NAPOT, R W X
      {kCsrSatp, 0, "satp"},
  };
  for (const auto& c : inits) {
    if (!h.write_csr(c.csr, c.value))
      return Error::format("user process: the hart refused {} = {:#x}", c.name, c.value);
  }
  h.set_exit_on_trap(true);
  h.set_trace(config.trace);
  h.set_pc(image.entry);
  h.set_x(2, sp);
  h.set_priv(Priv::kU);

  LinuxSyscalls::Config sc;
  sc.stdin_fd = config.stdin_fd;
  sc.stdout_fd = config.stdout_fd;
  sc.stderr_fd = config.stderr_fd;
  sc.brk_start = image.high;
  sc.brk_limit = heap_end;
  sc.mmap_base = mmap_base;
  sc.mmap_limit = stack_bottom;
  sc.stack_size = config.stack_size;
  // readlink("/proc/self/exe") is absolute (glibc asserts it).
  if (char* real = realpath(config.path.c_str(), nullptr)) {
    sc.execfn = real;
    free(real);
  } else {
    sc.execfn = config.path;
  }
  p->m_syscalls = std::make_unique<LinuxSyscalls>(*p->m_memory, sc);
  return p;
}

Result<UserExit> UserProcess::run() {
  Hart& h = *m_hart;
  for (;;) {
    uint64_t budget = kChunk;
    if (m_config.max_instructions) {
      if (h.instret() >= m_config.max_instructions) {
        UserExit e;
        e.kind = UserExit::Kind::kInstructionLimit;
        return e;
      }
      budget = std::min(budget, m_config.max_instructions - h.instret());
    }
    if (m_observer) {
      budget = 1;
      m_observer(h);
    }
    const StepResult r = h.step(budget);
    if (r.kind != StepResult::Kind::kTrap) continue;  // budget used up, or a WFI: go on
    const Trap& t = r.trap;
    if (t.cause == static_cast<uint64_t>(Exception::kEcallFromU)) {
      const std::array<uint64_t, 6> args = {h.x(10), h.x(11), h.x(12), h.x(13), h.x(14), h.x(15)};
      const SyscallOutcome o = m_syscalls->handle(h.x(17), args);
      if (o.exited) {
        UserExit e;
        e.kind = UserExit::Kind::kExited;
        e.status = o.exit_status;
        return e;
      }
      h.set_x(10, o.ret);
      h.set_pc(t.pc + 4);  // ecall has no compressed form
      continue;
    }
    UserExit e;
    e.kind = UserExit::Kind::kSignaled;
    e.trap = t;
    const char* name = "";
    e.status = signal_for(t.cause, name);
    e.detail = t.is_interrupt() ? fmt::format("unexpected interrupt {:#x} at pc {:#x}", t.cause, t.pc)
                                : fmt::format("{} at pc {:#x} (cause {}, tval {:#x})", name, t.pc,
                                              t.cause, t.tval);
    return e;
  }
}

}  // namespace doppel::rv64::user
