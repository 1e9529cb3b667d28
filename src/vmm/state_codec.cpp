#include "vmm/state_codec.h"

#include <array>
#include <cstring>
#include <vector>

#include <fmt/format.h>

namespace doppel {

namespace {

Result<uint32_t> read_version(StateReader& r, uint32_t known) {
  const uint32_t v = TRY(r.read_u32("version"));
  if (v != known)
    return Error::format("state version {} is not supported (this doppel reads {})", v, known);
  return v;
}

template <typename T, size_t N>
void write_array(StateWriter& w, const std::array<T, N>& a) {
  w.write_bytes({reinterpret_cast<const uint8_t*>(a.data()), N * sizeof(T)});
}
template <typename T, size_t N>
Result<void> read_array(StateReader& r, std::array<T, N>& a, std::string_view what) {
  const auto bytes = TRY(r.read_bytes(N * sizeof(T), what));
  std::memcpy(a.data(), bytes.data(), N * sizeof(T));
  return ok();
}

// Every element at most `max` ("msip[3]: 7 is more than 1").
template <typename T>
Result<void> check_each_at_most(const std::vector<T>& v, uint64_t max, std::string_view what) {
  for (size_t i = 0; i < v.size(); ++i)
    if (v[i] > max) return Error::format("{}[{}]: {} is more than {}", what, i, v[i], max);
  return ok();
}

Result<uint8_t> read_u8_at_most(StateReader& r, uint8_t max, std::string_view what) {
  const uint8_t v = TRY(r.read_u8(what));
  if (v > max) return Error::format("{}: {} is more than {}", what, v, max);
  return v;
}

}  // namespace

// ---- rv64::HartState ----

void encode_state(StateWriter& w, const rv64::TimebaseState& s) { w.write_u64(s.ticks); }

Result<void> decode_state(StateReader& r, rv64::TimebaseState& s) {
  s.ticks = TRY(r.read_u64("ticks"));
  return ok();
}

void encode_state(StateWriter& w, const rv64::HartState& s) {
  w.write_u32(s.version);
  w.write_u64(s.pc);
  write_array(w, s.x);
  write_array(w, s.f);
  w.write_u8(s.priv);
  w.write_u8(s.frm);
  w.write_u8(s.fflags);
  for (uint64_t v : {s.mstatus, s.medeleg, s.mideleg, s.mie, s.mip, s.mtvec, s.mscratch, s.mepc,
                     s.mcause, s.mtval, s.mcounteren, s.menvcfg, s.mcountinhibit, s.stvec,
                     s.sscratch, s.sepc, s.scause, s.stval, s.scounteren, s.senvcfg, s.satp,
                     s.instret})
    w.write_u64(v);
  w.write_i64(s.cycle_offset);
  w.write_i64(s.instret_offset);
  write_array(w, s.pmpcfg);
  write_array(w, s.pmpaddr);
}

Result<void> decode_state(StateReader& r, rv64::HartState& s) {
  s.version = TRY(read_version(r, rv64::HartState::kVersion));
  s.pc = TRY(r.read_u64("pc"));
  TRY(read_array(r, s.x, "x"));
  if (s.x[0] != 0) return Error::format("x0 is {:#x}, but x0 is always 0", s.x[0]);
  TRY(read_array(r, s.f, "f"));
  s.priv = TRY(r.read_u8("priv"));
  if (s.priv != 0 && s.priv != 1 && s.priv != 3)
    return Error::format("priv: {} is not a privilege level (0 U, 1 S, 3 M)", s.priv);
  s.frm = TRY(read_u8_at_most(r, 7, "frm"));
  s.fflags = TRY(read_u8_at_most(r, 31, "fflags"));
  struct Field {
    uint64_t& value;
    const char* name;
  };
  const Field fields[] = {
      {s.mstatus, "mstatus"},       {s.medeleg, "medeleg"},   {s.mideleg, "mideleg"},
      {s.mie, "mie"},               {s.mip, "mip"},           {s.mtvec, "mtvec"},
      {s.mscratch, "mscratch"},     {s.mepc, "mepc"},         {s.mcause, "mcause"},
      {s.mtval, "mtval"},           {s.mcounteren, "mcounteren"}, {s.menvcfg, "menvcfg"},
      {s.mcountinhibit, "mcountinhibit"}, {s.stvec, "stvec"}, {s.sscratch, "sscratch"},
      {s.sepc, "sepc"},             {s.scause, "scause"},     {s.stval, "stval"},
      {s.scounteren, "scounteren"}, {s.senvcfg, "senvcfg"},   {s.satp, "satp"},
      {s.instret, "instret"},
  };
  for (const Field& f : fields) f.value = TRY(r.read_u64(f.name));
  // mstatus.MPP is WARL over U, S and M: 2 never gets in (privileged spec 3.1.6.1).
  if (((s.mstatus & rv64::Hart::kMstatusMPP) >> 11) == 2)
    return Error::format("mstatus {:#x}: MPP is 2, not a privilege level", s.mstatus);
  s.cycle_offset = TRY(r.read_i64("cycle offset"));
  s.instret_offset = TRY(r.read_i64("instret offset"));
  TRY(read_array(r, s.pmpcfg, "pmpcfg"));
  TRY(read_array(r, s.pmpaddr, "pmpaddr"));
  return ok();
}

// ---- rv64::ClintState ----

void encode_state(StateWriter& w, const rv64::ClintState& s) {
  w.write_u32(s.version);
  w.write_int_vector(s.mtimecmp);
  w.write_int_vector(s.msip);
}

Result<void> decode_state(StateReader& r, rv64::ClintState& s) {
  s.version = TRY(read_version(r, rv64::ClintState::kVersion));
  s.mtimecmp = TRY(r.read_int_vector<uint64_t>("mtimecmp", kMaxStateHarts));
  s.msip = TRY(r.read_int_vector<uint32_t>("msip", kMaxStateHarts));
  if (s.msip.size() != s.mtimecmp.size())
    return Error::format("{} msip entries for {} mtimecmp entries (one each per hart)",
                         s.msip.size(), s.mtimecmp.size());
  TRY(check_each_at_most(s.msip, 1, "msip"));
  return ok();
}

// ---- rv64::PlicState ----

void encode_state(StateWriter& w, const rv64::PlicState& s) {
  w.write_u32(s.version);
  w.write_int_vector(s.priority);
  w.write_int_vector(s.level);
  w.write_int_vector(s.pending);
  w.write_int_vector(s.claimed);
  w.write_int_vector(s.enable);
  w.write_int_vector(s.threshold);
}

Result<void> decode_state(StateReader& r, rv64::PlicState& s) {
  s.version = TRY(read_version(r, rv64::PlicState::kVersion));
  s.priority = TRY(r.read_int_vector<uint32_t>("priority", kMaxStatePlicSources));
  TRY(check_each_at_most(s.priority, rv64::Plic::kMaxPriority, "priority"));
  const size_t sources = s.priority.size();
  auto per_source = [&](std::vector<uint8_t>& v, const char* name) -> Result<void> {
    v = TRY(r.read_int_vector<uint8_t>(name, kMaxStatePlicSources));
    if (v.size() != sources)
      return Error::format("{}: {} entries for {} sources", name, v.size(), sources);
    return check_each_at_most(v, 1, name);
  };
  TRY(per_source(s.level, "level"));
  TRY(per_source(s.pending, "pending"));
  TRY(per_source(s.claimed, "claimed"));
  const size_t words = (sources + 31) / 32;
  s.enable = TRY(r.read_int_vector<uint32_t>("enable", kMaxStatePlicContexts * 32));
  s.threshold = TRY(r.read_int_vector<uint32_t>("threshold", kMaxStatePlicContexts));
  TRY(check_each_at_most(s.threshold, rv64::Plic::kMaxPriority, "threshold"));
  if (s.enable.size() != s.threshold.size() * words)
    return Error::format("enable: {} words for {} contexts of {} sources ({} expected)",
                         s.enable.size(), s.threshold.size(), sources, s.threshold.size() * words);
  return ok();
}

// ---- Uart16550State ----

void encode_state(StateWriter& w, const Uart16550State& s) {
  w.write_u32(s.version);
  for (uint8_t v : {s.ier, s.lcr, s.mcr, s.scr, s.dll, s.dlm, s.fcr, s.lsr_errors, s.msr_deltas})
    w.write_u8(v);
  w.write_bool(s.thr_interrupt);
  w.write_u8(s.rx_count);
  write_array(w, s.rx_fifo);
}

Result<void> decode_state(StateReader& r, Uart16550State& s) {
  s.version = TRY(read_version(r, Uart16550State::kVersion));
  s.ier = TRY(r.read_u8("ier"));
  s.lcr = TRY(r.read_u8("lcr"));
  s.mcr = TRY(r.read_u8("mcr"));
  s.scr = TRY(r.read_u8("scr"));
  s.dll = TRY(r.read_u8("dll"));
  s.dlm = TRY(r.read_u8("dlm"));
  s.fcr = TRY(r.read_u8("fcr"));
  s.lsr_errors = TRY(r.read_u8("lsr errors"));
  s.msr_deltas = TRY(r.read_u8("msr deltas"));
  s.thr_interrupt = TRY(r.read_bool("thr interrupt"));
  s.rx_count = TRY(read_u8_at_most(r, static_cast<uint8_t>(s.rx_fifo.size()), "rx count"));
  TRY(read_array(r, s.rx_fifo, "rx fifo"));
  return ok();
}

// ---- I8042State ----

void encode_state(StateWriter& w, const I8042State& s) {
  w.write_u32(s.version);
  w.write_u8(s.command_byte);
  w.write_u8(s.output);
  w.write_bool(s.output_full);
  w.write_u8(s.pending_command);
  if (s.version < 2) return;  // as version 1 was written (a decoded old state re-encodes to its bytes)
  w.write_u8(s.keyboard_command);
  w.write_u8(s.queue_count);
  write_array(w, s.queue);
}

// Version 1 ends after the pending command (no keyboard).
Result<void> decode_state(StateReader& r, I8042State& s) {
  s.version = TRY(r.read_u32("version"));
  if (s.version < I8042State::kOldestVersion || s.version > I8042State::kVersion)
    return Error::format("state version {} is not supported (this doppel reads {} to {})",
                         s.version, I8042State::kOldestVersion, I8042State::kVersion);
  s.command_byte = TRY(r.read_u8("command byte"));
  s.output = TRY(r.read_u8("output"));
  s.output_full = TRY(r.read_bool("output full"));
  s.pending_command = TRY(r.read_u8("pending command"));
  if (s.version < 2) return ok();
  s.keyboard_command = TRY(r.read_u8("keyboard command"));
  s.queue_count = TRY(read_u8_at_most(r, static_cast<uint8_t>(s.queue.size()), "keyboard queue count"));
  TRY(read_array(r, s.queue, "keyboard queue"));
  return ok();
}

// ---- AcpiPmState ----

void encode_state(StateWriter& w, const AcpiPmState& s) {
  w.write_u32(s.version);
  w.write_u16(s.pm1_sts);
  w.write_u16(s.pm1_en);
  w.write_u16(s.pm1_cnt);
}

Result<void> decode_state(StateReader& r, AcpiPmState& s) {
  s.version = TRY(read_version(r, AcpiPmState::kVersion));
  s.pm1_sts = TRY(r.read_u16("pm1_sts"));
  s.pm1_en = TRY(r.read_u16("pm1_en"));
  s.pm1_cnt = TRY(r.read_u16("pm1_cnt"));
  return ok();
}

// ---- virtio::Virtqueue::State (inside VirtioMmioState) ----

namespace {
constexpr size_t kVirtqueueStateBytes = 2 + 1 + 3 * 8 + 2 + 2 + 1;
}

void encode_state(StateWriter& w, const virtio::Virtqueue::State& s) {
  w.write_u16(s.size);
  w.write_bool(s.ready);
  w.write_u64(s.desc);
  w.write_u64(s.driver);
  w.write_u64(s.device);
  w.write_u16(s.last_avail);
  w.write_u16(s.used_idx);
  w.write_bool(s.broken);
}

Result<void> decode_state(StateReader& r, virtio::Virtqueue::State& s) {
  s.size = TRY(r.read_u16("size"));
  s.ready = TRY(r.read_bool("ready"));
  s.desc = TRY(r.read_u64("desc"));
  s.driver = TRY(r.read_u64("driver"));
  s.device = TRY(r.read_u64("device"));
  s.last_avail = TRY(r.read_u16("last avail"));
  s.used_idx = TRY(r.read_u16("used idx"));
  s.broken = TRY(r.read_bool("broken"));
  return ok();
}

// ---- virtio::VirtioMmioState ----

void encode_state(StateWriter& w, const virtio::VirtioMmioState& s) {
  w.write_u32(s.version);
  w.write_u32(s.status);
  w.write_u32(s.device_features_sel);
  w.write_u32(s.driver_features_sel);
  w.write_u64(s.driver_features);
  w.write_u32(s.queue_sel);
  w.write_u32(s.interrupt_status);
  w.write_u32(s.config_generation);
  w.write_vector(s.queues, [](StateWriter& out, const virtio::Virtqueue::State& q) {
    encode_state(out, q);
  });
}

Result<void> decode_state(StateReader& r, virtio::VirtioMmioState& s) {
  s.version = TRY(read_version(r, virtio::VirtioMmioState::kVersion));
  s.status = TRY(r.read_u32("status"));
  s.device_features_sel = TRY(r.read_u32("device features sel"));
  s.driver_features_sel = TRY(r.read_u32("driver features sel"));
  s.driver_features = TRY(r.read_u64("driver features"));
  s.queue_sel = TRY(r.read_u32("queue sel"));
  s.interrupt_status = TRY(r.read_u32("interrupt status"));
  s.config_generation = TRY(r.read_u32("config generation"));
  auto queue = [](StateReader& in, size_t i) -> Result<virtio::Virtqueue::State> {
    virtio::Virtqueue::State q;
    if (auto d = decode_state(in, q); !d.ok())
      return d.release_error().context(fmt::format("queue {}", i));
    return q;
  };
  s.queues = TRY(r.read_vector<virtio::Virtqueue::State>("queues", kMaxStateVirtqueues,
                                                         kVirtqueueStateBytes, queue));
  return ok();
}

// ---- virtio::VirtioLimitsState ----

namespace {
constexpr size_t kBucketStateBytes = 4 * 8;

void encode_bucket(StateWriter& w, const TokenBucketState& b) {
  w.write_u64(b.config.size);
  w.write_u64(b.config.refill_time_ms);
  w.write_u64(b.config.one_time_burst);
  w.write_i64(b.budget);
}

Result<TokenBucketState> decode_bucket(StateReader& r) {
  TokenBucketState b;
  b.config.size = TRY(r.read_u64("size"));
  b.config.refill_time_ms = TRY(r.read_u64("refill_time"));
  b.config.one_time_burst = TRY(r.read_u64("one_time_burst"));
  b.budget = TRY(r.read_i64("budget"));
  // The bucket's own check (TokenBucket::restore) on a scratch clock: a decoded state is
  // one a bucket can be in.
  TRY(TokenBucket::restore(b, 0));
  return b;
}
}  // namespace

void encode_state(StateWriter& w, const virtio::VirtioLimitsState& s) {
  w.write_u32(s.version);
  w.write_vector(s.limiters, [](StateWriter& out, const RateLimiterState& l) {
    encode_bucket(out, l.bandwidth);
    encode_bucket(out, l.ops);
  });
}

Result<void> decode_state(StateReader& r, virtio::VirtioLimitsState& s) {
  s.version = TRY(read_version(r, virtio::VirtioLimitsState::kVersion));
  auto limiter = [](StateReader& in, size_t i) -> Result<RateLimiterState> {
    RateLimiterState l;
    auto bw = decode_bucket(in);
    if (!bw.ok()) return bw.release_error().context(fmt::format("limiter {}: bandwidth", i));
    l.bandwidth = bw.release_value();
    auto ops = decode_bucket(in);
    if (!ops.ok()) return ops.release_error().context(fmt::format("limiter {}: ops", i));
    l.ops = ops.release_value();
    return l;
  };
  s.limiters = TRY(r.read_vector<RateLimiterState>("limiters", kMaxStateLimiters,
                                                   2 * kBucketStateBytes, limiter));
  return ok();
}

// ---- kvm::VcpuState ----

void encode_state(StateWriter& w, const kvm::VcpuState& s) {
  w.write_u32(s.version);
  w.write_raw(s.regs);
  w.write_raw(s.sregs);
  w.write_raw(s.fpu);
  w.write_bool(s.has_xsave);
  w.write_raw(s.xsave);
  w.write_raw(s.lapic);
  w.write_raw(s.mp_state);
  w.write_raw(s.events);
  w.write_raw(s.xcrs);
  w.write_vector(s.msrs, [](StateWriter& out, const kvm_msr_entry& e) {
    out.write_u32(e.index);
    out.write_u64(e.data);
  });
}

Result<void> decode_state(StateReader& r, kvm::VcpuState& s) {
  s.version = TRY(read_version(r, kvm::VcpuState::kVersion));
  TRY(r.read_raw(s.regs, "kvm_regs"));
  TRY(r.read_raw(s.sregs, "kvm_sregs"));
  TRY(r.read_raw(s.fpu, "kvm_fpu"));
  s.has_xsave = TRY(r.read_bool("has xsave"));
  TRY(r.read_raw(s.xsave, "xsave area"));
  TRY(r.read_raw(s.lapic, "kvm_lapic_state"));
  TRY(r.read_raw(s.mp_state, "kvm_mp_state"));
  TRY(r.read_raw(s.events, "kvm_vcpu_events"));
  TRY(r.read_raw(s.xcrs, "kvm_xcrs"));
  if (s.xcrs.nr_xcrs > KVM_MAX_XCRS)
    return Error::format("kvm_xcrs: {} registers, KVM has at most {}", s.xcrs.nr_xcrs,
                         KVM_MAX_XCRS);
  auto msr = [](StateReader& in, size_t) -> Result<kvm_msr_entry> {
    kvm_msr_entry e{};
    e.index = TRY(in.read_u32("msr index"));
    e.data = TRY(in.read_u64(fmt::format("msr {:#x}", e.index)));
    return e;
  };
  s.msrs = TRY(r.read_vector<kvm_msr_entry>("msrs", kMaxStateMsrs, 4 + 8, msr));
  return ok();
}

// ---- kvm::KvmVmState ----

void encode_state(StateWriter& w, const kvm::KvmVmState& s) {
  w.write_u32(s.version);
  w.write_raw(s.pic_master);
  w.write_raw(s.pic_slave);
  w.write_raw(s.ioapic);
  w.write_bool(s.has_pit);
  w.write_raw(s.pit);
  w.write_raw(s.clock);
}

Result<void> decode_state(StateReader& r, kvm::KvmVmState& s) {
  s.version = TRY(read_version(r, kvm::KvmVmState::kVersion));
  auto chip = [&](kvm_irqchip& c, uint32_t id, const char* name) -> Result<void> {
    TRY(r.read_raw(c, name));
    if (c.chip_id != id) return Error::format("{}: chip id {}, expected {}", name, c.chip_id, id);
    return ok();
  };
  TRY(chip(s.pic_master, KVM_IRQCHIP_PIC_MASTER, "PIC master"));
  TRY(chip(s.pic_slave, KVM_IRQCHIP_PIC_SLAVE, "PIC slave"));
  TRY(chip(s.ioapic, KVM_IRQCHIP_IOAPIC, "IOAPIC"));
  s.has_pit = TRY(r.read_bool("has pit"));
  TRY(r.read_raw(s.pit, "kvm_pit_state2"));
  TRY(r.read_raw(s.clock, "kvm_clock_data"));
  return ok();
}

}  // namespace doppel
