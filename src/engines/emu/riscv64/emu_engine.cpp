// EmuEngine: one Hart per vCPU, each run on the thread that calls its Vcpu::run().
#include "engines/emu/riscv64/emu_engine.h"

#include <cstdlib>
#include <cstring>
#include <vector>

#include <fmt/format.h>

#include "engines/emu/riscv64/hart.h"

namespace doppel::rv64 {

namespace {

// gdb's RISC-V target description (gdb/features/riscv/*.xml; QEMU's numbering): x0-x31,
// pc, f0-f31, fflags, frm, fcsr, and the virtual "priv" register (the privilege level).
constexpr unsigned kRegPc = 32, kRegF0 = 33, kRegFflags = 65, kRegFrm = 66, kRegFcsr = 67,
                   kRegPriv = 68, kRegCount = 69;
// fflags, frm and fcsr are CSRs 1, 2 and 3, in that order; priv is the last register.
static_assert(kRegFrm == kRegFflags + 1 && kRegFcsr == kRegFrm + 1 && kRegPriv + 1 == kRegCount);

const DebugArch& riscv64_debug_arch() {
  static const DebugArch arch = [] {
    static constexpr std::string_view kCpu = "org.gnu.gdb.riscv.cpu";
    static constexpr std::string_view kFpu = "org.gnu.gdb.riscv.fpu";
    static constexpr std::string_view kVirtual = "org.gnu.gdb.riscv.virtual";
    static const std::vector<std::string> names = [] {
      std::vector<std::string> n;
      for (unsigned i = 0; i < 32; ++i) n.push_back(fmt::format("x{}", i));
      for (unsigned i = 0; i < 32; ++i) n.push_back(fmt::format("f{}", i));
      return n;
    }();
    DebugArch a;
    a.gdb_arch = "riscv:rv64";
    for (unsigned i = 0; i < 32; ++i)
      a.registers.push_back({names[i], 64, i == 2 ? "data_ptr" : "int", kCpu, "general"});
    a.registers.push_back({"pc", 64, "code_ptr", kCpu, "general"});
    for (unsigned i = 0; i < 32; ++i)
      a.registers.push_back({names[32 + i], 64, "ieee_double", kFpu, "float"});
    a.registers.push_back({"fflags", 32, "int", kFpu, "float"});
    a.registers.push_back({"frm", 32, "int", kFpu, "float"});
    a.registers.push_back({"fcsr", 32, "int", kFpu, "float"});
    a.registers.push_back({"priv", 64, "int", kVirtual, "system"});
    return a;
  }();
  return arch;
}

class EmuVcpu final : public Vcpu {
 public:
  EmuVcpu(Hart& hart, unsigned index) : m_hart(hart), m_index(index) {}
  unsigned index() const override { return m_index; }

  Result<VcpuExit> run() override {
    if (m_debug.active()) return run_debug();
    VcpuExit exit;
    switch (m_hart.run_engine()) {
      case EngineExit::kKicked:
        exit.reason = VcpuExit::Reason::kKicked;
        break;
      case EngineExit::kCrash:
        exit.reason = VcpuExit::Reason::kCrash;
        exit.detail = m_hart.crash_detail();
        break;
    }
    return exit;
  }
  // MMIO is dispatched inside the engine: there is never a pending read to complete.
  void set_io_result(uint64_t) override {}
  void kick() override { m_hart.pins().kick(); }
  Counters counters() const override {
    const Hart::Stats s = m_hart.stats();
    return {{"instructions_retired", s.instret},
            {"block_cache_hits", s.block_hits},
            {"block_cache_misses", s.block_misses},
            {"block_cache_flushes", s.cache_flushes},
            {"code_page_drops", s.code_page_drops},
            {"jit_translations", s.jit_translations},
            {"jit_cache_flushes", s.jit_flushes},
            {"jit_code_bytes", s.jit_code_bytes}};
  }

  const DebugArch* debug_arch() const override { return &riscv64_debug_arch(); }

  Result<std::vector<uint8_t>> debug_read_registers() override {
    std::vector<uint8_t> out;
    auto put = [&](uint64_t v, unsigned bytes) {
      for (unsigned i = 0; i < bytes; ++i) out.push_back(static_cast<uint8_t>(v >> (8 * i)));
    };
    for (unsigned i = 0; i < 32; ++i) put(m_hart.x(i), 8);
    put(m_hart.pc(), 8);
    for (unsigned i = 0; i < 32; ++i) put(m_hart.f(i), 8);
    put(m_hart.read_csr(0x001).value_or(0), 4);  // fflags
    put(m_hart.read_csr(0x002).value_or(0), 4);  // frm
    put(m_hart.read_csr(0x003).value_or(0), 4);  // fcsr
    put(static_cast<uint64_t>(m_hart.priv()), 8);
    return out;
  }

  Result<void> debug_write_register(unsigned index, std::span<const uint8_t> value) override {
    if (index >= kRegCount)
      return Error::format("register {}: riscv64 has registers 0 to {}", index, kRegCount - 1);
    const unsigned bytes = riscv64_debug_arch().registers[index].bits / 8;
    if (value.size() != bytes)
      return Error::format("register {}: {} bytes given, it has {}", index, value.size(), bytes);
    uint64_t v = 0;
    for (unsigned i = 0; i < bytes; ++i) v |= static_cast<uint64_t>(value[i]) << (8 * i);
    if (index < 32) {
      m_hart.set_x(index, v);
    } else if (index == kRegPc) {
      m_hart.set_pc(v);
    } else if (index < kRegFflags) {
      m_hart.set_f(index - kRegF0, v);
    } else if (index <= kRegFcsr) {
      if (!m_hart.write_csr(static_cast<uint16_t>(1 + index - kRegFflags), v))
        return Error::format("register {}: the CSR write was refused", index);
    } else {
      if (v != 0 && v != 1 && v != 3)
        return Error::format("priv: {} is not a privilege level (0 U, 1 S, 3 M)", v);
      m_hart.set_priv(static_cast<Priv>(v));
    }
    return ok();
  }

  Result<uint64_t> debug_translate(uint64_t va) override {
    uint64_t pa = 0;
    if (!m_hart.debug_translate(va, pa))
      return Error::format("{:#x}: not mapped by hart {}'s page tables", va, m_index);
    return pa;
  }

  Result<void> set_debug(const DebugControl& control) override {
    // While watchpoints are set no data page may sit in the TLB (see Hart::run_debug).
    if (!control.watchpoints.empty()) m_hart.flush_tlb();
    m_debug = control;
    return ok();
  }

  void debug_memory_written() override { m_hart.flush_decode_cache(); }

  std::string debug_describe() override {
    static constexpr const char* kAbi[32] = {
        "zero", "ra", "sp", "gp", "tp", "t0", "t1", "t2", "s0", "s1", "a0",
        "a1",   "a2", "a3", "a4", "a5", "a6", "a7", "s2", "s3", "s4", "s5",
        "s6",   "s7", "s8", "s9", "s10", "s11", "t3", "t4", "t5", "t6"};
    static constexpr const char* kPriv[4] = {"U", "S", "?", "M"};
    std::string out = fmt::format("hart {}  pc {:016x}  priv {} ({})\n", m_hart.hart_id(),
                                  m_hart.pc(), static_cast<unsigned>(m_hart.priv()),
                                  kPriv[static_cast<unsigned>(m_hart.priv()) & 3]);
    for (unsigned i = 0; i < 32; ++i)
      out += fmt::format("x{:<2} {:>4} {:016x}{}", i, kAbi[i], m_hart.x(i), i % 4 == 3 ? "\n" : "  ");
    static constexpr std::pair<uint16_t, const char*> kCsrs[] = {
        {0x300, "mstatus"}, {0x301, "misa"},    {0x302, "medeleg"}, {0x303, "mideleg"},
        {0x304, "mie"},     {0x344, "mip"},     {0x305, "mtvec"},   {0x341, "mepc"},
        {0x342, "mcause"},  {0x343, "mtval"},   {0x340, "mscratch"}, {0x100, "sstatus"},
        {0x104, "sie"},     {0x144, "sip"},     {0x105, "stvec"},   {0x141, "sepc"},
        {0x142, "scause"},  {0x143, "stval"},   {0x140, "sscratch"}, {0x180, "satp"},
        {0x003, "fcsr"}};
    unsigned n = 0;
    for (const auto& [csr, name] : kCsrs) {
      const auto v = m_hart.read_csr(csr);
      if (!v) continue;
      out += fmt::format("{:>8} {:016x}{}", name, *v, ++n % 4 == 0 ? "\n" : "  ");
    }
    if (n % 4 != 0) out += "\n";
    return out;
  }

 private:
  Result<VcpuExit> run_debug() {
    VcpuExit exit;
    const Hart::DebugRun r = m_hart.run_debug(m_debug);
    switch (r.stop) {
      case Hart::DebugRun::Stop::kKicked:
        exit.reason = VcpuExit::Reason::kKicked;
        return exit;
      case Hart::DebugRun::Stop::kBreakpoint:
        exit.debug = DebugStopKind::kBreakpoint;
        break;
      case Hart::DebugRun::Stop::kStep:
        exit.debug = DebugStopKind::kStep;
        break;
      case Hart::DebugRun::Stop::kWatch:
        exit.addr = r.addr;
        // Report the watchpoint the way it was set: an access watchpoint hit by a store is
        // still an access watchpoint.
        exit.debug = DebugStopKind::kWatchWrite;
        for (const Watchpoint& w : m_debug.watchpoints) {
          if (r.addr < w.addr || r.addr >= w.addr + w.len) continue;
          if (w.kind == WatchKind::kAccess) {
            exit.debug = DebugStopKind::kWatchAccess;
            break;
          }
          if (w.kind == r.kind) {
            exit.debug = w.kind == WatchKind::kRead ? DebugStopKind::kWatchRead
                                                    : DebugStopKind::kWatchWrite;
            break;
          }
        }
        break;
    }
    exit.reason = VcpuExit::Reason::kDebug;
    return exit;
  }

  Hart& m_hart;
  unsigned m_index;
  DebugControl m_debug;  // set only while parked (set_debug); read by run()
};

// DOPPEL_TRACE=1 (or "insns"): every instruction; DOPPEL_TRACE=traps: every trap taken.
struct TraceConfig {
  bool insns = false;
  bool traps = false;
};
TraceConfig trace_from_env() {
  TraceConfig t;
  const char* v = std::getenv("DOPPEL_TRACE");
  if (!v || !*v || std::strcmp(v, "0") == 0) return t;
  if (std::strcmp(v, "traps") == 0) t.traps = true;
  else t.insns = true;
  return t;
}

}  // namespace

struct EmuEngine::Impl {
  std::vector<std::unique_ptr<Hart>> harts;
  std::vector<HartResetState> reset;
  std::vector<bool> created;
};

EmuEngine::EmuEngine(std::unique_ptr<Impl> impl) : m_impl(std::move(impl)) {}
EmuEngine::~EmuEngine() = default;

Result<std::unique_ptr<EmuEngine>> EmuEngine::create(GuestMemory& memory, const Bus& mmio,
                                                     const Timebase& timebase, unsigned harts) {
  if (harts == 0 || harts > 64)
    return Error::format("emu engine: {} harts requested; supported: 1 to 64", harts);
  auto impl = std::make_unique<Impl>();
  const TraceConfig trace = trace_from_env();
  for (unsigned i = 0; i < harts; ++i) {
    impl->harts.push_back(std::make_unique<Hart>(memory, mmio, timebase, i));
    impl->harts.back()->set_trace(trace.insns);
    impl->harts.back()->set_trace_traps(trace.traps);
    impl->harts.back()->set_sole_hart(harts == 1);
  }
  impl->reset.resize(harts);
  impl->created.resize(harts, false);
  return std::unique_ptr<EmuEngine>(new EmuEngine(std::move(impl)));
}

InterruptPins& EmuEngine::pins(unsigned hart) { return m_impl->harts.at(hart)->pins(); }

unsigned EmuEngine::hart_count() const { return static_cast<unsigned>(m_impl->harts.size()); }

void EmuEngine::set_reset_state(unsigned hart, const HartResetState& state) {
  if (hart < m_impl->reset.size()) m_impl->reset[hart] = state;
}

Result<void> EmuEngine::enable_jit(uint64_t cache_bytes) {
#if defined(__x86_64__)
  const size_t each = static_cast<size_t>(cache_bytes / m_impl->harts.size());
  for (auto& h : m_impl->harts) TRY(h->enable_jit(each));
  return {};
#else
  (void)cache_bytes;
  return Error("--jit on: the JIT emits x86-64 code; this host runs the interpreter only");
#endif
}

Hart& EmuEngine::hart(unsigned index) { return *m_impl->harts.at(index); }

Result<std::unique_ptr<Vcpu>> EmuEngine::create_vcpu(unsigned index) {
  if (index >= m_impl->harts.size())
    return Error::format("emu engine: vcpu {} does not exist ({} harts)", index,
                         m_impl->harts.size());
  if (m_impl->created[index])
    return Error::format("emu engine: vcpu {} was already created", index);
  m_impl->created[index] = true;
  Hart& h = *m_impl->harts[index];
  const HartResetState& r = m_impl->reset[index];
  h.set_priv(Priv::kM);
  h.set_pc(r.pc);
  h.set_x(10, r.a0);
  h.set_x(11, r.a1);
  h.set_x(12, r.a2);
  h.flush_decode_cache();  // the loader wrote guest code after the engine was created
  return std::unique_ptr<Vcpu>(new EmuVcpu(h, index));
}

}  // namespace doppel::rv64
