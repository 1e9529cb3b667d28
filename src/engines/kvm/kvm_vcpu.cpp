#include "engines/kvm/kvm_vcpu.h"

#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <mutex>
#include <unordered_set>

#include "base/log.h"
#include "engines/kvm/kvm_abi.h"
#include "engines/kvm/msr.h"

namespace doppel::kvm {

namespace {

// kick() interrupts KVM_RUN with this signal; the handler does nothing, the point is the
// EINTR (with kvm_run.immediate_exit covering a signal that lands outside KVM_RUN).
constexpr int kKickSignal = SIGUSR1;

void install_kick_handler() {
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction sa {};
    sa.sa_handler = [](int) {};
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;  // no SA_RESTART: KVM_RUN must return EINTR
    sigaction(kKickSignal, &sa, nullptr);
  });
}

const char* internal_error_name(uint32_t suberror) {
  switch (suberror) {
    case KVM_INTERNAL_ERROR_EMULATION: return "emulation failure";
    case KVM_INTERNAL_ERROR_SIMUL_EX: return "exception while delivering an exception";
    case KVM_INTERNAL_ERROR_DELIVERY_EV: return "exit during event delivery";
    case KVM_INTERNAL_ERROR_UNEXPECTED_EXIT_REASON: return "unexpected exit reason";
    default: return "unknown";
  }
}

// struct kvm_msrs as the kernel lays it out: an 8-byte header, then the entries.
std::vector<uint8_t> msr_buffer(const std::vector<kvm_msr_entry>& entries) {
  std::vector<uint8_t> buf(sizeof(MsrsHeader) + entries.size() * sizeof(kvm_msr_entry));
  reinterpret_cast<MsrsHeader*>(buf.data())->nmsrs = static_cast<uint32_t>(entries.size());
  std::memcpy(buf.data() + sizeof(MsrsHeader), entries.data(), entries.size() * sizeof(kvm_msr_entry));
  return buf;
}

// KVM refuses KVM_GET_MSRS / KVM_SET_MSRS with nmsrs >= MAX_IO_MSRS (256,
// arch/x86/kvm/x86.c msr_io()).
constexpr size_t kMsrsPerIoctl = 255;

constexpr uint32_t kMsrIa32Tsc = 0x10;
constexpr uint32_t kMsrIa32TscDeadline = 0x6e0;

// The MTRRs KVM emulates (arch/x86/kvm/mtrr.c), which KVM_GET_MSR_INDEX_LIST leaves out:
// the 8 variable base/mask pairs, the fixed ranges and the default type (QEMU saves them
// the same way). MTRRcap is read-only and not saved.
std::vector<uint32_t> mtrr_msrs() {
  std::vector<uint32_t> v;
  for (uint32_t i = 0x200; i < 0x210; ++i) v.push_back(i);  // MTRRphysBase0..MTRRphysMask7
  v.insert(v.end(), {0x250, 0x258, 0x259});                 // fix64K_00000, fix16K_80000/A0000
  for (uint32_t i = 0x268; i < 0x270; ++i) v.push_back(i);  // fix4K_C0000..fix4K_F8000
  v.push_back(0x2ff);                                       // MTRRdefType
  return v;
}

// What save() tries: KVM's list, then the MTRRs and the boot MSRs, each MSR once.
std::vector<uint32_t> msrs_to_save(const std::vector<uint32_t>& kvm_list) {
  std::vector<uint32_t> candidates = kvm_list;
  for (uint32_t index : mtrr_msrs()) candidates.push_back(index);
  for (const auto& m : boot_msrs()) candidates.push_back(static_cast<uint32_t>(m.index));
  std::vector<uint32_t> out;
  std::unordered_set<uint32_t> seen;
  for (uint32_t index : candidates)
    if (seen.insert(index).second) out.push_back(index);
  return out;
}

VcpuExit simple(VcpuExit::Reason reason, std::string detail = {}) {
  VcpuExit exit;
  exit.reason = reason;
  exit.detail = std::move(detail);
  return exit;
}

VcpuExit crash(std::string detail) {
  VcpuExit exit;
  exit.reason = VcpuExit::Reason::kCrash;
  exit.detail = std::move(detail);
  return exit;
}

}  // namespace

Result<std::unique_ptr<KvmVcpu>> KvmVcpu::create(UniqueFd fd, unsigned index, size_t run_size,
                                                 std::vector<uint32_t> msr_index_list) {
  void* p = mmap(nullptr, run_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
  if (p == MAP_FAILED) return Error::from_errno(fmt::format("vCPU {}: mmap of kvm_run", index));
  install_kick_handler();
  return std::unique_ptr<KvmVcpu>(new KvmVcpu(std::move(fd), index, static_cast<kvm_run*>(p),
                                              run_size, std::move(msr_index_list)));
}

KvmVcpu::KvmVcpu(UniqueFd fd, unsigned index, kvm_run* run, size_t run_size,
                 std::vector<uint32_t> msr_index_list)
    : m_fd(std::move(fd)), m_index(index), m_run(run), m_run_size(run_size),
      m_save_msrs(msrs_to_save(msr_index_list)) {}

KvmVcpu::~KvmVcpu() { munmap(m_run, m_run_size); }

void* KvmVcpu::mapping_page(int page) const {
  const auto page_size = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  if (page < 0 || (static_cast<size_t>(page) + 1) * page_size > m_run_size) return nullptr;
  return reinterpret_cast<uint8_t*>(m_run) + static_cast<size_t>(page) * page_size;
}

Result<VcpuExit> KvmVcpu::run() {
  if (!m_thread_known.load(std::memory_order_acquire)) {
    m_thread.store(pthread_self(), std::memory_order_relaxed);
    m_thread_known.store(true, std::memory_order_release);
  }
  if (m_io_next < m_io_count) return next_io_exit();
  m_io_next = m_io_count = 0;
  m_pending_read = false;
  if (m_debug_hold) [[unlikely]]
    return wait_for_kick();

  if (ioctl(m_fd.get(), KVM_RUN, 0) < 0) {
    if (errno == EINTR || errno == EAGAIN) {
      std::atomic_ref<uint8_t>(m_run->immediate_exit).store(0, std::memory_order_relaxed);
      return simple(VcpuExit::Reason::kKicked);
    }
    return Error::from_errno(fmt::format("vCPU {}: KVM_RUN", m_index));
  }

  // The one place KVM's exit reasons become doppel's.
  switch (m_run->exit_reason) {
    case KVM_EXIT_IO:
      m_io_count = m_run->io.count;
      m_io_next = 0;
      return next_io_exit();
    case KVM_EXIT_MMIO: {
      VcpuExit exit;
      exit.addr = m_run->mmio.phys_addr;
      exit.size = m_run->mmio.len;
      if (exit.size == 0 || exit.size > 8) return crash(fmt::format("MMIO access of {} bytes", exit.size));
      if (m_run->mmio.is_write) {
        exit.reason = VcpuExit::Reason::kMmioWrite;
        std::memcpy(&exit.data, m_run->mmio.data, exit.size);
      } else {
        exit.reason = VcpuExit::Reason::kMmioRead;
        m_pending_read = true;
      }
      return exit;
    }
    case KVM_EXIT_INTR:
      return simple(VcpuExit::Reason::kKicked);
    case KVM_EXIT_DEBUG:
      return debug_exit();
    case KVM_EXIT_SHUTDOWN:
      // A triple fault (or a shutdown cycle): on a PC the chipset resets the machine.
      return simple(VcpuExit::Reason::kReset, "triple fault");
    case KVM_EXIT_SYSTEM_EVENT:
      switch (m_run->system_event.type) {
        case KVM_SYSTEM_EVENT_SHUTDOWN:
          return simple(VcpuExit::Reason::kPowerOff);
        case KVM_SYSTEM_EVENT_RESET:
          return simple(VcpuExit::Reason::kReset, "system reset");
        case KVM_SYSTEM_EVENT_CRASH:
          return crash("the guest reported a crash (KVM_SYSTEM_EVENT_CRASH)");
        default:
          return crash(fmt::format("unknown system event {}", m_run->system_event.type));
      }
    case KVM_EXIT_HLT:
      // With the in-kernel local APIC, HLT sleeps in the kernel; this only happens if
      // the guest halted in a way KVM gives up on.
      return crash("vCPU halted with no way to wake up");
    case KVM_EXIT_INTERNAL_ERROR: {
      std::string data;
      for (uint32_t i = 0; i < m_run->internal.ndata && i < 16; ++i)
        data += fmt::format(" {:#x}", m_run->internal.data[i]);
      std::string where;
      if (auto r = regs(); r.ok()) where = fmt::format(" at rip {:#x}", r->rip);
      return crash(fmt::format("KVM internal error {} ({}){}, data:{}", m_run->internal.suberror,
                               internal_error_name(m_run->internal.suberror), where, data));
    }
    case KVM_EXIT_FAIL_ENTRY:
      return crash(fmt::format("KVM could not enter the guest: hardware reason {:#x}",
                               m_run->fail_entry.hardware_entry_failure_reason));
    case KVM_EXIT_EXCEPTION:
      return crash(fmt::format("unhandled guest exception {} (error code {:#x})",
                               m_run->ex.exception, m_run->ex.error_code));
    default:
      return crash(fmt::format("unhandled KVM exit reason {}", m_run->exit_reason));
  }
}

VcpuExit KvmVcpu::next_io_exit() {
  const auto& io = m_run->io;
  VcpuExit exit;
  exit.addr = io.port;
  exit.size = io.size;
  // The data area lies inside the kvm_run mapping; KVM chose data_offset and count.
  uint8_t* data = reinterpret_cast<uint8_t*>(m_run) + io.data_offset + uint64_t{m_io_next} * io.size;
  ++m_io_next;
  if (io.direction == KVM_EXIT_IO_OUT) {
    exit.reason = VcpuExit::Reason::kPioWrite;
    std::memcpy(&exit.data, data, io.size);
    m_pending_read = false;
  } else {
    exit.reason = VcpuExit::Reason::kPioRead;
    m_pending_read = true;
  }
  return exit;
}

void KvmVcpu::set_io_result(uint64_t data) {
  if (!m_pending_read) return;
  m_pending_read = false;
  if (m_run->exit_reason == KVM_EXIT_IO && m_io_next > 0) {
    const auto& io = m_run->io;
    uint8_t* dst = reinterpret_cast<uint8_t*>(m_run) + io.data_offset + uint64_t{m_io_next - 1} * io.size;
    std::memcpy(dst, &data, io.size);
  } else if (m_run->exit_reason == KVM_EXIT_MMIO) {
    std::memcpy(m_run->mmio.data, &data, m_run->mmio.len);
  }
}

void KvmVcpu::kick() {
  std::atomic_ref<uint8_t>(m_run->immediate_exit).store(1, std::memory_order_release);
  m_kicks.fetch_add(1, std::memory_order_release);
  m_kicks.notify_all();
  if (m_thread_known.load(std::memory_order_acquire))
    pthread_kill(m_thread.load(std::memory_order_relaxed), kKickSignal);
}

Result<void> KvmVcpu::set_cpuid(const std::vector<kvm_cpuid_entry2>& entries) {
  std::vector<uint8_t> buf(sizeof(CpuidHeader) + entries.size() * sizeof(kvm_cpuid_entry2));
  reinterpret_cast<CpuidHeader*>(buf.data())->nent = static_cast<uint32_t>(entries.size());
  std::memcpy(buf.data() + sizeof(CpuidHeader), entries.data(),
              entries.size() * sizeof(kvm_cpuid_entry2));
  if (ioctl(m_fd.get(), kSetCpuid2, buf.data()) < 0)
    return Error::from_errno(fmt::format("vCPU {}: KVM_SET_CPUID2", m_index));
  return ok();
}

Result<void> KvmVcpu::set_boot_msrs() {
  const auto values = boot_msrs();
  std::vector<kvm_msr_entry> entries(values.size());
  for (size_t i = 0; i < values.size(); ++i) {
    entries[i].index = static_cast<uint32_t>(values[i].index);
    entries[i].data = values[i].value;
  }
  auto buf = msr_buffer(entries);
  const int n = ioctl(m_fd.get(), kSetMsrs, buf.data());
  if (n < 0) return Error::from_errno(fmt::format("vCPU {}: KVM_SET_MSRS", m_index));
  if (static_cast<size_t>(n) != values.size())
    return Error::format("vCPU {}: KVM_SET_MSRS: KVM refused MSR {:#x}", m_index,
                         static_cast<uint32_t>(values[static_cast<size_t>(n)].index));
  return ok();
}

Result<void> KvmVcpu::set_fpu_defaults() {
  kvm_fpu fpu{};
  fpu.fcw = 0x37f;     // x87 control word at FNINIT
  fpu.mxcsr = 0x1f80;  // SSE exceptions masked
  if (ioctl(m_fd.get(), KVM_SET_FPU, &fpu) < 0)
    return Error::from_errno(fmt::format("vCPU {}: KVM_SET_FPU", m_index));
  return ok();
}

Result<void> KvmVcpu::set_lapic_lints() {
  // What PC firmware leaves behind: LINT0 ExtINT (the 8259 PIC), LINT1 NMI.
  constexpr size_t kLvtLint0 = 0x350;
  constexpr size_t kLvtLint1 = 0x360;
  constexpr uint32_t kDeliveryExtInt = 7u << 8;
  constexpr uint32_t kDeliveryNmi = 4u << 8;
  kvm_lapic_state lapic{};
  if (ioctl(m_fd.get(), KVM_GET_LAPIC, &lapic) < 0)
    return Error::from_errno(fmt::format("vCPU {}: KVM_GET_LAPIC", m_index));
  auto set = [&](size_t reg, uint32_t delivery) {
    uint32_t v;
    std::memcpy(&v, lapic.regs + reg, 4);
    v = (v & ~0x700u & ~(1u << 16)) | delivery;
    std::memcpy(lapic.regs + reg, &v, 4);
  };
  set(kLvtLint0, kDeliveryExtInt);
  set(kLvtLint1, kDeliveryNmi);
  if (ioctl(m_fd.get(), KVM_SET_LAPIC, &lapic) < 0)
    return Error::from_errno(fmt::format("vCPU {}: KVM_SET_LAPIC", m_index));
  return ok();
}

Result<void> KvmVcpu::set_entry(const X86EntryState& entry) {
  kvm_sregs sregs{};
  if (ioctl(m_fd.get(), KVM_GET_SREGS, &sregs) < 0)
    return Error::from_errno(fmt::format("vCPU {}: KVM_GET_SREGS", m_index));
  kvm_regs regs{};
  regs.rflags = 2;  // bit 1 is reserved-one; interrupts off
  regs.rip = entry.rip;
  regs.rsp = entry.rsp;
  regs.rsi = entry.rsi;
  regs.rbx = entry.rbx;

  auto flat = [](uint16_t selector, uint8_t type, bool code64) {
    kvm_segment s{};
    s.base = 0;
    s.limit = 0xffffffff;
    s.selector = selector;
    s.type = type;
    s.present = 1;
    s.dpl = 0;
    s.db = code64 ? 0 : 1;
    s.s = 1;
    s.l = code64 ? 1 : 0;
    s.g = 1;
    return s;
  };
  constexpr uint8_t kTypeCodeExecRead = 0xb;  // accessed
  constexpr uint8_t kTypeDataReadWrite = 0x3;  // accessed
  constexpr uint64_t kCr0Pe = 1, kCr0Et = 1u << 4, kCr0Pg = 1ull << 31;
  constexpr uint64_t kCr4Pae = 1u << 5;
  constexpr uint64_t kEferLme = 1u << 8, kEferLma = 1u << 10;

  switch (entry.mode) {
    case X86EntryState::Mode::kReal:
      sregs.cs.selector = entry.real_cs;
      sregs.cs.base = uint64_t{entry.real_cs} << 4;
      break;
    case X86EntryState::Mode::kProtected32:
    case X86EntryState::Mode::kLong64: {
      const bool long_mode = entry.mode == X86EntryState::Mode::kLong64;
      sregs.gdt.base = entry.gdt_base;
      sregs.gdt.limit = entry.gdt_limit;
      sregs.idt.base = 0;
      sregs.idt.limit = 0;
      sregs.cs = flat(kBootCsSelector, kTypeCodeExecRead, long_mode);
      const kvm_segment data = flat(kBootDsSelector, kTypeDataReadWrite, false);
      sregs.ds = sregs.es = sregs.fs = sregs.gs = sregs.ss = data;
      sregs.cr0 = kCr0Pe | kCr0Et;
      if (long_mode) {
        sregs.cr3 = entry.cr3;
        sregs.cr4 = kCr4Pae;
        sregs.cr0 |= kCr0Pg;
        sregs.efer = kEferLme | kEferLma;
      } else {
        sregs.cr4 = 0;
        sregs.efer = 0;
      }
      break;
    }
  }
  if (ioctl(m_fd.get(), KVM_SET_SREGS, &sregs) < 0)
    return Error::from_errno(fmt::format("vCPU {}: KVM_SET_SREGS", m_index));
  if (ioctl(m_fd.get(), KVM_SET_REGS, &regs) < 0)
    return Error::from_errno(fmt::format("vCPU {}: KVM_SET_REGS", m_index));
  return ok();
}

Result<kvm_regs> KvmVcpu::regs() const {
  kvm_regs r{};
  if (ioctl(m_fd.get(), KVM_GET_REGS, &r) < 0)
    return Error::from_errno(fmt::format("vCPU {}: KVM_GET_REGS", m_index));
  return r;
}

Result<kvm_sregs> KvmVcpu::sregs() const {
  kvm_sregs s{};
  if (ioctl(m_fd.get(), KVM_GET_SREGS, &s) < 0)
    return Error::from_errno(fmt::format("vCPU {}: KVM_GET_SREGS", m_index));
  return s;
}

Result<VcpuState> KvmVcpu::save() const {
  VcpuState s;
  auto get = [&](unsigned long request, void* arg, const char* what) -> Result<void> {
    if (ioctl(m_fd.get(), request, arg) < 0)
      return Error::from_errno(fmt::format("vCPU {}: {}", m_index, what));
    return ok();
  };
  TRY(get(KVM_GET_REGS, &s.regs, "KVM_GET_REGS"));
  TRY(get(KVM_GET_SREGS, &s.sregs, "KVM_GET_SREGS"));
  TRY(get(KVM_GET_FPU, &s.fpu, "KVM_GET_FPU"));
  // EINVAL: a KVM without KVM_GET_XSAVE (no KVM_CAP_XSAVE), where kvm_fpu holds it all. A
  // vCPU whose XSAVE area outgrew 4 KiB (AMX, which doppel never grants) fails the same way.
  if (ioctl(m_fd.get(), kGetXsave, &s.xsave) == 0) s.has_xsave = true;
  else if (errno != EINVAL) return Error::from_errno(fmt::format("vCPU {}: KVM_GET_XSAVE", m_index));
  TRY(get(KVM_GET_XCRS, &s.xcrs, "KVM_GET_XCRS"));
  TRY(get(KVM_GET_LAPIC, &s.lapic, "KVM_GET_LAPIC"));
  TRY(get(KVM_GET_MP_STATE, &s.mp_state, "KVM_GET_MP_STATE"));
  TRY(get(KVM_GET_VCPU_EVENTS, &s.events, "KVM_GET_VCPU_EVENTS"));

  // KVM_GET_MSRS reads entries in order and stops at the first it cannot read, returning
  // how many it read: keep those, skip the one that failed, go on after it. The result is
  // what reading each MSR on its own and keeping the successes gives (QEMU, Firecracker),
  // in a few ioctls.
  const std::vector<uint32_t>& want = m_save_msrs;
  size_t at = 0;
  while (at < want.size()) {
    const size_t n = std::min(want.size() - at, kMsrsPerIoctl);
    std::vector<kvm_msr_entry> entries(n);
    for (size_t i = 0; i < n; ++i) entries[i].index = want[at + i];
    auto buf = msr_buffer(entries);
    const int got = ioctl(m_fd.get(), kGetMsrs, buf.data());
    if (got < 0) return Error::from_errno(fmt::format("vCPU {}: KVM_GET_MSRS", m_index));
    const auto read = std::min(static_cast<size_t>(got), n);
    for (size_t i = 0; i < read; ++i) {
      kvm_msr_entry e;
      std::memcpy(&e, buf.data() + sizeof(MsrsHeader) + i * sizeof e, sizeof e);
      s.msrs.push_back(e);
    }
    at += read;
    if (read < n) {
      spdlog::trace("vCPU {}: MSR {:#x} is not readable here: not saved", m_index, want[at]);
      ++at;
    }
  }
  return s;
}

Result<void> KvmVcpu::restore(const VcpuState& s) {
  if (s.version != VcpuState::kVersion)
    return Error::format("vCPU {}: state version {} is not supported", m_index, s.version);
  auto set = [&](unsigned long request, const void* arg, const char* what) -> Result<void> {
    if (ioctl(m_fd.get(), request, arg) < 0)
      return Error::from_errno(fmt::format("vCPU {}: {}", m_index, what));
    return ok();
  };
  TRY(set(KVM_SET_SREGS, &s.sregs, "KVM_SET_SREGS"));
  TRY(set(KVM_SET_REGS, &s.regs, "KVM_SET_REGS"));
  TRY(set(KVM_SET_FPU, &s.fpu, "KVM_SET_FPU"));
  if (s.has_xsave) TRY(set(kSetXsave, &s.xsave, "KVM_SET_XSAVE"));
  TRY(set(KVM_SET_XCRS, &s.xcrs, "KVM_SET_XCRS"));
  TRY(set(KVM_SET_LAPIC, &s.lapic, "KVM_SET_LAPIC"));
  TRY(set(KVM_SET_MP_STATE, &s.mp_state, "KVM_SET_MP_STATE"));
  TRY(set(KVM_SET_VCPU_EVENTS, &s.events, "KVM_SET_VCPU_EVENTS"));

  // The TSC deadline after the TSC (see kvm_vcpu.h), whatever order the file has.
  std::vector<kvm_msr_entry> msrs = s.msrs;
  std::stable_partition(msrs.begin(), msrs.end(),
                        [](const kvm_msr_entry& e) { return e.index != kMsrIa32TscDeadline; });
  std::stable_partition(msrs.begin(), msrs.end(),
                        [](const kvm_msr_entry& e) { return e.index == kMsrIa32Tsc; });
  for (size_t at = 0; at < msrs.size(); at += kMsrsPerIoctl) {
    const size_t n = std::min(msrs.size() - at, kMsrsPerIoctl);
    auto buf = msr_buffer(std::vector<kvm_msr_entry>(msrs.begin() + static_cast<ptrdiff_t>(at),
                                                     msrs.begin() + static_cast<ptrdiff_t>(at + n)));
    const int done = ioctl(m_fd.get(), kSetMsrs, buf.data());
    if (done < 0) return Error::from_errno(fmt::format("vCPU {}: KVM_SET_MSRS", m_index));
    if (static_cast<size_t>(done) < n) {
      const kvm_msr_entry& e = msrs[at + static_cast<size_t>(done)];
      return Error::format("vCPU {}: KVM_SET_MSRS: KVM refused MSR {:#x} = {:#x}", m_index,
                           e.index, static_cast<uint64_t>(e.data));
    }
  }
  return ok();
}

}  // namespace doppel::kvm
