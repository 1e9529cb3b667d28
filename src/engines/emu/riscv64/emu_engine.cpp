// EmuEngine: one Hart per vCPU, each run on the thread that calls its Vcpu::run().
#include "engines/emu/riscv64/emu_engine.h"

#include <cstdlib>
#include <cstring>
#include <vector>

#include "engines/emu/riscv64/hart.h"

namespace doppel::rv64 {

namespace {

class EmuVcpu final : public Vcpu {
 public:
  EmuVcpu(Hart& hart, unsigned index) : m_hart(hart), m_index(index) {}
  unsigned index() const override { return m_index; }

  Result<VcpuExit> run() override {
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
            {"block_cache_flushes", s.cache_flushes}};
  }

 private:
  Hart& m_hart;
  unsigned m_index;
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
