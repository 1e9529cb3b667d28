// The state file container (vmm/state_file.h) and the codec of every saved struct
// (vmm/state_codec.h): round trips with values that are not the defaults, and each kind of
// damaged or hostile file refused with a message that says what is wrong.
#include "vmm/state_file.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "engines/emu/riscv64/test_asm.h"
#include "vmm/state_codec.h"

namespace doppel {
namespace {

bool contains(const Error& e, std::string_view what) {
  return e.message().find(what) != std::string::npos;
}

// ---- states with every field away from its default ----

rv64::HartState sample_hart() {
  rv64::HartState s;
  s.pc = 0x80200abcull;
  for (unsigned i = 1; i < 32; ++i) s.x[i] = 0x1111111111111111ull * i;
  for (unsigned i = 0; i < 32; ++i) s.f[i] = 0xffffffff00000000ull | i;
  s.priv = 1;
  s.frm = 4;
  s.fflags = 0x15;
  s.mstatus = 0xa00001822ull;  // UXL = SXL = 2, MPP = 3, SPP, SIE
  s.medeleg = 0xb1ff;
  s.mideleg = 0x222;
  s.mie = 0xaaa;
  s.mip = 0x22;
  s.mtvec = 0x80000100;
  s.mscratch = 0x1234;
  s.mepc = 0x80000200;
  s.mcause = 9;
  s.mtval = 0xdead;
  s.mcounteren = 7;
  s.menvcfg = 1;
  s.mcountinhibit = 5;
  s.stvec = 0xffffffff80001000ull;
  s.sscratch = 0x5678;
  s.sepc = 0xffffffff80002000ull;
  s.scause = 0x8000000000000005ull;
  s.stval = 0xbeef;
  s.scounteren = 3;
  s.senvcfg = 2;
  s.satp = (8ull << 60) | 0x80123;
  s.instret = 123456789;
  s.cycle_offset = -987654;
  s.instret_offset = 4242;
  for (unsigned i = 0; i < 16; ++i) {
    s.pmpcfg[i] = static_cast<uint8_t>(0x18 + i);
    s.pmpaddr[i] = 0x20000000ull + i;
  }
  return s;
}

void expect_same(const rv64::HartState& a, const rv64::HartState& b) {
  EXPECT_EQ(a.version, b.version);
  EXPECT_EQ(a.pc, b.pc);
  EXPECT_EQ(a.x, b.x);
  EXPECT_EQ(a.f, b.f);
  EXPECT_EQ(a.priv, b.priv);
  EXPECT_EQ(a.frm, b.frm);
  EXPECT_EQ(a.fflags, b.fflags);
  EXPECT_EQ(a.mstatus, b.mstatus);
  EXPECT_EQ(a.medeleg, b.medeleg);
  EXPECT_EQ(a.mideleg, b.mideleg);
  EXPECT_EQ(a.mie, b.mie);
  EXPECT_EQ(a.mip, b.mip);
  EXPECT_EQ(a.mtvec, b.mtvec);
  EXPECT_EQ(a.mscratch, b.mscratch);
  EXPECT_EQ(a.mepc, b.mepc);
  EXPECT_EQ(a.mcause, b.mcause);
  EXPECT_EQ(a.mtval, b.mtval);
  EXPECT_EQ(a.mcounteren, b.mcounteren);
  EXPECT_EQ(a.menvcfg, b.menvcfg);
  EXPECT_EQ(a.mcountinhibit, b.mcountinhibit);
  EXPECT_EQ(a.stvec, b.stvec);
  EXPECT_EQ(a.sscratch, b.sscratch);
  EXPECT_EQ(a.sepc, b.sepc);
  EXPECT_EQ(a.scause, b.scause);
  EXPECT_EQ(a.stval, b.stval);
  EXPECT_EQ(a.scounteren, b.scounteren);
  EXPECT_EQ(a.senvcfg, b.senvcfg);
  EXPECT_EQ(a.satp, b.satp);
  EXPECT_EQ(a.instret, b.instret);
  EXPECT_EQ(a.cycle_offset, b.cycle_offset);
  EXPECT_EQ(a.instret_offset, b.instret_offset);
  EXPECT_EQ(a.pmpcfg, b.pmpcfg);
  EXPECT_EQ(a.pmpaddr, b.pmpaddr);
}

rv64::ClintState sample_clint() {
  rv64::ClintState s;
  s.mtimecmp = {100, ~0ull, 0x123456789ull};
  s.msip = {0, 1, 1};
  return s;
}

rv64::PlicState sample_plic() {
  rv64::PlicState s;
  constexpr size_t kSources = 40, kContexts = 4;
  for (size_t i = 0; i < kSources; ++i) {
    s.priority.push_back(static_cast<uint32_t>(i % 8));
    s.level.push_back(static_cast<uint8_t>(i % 2));
    s.pending.push_back(static_cast<uint8_t>((i / 2) % 2));
    s.claimed.push_back(static_cast<uint8_t>(i == 7));
  }
  for (size_t i = 0; i < kContexts * 2; ++i) s.enable.push_back(0x80000001u + static_cast<uint32_t>(i));
  s.threshold = {0, 1, 7, 3};
  return s;
}

Uart16550State sample_uart() {
  Uart16550State s;
  s.ier = 0x0f;
  s.lcr = 0x03;
  s.mcr = 0x0b;
  s.scr = 0x5a;
  s.dll = 0x01;
  s.dlm = 0x02;
  s.fcr = 0xc1;
  s.lsr_errors = 0x02;
  s.msr_deltas = 0x01;
  s.thr_interrupt = true;
  s.rx_count = 3;
  s.rx_fifo = {'a', 'b', 'c', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9};
  return s;
}

I8042State sample_i8042() {
  I8042State s;
  s.command_byte = 0x47;
  s.output = 0x55;
  s.output_full = true;
  s.pending_command = 0x60;
  s.keyboard_command = 0xed;
  s.queue_count = 3;
  s.queue = {0xe0, 0xf0, 0x71, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
  return s;
}

AcpiPmState sample_acpi() {
  AcpiPmState s;
  s.pm1_sts = 0x8001;
  s.pm1_en = 0x0100;
  s.pm1_cnt = 0x1400;
  return s;
}

virtio::VirtioMmioState sample_virtio() {
  virtio::VirtioMmioState s;
  s.status = 0xf;
  s.device_features_sel = 1;
  s.driver_features_sel = 1;
  s.driver_features = (1ull << 32) | (1ull << 29);
  s.queue_sel = 1;
  s.interrupt_status = 1;
  s.config_generation = 3;
  s.queues.push_back({256, true, 0x80100000, 0x80101000, 0x80102000, 17, 16, false});
  s.queues.push_back({128, false, 0x1, 0x2, 0x3, 65535, 1, true});
  return s;
}

void expect_same(const virtio::VirtioMmioState& a, const virtio::VirtioMmioState& b) {
  EXPECT_EQ(a.version, b.version);
  EXPECT_EQ(a.status, b.status);
  EXPECT_EQ(a.device_features_sel, b.device_features_sel);
  EXPECT_EQ(a.driver_features_sel, b.driver_features_sel);
  EXPECT_EQ(a.driver_features, b.driver_features);
  EXPECT_EQ(a.queue_sel, b.queue_sel);
  EXPECT_EQ(a.interrupt_status, b.interrupt_status);
  EXPECT_EQ(a.config_generation, b.config_generation);
  ASSERT_EQ(a.queues.size(), b.queues.size());
  for (size_t i = 0; i < a.queues.size(); ++i) {
    const auto& p = a.queues[i];
    const auto& q = b.queues[i];
    EXPECT_EQ(p.size, q.size);
    EXPECT_EQ(p.ready, q.ready);
    EXPECT_EQ(p.desc, q.desc);
    EXPECT_EQ(p.driver, q.driver);
    EXPECT_EQ(p.device, q.device);
    EXPECT_EQ(p.last_avail, q.last_avail);
    EXPECT_EQ(p.used_idx, q.used_idx);
    EXPECT_EQ(p.broken, q.broken);
  }
}

template <typename T>
void fill(T& v, uint8_t seed) {
  auto* b = reinterpret_cast<uint8_t*>(&v);
  for (size_t i = 0; i < sizeof(T); ++i) b[i] = static_cast<uint8_t>(seed + i * 7);
}
template <typename T>
bool same_bytes(const T& a, const T& b) {
  return std::memcmp(&a, &b, sizeof(T)) == 0;
}

kvm::VcpuState sample_vcpu() {
  kvm::VcpuState s;
  fill(s.regs, 1);
  fill(s.sregs, 2);
  fill(s.fpu, 3);
  s.has_xsave = true;
  fill(s.xsave, 4);
  fill(s.lapic, 5);
  fill(s.mp_state, 6);
  fill(s.events, 7);
  fill(s.xcrs, 8);
  s.xcrs.nr_xcrs = 1;
  for (uint32_t index : {0x10u, 0x6e0u, 0xc0000082u}) {
    kvm_msr_entry e{};
    e.index = index;
    e.data = 0x1000000000ull + index;
    s.msrs.push_back(e);
  }
  return s;
}

kvm::KvmVmState sample_kvm_vm() {
  kvm::KvmVmState s;
  fill(s.pic_master, 11);
  fill(s.pic_slave, 12);
  fill(s.ioapic, 13);
  s.pic_master.chip_id = KVM_IRQCHIP_PIC_MASTER;
  s.pic_slave.chip_id = KVM_IRQCHIP_PIC_SLAVE;
  s.ioapic.chip_id = KVM_IRQCHIP_IOAPIC;
  s.has_pit = true;
  fill(s.pit, 14);
  fill(s.clock, 15);
  return s;
}

template <typename T>
std::vector<uint8_t> encoded(const T& state) {
  StateWriter w;
  encode_state(w, state);
  return w.take();
}

StateFile sample_file() {
  StateFile f;
  f.arch = Arch::kX86_64;
  f.engine = EngineKind::kKvm;
  f.sections = {make_section("hart 0", sample_hart()),    make_section("clint", sample_clint()),
                make_section("plic", sample_plic()),       make_section("uart", sample_uart()),
                make_section("i8042", sample_i8042()),     make_section("acpi_pm", sample_acpi()),
                make_section("virtio-mmio 0", sample_virtio()),
                make_section("kvm vcpu 0", sample_vcpu()), make_section("kvm vm", sample_kvm_vm())};
  return f;
}

std::vector<uint8_t> sample_bytes() {
  auto bytes = encode_state_file(sample_file());
  EXPECT_TRUE(bytes.ok());
  return bytes.ok() ? bytes.release_value() : std::vector<uint8_t>{};
}

// A file around `body` with a correct header (so that the body's own checks are reached).
std::vector<uint8_t> file_with_body(const std::vector<uint8_t>& body, uint32_t arch = 1,
                                    uint32_t engine = 1) {
  StateWriter w;
  w.write_bytes({reinterpret_cast<const uint8_t*>(kStateFileMagic), 8});
  w.write_u32(kStateFileFormatVersion);
  w.write_u32(arch);
  w.write_u32(engine);
  w.write_u64(body.size());
  w.write_u32(crc32(body));
  w.write_bytes(body);
  return w.take();
}

class StateFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/doppel-state-test.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir); }
  std::string path(const std::string& name) const { return dir + "/" + name; }
  void write_bytes(const std::string& p, const std::vector<uint8_t>& bytes) const {
    std::ofstream out(p, std::ios::binary);
    out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  }

  std::string dir;
};

// ---- round trips ----

TEST_F(StateFileTest, EveryStructRoundTripsThroughAFileOnDisk) {
  const std::string p = path("state");
  ASSERT_TRUE(write_state_file(p, sample_file()).ok());
  EXPECT_FALSE(std::filesystem::exists(p + ".tmp"));
  struct stat st {};
  ASSERT_EQ(stat(p.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u) << "state files hold guest registers";

  auto file = read_state_file(p, Arch::kX86_64, EngineKind::kKvm);
  ASSERT_TRUE(file.ok()) << file.error().message();
  EXPECT_EQ(file->arch, Arch::kX86_64);
  EXPECT_EQ(file->engine, EngineKind::kKvm);
  ASSERT_EQ(file->sections.size(), 9u);
  EXPECT_EQ(file->sections[0].name, "hart 0");
  EXPECT_EQ(file->sections[0].version, rv64::HartState::kVersion);

  auto hart = read_section<rv64::HartState>(*file, "hart 0");
  ASSERT_TRUE(hart.ok()) << hart.error().message();
  expect_same(*hart, sample_hart());

  auto clint = read_section<rv64::ClintState>(*file, "clint");
  ASSERT_TRUE(clint.ok()) << clint.error().message();
  EXPECT_EQ(clint->mtimecmp, sample_clint().mtimecmp);
  EXPECT_EQ(clint->msip, sample_clint().msip);

  auto plic = read_section<rv64::PlicState>(*file, "plic");
  ASSERT_TRUE(plic.ok()) << plic.error().message();
  const auto want_plic = sample_plic();
  EXPECT_EQ(plic->priority, want_plic.priority);
  EXPECT_EQ(plic->level, want_plic.level);
  EXPECT_EQ(plic->pending, want_plic.pending);
  EXPECT_EQ(plic->claimed, want_plic.claimed);
  EXPECT_EQ(plic->enable, want_plic.enable);
  EXPECT_EQ(plic->threshold, want_plic.threshold);

  auto uart = read_section<Uart16550State>(*file, "uart");
  ASSERT_TRUE(uart.ok()) << uart.error().message();
  const auto u = sample_uart();
  EXPECT_EQ(uart->ier, u.ier);
  EXPECT_EQ(uart->lcr, u.lcr);
  EXPECT_EQ(uart->mcr, u.mcr);
  EXPECT_EQ(uart->scr, u.scr);
  EXPECT_EQ(uart->dll, u.dll);
  EXPECT_EQ(uart->dlm, u.dlm);
  EXPECT_EQ(uart->fcr, u.fcr);
  EXPECT_EQ(uart->lsr_errors, u.lsr_errors);
  EXPECT_EQ(uart->msr_deltas, u.msr_deltas);
  EXPECT_EQ(uart->thr_interrupt, u.thr_interrupt);
  EXPECT_EQ(uart->rx_count, u.rx_count);
  EXPECT_EQ(uart->rx_fifo, u.rx_fifo);

  auto i8042 = read_section<I8042State>(*file, "i8042");
  ASSERT_TRUE(i8042.ok()) << i8042.error().message();
  EXPECT_EQ(i8042->command_byte, 0x47);
  EXPECT_EQ(i8042->output, 0x55);
  EXPECT_TRUE(i8042->output_full);
  EXPECT_EQ(i8042->pending_command, 0x60);
  EXPECT_EQ(i8042->keyboard_command, 0xed);
  EXPECT_EQ(i8042->queue_count, 3);
  EXPECT_EQ(i8042->queue, sample_i8042().queue);

  auto acpi = read_section<AcpiPmState>(*file, "acpi_pm");
  ASSERT_TRUE(acpi.ok()) << acpi.error().message();
  EXPECT_EQ(acpi->pm1_sts, 0x8001);
  EXPECT_EQ(acpi->pm1_en, 0x0100);
  EXPECT_EQ(acpi->pm1_cnt, 0x1400);

  auto virtio = read_section<virtio::VirtioMmioState>(*file, "virtio-mmio 0");
  ASSERT_TRUE(virtio.ok()) << virtio.error().message();
  expect_same(*virtio, sample_virtio());

  auto vcpu = read_section<kvm::VcpuState>(*file, "kvm vcpu 0");
  ASSERT_TRUE(vcpu.ok()) << vcpu.error().message();
  const auto v = sample_vcpu();
  EXPECT_TRUE(same_bytes(vcpu->regs, v.regs));
  EXPECT_TRUE(same_bytes(vcpu->sregs, v.sregs));
  EXPECT_TRUE(same_bytes(vcpu->fpu, v.fpu));
  EXPECT_TRUE(vcpu->has_xsave);
  EXPECT_TRUE(same_bytes(vcpu->xsave, v.xsave));
  EXPECT_TRUE(same_bytes(vcpu->lapic, v.lapic));
  EXPECT_TRUE(same_bytes(vcpu->mp_state, v.mp_state));
  EXPECT_TRUE(same_bytes(vcpu->events, v.events));
  EXPECT_TRUE(same_bytes(vcpu->xcrs, v.xcrs));
  ASSERT_EQ(vcpu->msrs.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(vcpu->msrs[i].index, v.msrs[i].index);
    EXPECT_EQ(vcpu->msrs[i].data, v.msrs[i].data);
  }

  auto vm = read_section<kvm::KvmVmState>(*file, "kvm vm");
  ASSERT_TRUE(vm.ok()) << vm.error().message();
  const auto k = sample_kvm_vm();
  EXPECT_TRUE(same_bytes(vm->pic_master, k.pic_master));
  EXPECT_TRUE(same_bytes(vm->pic_slave, k.pic_slave));
  EXPECT_TRUE(same_bytes(vm->ioapic, k.ioapic));
  EXPECT_TRUE(vm->has_pit);
  EXPECT_TRUE(same_bytes(vm->pit, k.pit));
  EXPECT_TRUE(same_bytes(vm->clock, k.clock));
}

TEST_F(StateFileTest, ParsingThenEncodingGivesTheSameBytes) {
  const auto bytes = sample_bytes();
  auto file = parse_state_file(bytes);
  ASSERT_TRUE(file.ok()) << file.error().message();
  auto again = encode_state_file(*file);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, bytes);
  for (const auto& s : file->sections) EXPECT_FALSE(s.data.empty()) << s.name;
}

TEST_F(StateFileTest, AnEmptyFileHasNoSections) {
  StateFile empty;
  auto bytes = encode_state_file(empty);
  ASSERT_TRUE(bytes.ok());
  EXPECT_EQ(bytes->size(), kStateFileHeaderSize + 4);
  auto file = parse_state_file(*bytes);
  ASSERT_TRUE(file.ok()) << file.error().message();
  EXPECT_TRUE(file->sections.empty());
  EXPECT_EQ(file->find("hart 0"), nullptr);
  auto missing = read_section<rv64::HartState>(*file, "hart 0");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().message(), "hart 0: no such section in the state file");
}

// A running hart's state through a file: mcycle and minstret continue where they were, and
// no LR reservation comes back.
class HartStateFileTest : public rv64::testasm::HartFixture {};

TEST_F(HartStateFileTest, CountersContinueAndNoReservationSurvives) {
  using namespace rv64::testasm;
  constexpr uint16_t kMcycle = 0xb00, kMinstret = 0xb02;
  const uint64_t data = kRamBase + 0x1000;
  load({LR_W(a0, a1), SC_W(a2, a3, a1)});
  hart->set_x(a1, data);
  ASSERT_TRUE(hart->write_csr(kMcycle, 1'000'000));
  ASSERT_TRUE(hart->write_csr(kMinstret, 5000));
  hart->step(1);  // the LR
  const uint64_t mcycle = csr(kMcycle), minstret = csr(kMinstret);
  EXPECT_EQ(mcycle, 1'000'001u);
  EXPECT_EQ(minstret, 5001u);

  StateFile file;
  file.sections.push_back(make_section("hart 0", hart->save()));
  auto bytes = encode_state_file(file);
  ASSERT_TRUE(bytes.ok());
  auto parsed = parse_state_file(*bytes);
  ASSERT_TRUE(parsed.ok()) << parsed.error().message();
  auto state = read_section<rv64::HartState>(*parsed, "hart 0");
  ASSERT_TRUE(state.ok()) << state.error().message();

  rv64::Hart other(*memory, bus, timebase, 0);
  ASSERT_TRUE(other.restore(*state).ok());
  EXPECT_EQ(other.read_csr(kMcycle), mcycle);
  EXPECT_EQ(other.read_csr(kMinstret), minstret);
  EXPECT_EQ(other.read_csr(kCycle), mcycle);
  EXPECT_EQ(other.read_csr(kInstret), minstret);
  EXPECT_EQ(other.pc(), kRamBase + 4);

  // Without a restore the SC succeeds (a2 = 0); restoring the state taken after the LR
  // leaves no reservation, so it fails (a2 = 1).
  rv64::Hart control(*memory, bus, timebase, 0);
  ASSERT_TRUE(control.restore(*state).ok());
  control.set_pc(kRamBase);
  control.step(2);
  EXPECT_EQ(control.x(a2), 0u) << "LR then SC on one hart must succeed";
  ASSERT_TRUE(hart->restore(*state).ok());
  hart->step(1);
  EXPECT_EQ(hart->x(a2), 1u) << "the SC after a restore must fail";
}

// ---- what parse_state_file() refuses ----

TEST_F(StateFileTest, EveryTruncationIsRefused) {
  const auto bytes = sample_bytes();
  for (size_t n = 0; n < bytes.size(); ++n) {
    auto file = parse_state_file(std::span(bytes).first(n));
    ASSERT_FALSE(file.ok()) << n << " of " << bytes.size() << " bytes parsed";
    EXPECT_TRUE(contains(file.error(), "truncated")) << n << ": " << file.error().message();
  }
  auto short_header = parse_state_file(std::span(bytes).first(10));
  EXPECT_EQ(short_header.error().message(), "truncated: 10 bytes, the header alone takes 32");
}

TEST_F(StateFileTest, EverySingleBitFlipIsRefused) {
  auto bytes = sample_bytes();
  for (size_t i = 0; i < bytes.size(); ++i) {
    // Every bit of the header; in the body one per byte, a different one each time (the
    // CRC catches any single-bit error there, so all of them would only take longer).
    const unsigned first = i < kStateFileHeaderSize ? 0 : static_cast<unsigned>(i % 8);
    const unsigned last = i < kStateFileHeaderSize ? 7 : first;
    for (unsigned bit = first; bit <= last; ++bit) {
      bytes[i] ^= static_cast<uint8_t>(1u << bit);
      EXPECT_FALSE(parse_state_file(bytes).ok()) << "bit " << bit << " of byte " << i;
      bytes[i] ^= static_cast<uint8_t>(1u << bit);
    }
  }
  ASSERT_TRUE(parse_state_file(bytes).ok());
  bytes[kStateFileHeaderSize + 40] ^= 0x10;
  auto r = parse_state_file(bytes);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(contains(r.error(), "corrupt: the body's CRC-32 is")) << r.error().message();
}

TEST_F(StateFileTest, WrongMagicVersionArchAndEngineAreNamed) {
  const auto good = sample_bytes();
  auto bytes = good;
  std::memcpy(bytes.data(), "\x7f" "ELF\x02\x01\x01\x00", 8);
  auto r = parse_state_file(bytes);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message(),
            "not a doppel VM state file (magic '\\x7fELF\\x02\\x01\\x01\\x00', expected 'DOPPELVM')");

  bytes = good;
  bytes[8] = 2;
  r = parse_state_file(bytes);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message(), "format version 2 is not supported (this doppel reads version 1)");

  bytes = good;
  bytes[12] = 9;
  r = parse_state_file(bytes);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message(), "unknown arch code 9 in the header");

  bytes = good;
  bytes[16] = 0;
  r = parse_state_file(bytes);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message(), "unknown engine code 0 in the header");
}

TEST_F(StateFileTest, AnotherArchOrEngineIsRefusedNamingBoth) {
  const std::string p = path("snap-state");
  StateFile riscv;
  riscv.arch = Arch::kRiscv64;
  riscv.engine = EngineKind::kEmu;
  ASSERT_TRUE(write_state_file(p, riscv).ok());
  auto r = read_state_file(p, Arch::kX86_64, std::nullopt);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message(), p + ": a riscv64 snapshot; this VM is x86_64");
  r = read_state_file(p, Arch::kRiscv64, EngineKind::kKvm);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message(), p + ": a snapshot of the emu engine; this VM uses kvm");
  EXPECT_TRUE(read_state_file(p, Arch::kRiscv64, EngineKind::kEmu).ok());
  EXPECT_TRUE(read_state_file(p, std::nullopt, std::nullopt).ok());
}

TEST_F(StateFileTest, TrailingGarbageIsRefused) {
  auto bytes = sample_bytes();
  bytes.push_back(0);
  auto r = parse_state_file(bytes);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(contains(r.error(), "1 bytes of trailing garbage after the")) << r.error().message();

  // Inside the body, after the last section, with a CRC that covers it.
  StateWriter body;
  body.write_u32(0);
  body.write_u8(0xaa);
  r = parse_state_file(file_with_body(body.data()));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message(), "body after the last section: 1 bytes left over at byte 36");
}

TEST_F(StateFileTest, HostileLengthsAreRefusedWithoutAllocating) {
  {  // 2^32 - 1 sections in a 4-byte body
    StateWriter body;
    body.write_u32(0xffffffff);
    auto r = parse_state_file(file_with_body(body.data()));
    ASSERT_FALSE(r.ok());
    EXPECT_TRUE(contains(r.error(), "section count: 4294967295 entries at byte 32 exceed the limit"))
        << r.error().message();
  }
  {  // 4000 sections promised, bytes for none
    StateWriter body;
    body.write_u32(4000);
    auto r = parse_state_file(file_with_body(body.data()));
    ASSERT_FALSE(r.ok());
    EXPECT_TRUE(contains(r.error(), "need at least")) << r.error().message();
  }
  {  // a 4 GiB section name
    StateWriter body;
    body.write_u32(1);
    body.write_u32(0xffffffff);
    body.write_bytes(std::vector<uint8_t>(13, 'a'));
    auto r = parse_state_file(file_with_body(body.data()));
    ASSERT_FALSE(r.ok());
    EXPECT_TRUE(contains(r.error(), "section 0: name: length 4294967295 at byte 36 exceeds the limit of 64"))
        << r.error().message();
  }
  {  // section data of 2^63 bytes
    StateWriter body;
    body.write_u32(1);
    body.write_string("hart 0");
    body.write_u32(2);
    body.write_u64(1ull << 63);
    body.write_bytes(std::vector<uint8_t>(16, 0));
    auto r = parse_state_file(file_with_body(body.data()));
    ASSERT_FALSE(r.ok());
    EXPECT_TRUE(contains(r.error(), "section 'hart 0': data: length 9223372036854775808"))
        << r.error().message();
  }
  {  // a header promising an exabyte body
    auto bytes = sample_bytes();
    for (int i = 0; i < 8; ++i) bytes[20 + i] = 0xff;
    auto r = parse_state_file(bytes);
    ASSERT_FALSE(r.ok());
    EXPECT_TRUE(contains(r.error(), "truncated: the header promises a 18446744073709551615-byte body"))
        << r.error().message();
  }
}

TEST_F(StateFileTest, DuplicateAndUnprintableSectionNamesAreRefused) {
  StateFile dup;
  dup.sections = {make_section("uart", sample_uart()), make_section("clint", sample_clint()),
                  make_section("uart", sample_uart())};
  auto e = encode_state_file(dup);
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(e.error().message(), "section 'uart' appears twice (sections 0 and 2)");
  EXPECT_FALSE(write_state_file(path("dup"), dup).ok());
  EXPECT_FALSE(std::filesystem::exists(path("dup")));
  EXPECT_FALSE(std::filesystem::exists(path("dup.tmp")));

  // The same in a file written by someone else.
  StateWriter body;
  body.write_u32(2);
  for (int i = 0; i < 2; ++i) {
    body.write_string("uart");
    body.write_u32(1);
    body.write_blob({});
  }
  auto r = parse_state_file(file_with_body(body.data()));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message(), "section 'uart' appears twice (sections 0 and 1)");

  StateWriter bad_name;
  bad_name.write_u32(1);
  bad_name.write_string(std::string("ua\nrt", 5));
  bad_name.write_u32(1);
  bad_name.write_blob({});
  r = parse_state_file(file_with_body(bad_name.data()));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message(),
            "section 0: name 'ua\\x0art' is not 1 to 64 printable ASCII characters");
  StateFile empty_name;
  empty_name.sections.push_back({"", 1, {}});
  EXPECT_FALSE(encode_state_file(empty_name).ok());
}

// ---- what decoding a section refuses ----

TEST_F(StateFileTest, SectionTruncationNamesSectionFieldAndOffset) {
  const auto section = make_section("hart 1", sample_hart());
  for (size_t n = 0; n < section.data.size(); ++n) {
    StateSection cut = section;
    cut.data.resize(n);
    auto r = decode_section<rv64::HartState>(cut);
    ASSERT_FALSE(r.ok()) << n;
    EXPECT_TRUE(contains(r.error(), "hart 1: ")) << r.error().message();
    EXPECT_TRUE(contains(r.error(), "truncated at byte")) << r.error().message();
  }
  StateSection cut = section;
  cut.data.resize(8);
  EXPECT_EQ(decode_section<rv64::HartState>(cut).error().message(),
            "hart 1: pc: truncated at byte 4 (8 bytes needed, 4 left)");

  StateSection longer = section;
  longer.data.push_back(0);
  EXPECT_EQ(decode_section<rv64::HartState>(longer).error().message(),
            "hart 1: after the state: 1 bytes left over at byte " +
                std::to_string(section.data.size()));
}

TEST_F(StateFileTest, UnknownStructVersionsAreRefused) {
  auto section = make_section("uart", sample_uart());
  section.version = 7;
  EXPECT_EQ(decode_section<Uart16550State>(section).error().message(),
            "uart: section version 7 is not supported (this doppel reads 1)");
  // A version-1 hart (without the counter offsets) is not read as version 2.
  rv64::HartState old = sample_hart();
  old.version = 1;
  auto hart = make_section("hart 0", old);
  EXPECT_EQ(hart.version, 1u);
  EXPECT_FALSE(decode_section<rv64::HartState>(hart).ok());
  hart.version = rv64::HartState::kVersion;  // the section says 2, the struct inside 1
  EXPECT_EQ(decode_section<rv64::HartState>(hart).error().message(),
            "hart 0: state version 1 is not supported (this doppel reads 2)");
}

// i8042 version 1 (before the keyboard) still restores: no keyboard command, nothing queued.
TEST_F(StateFileTest, I8042Version1SectionsStillDecode) {
  const StateSection v1{"x86.i8042", 1, {1, 0, 0, 0, 0x45, 0x55, 1, 0x60}};
  auto s = decode_section<I8042State>(v1);
  ASSERT_TRUE(s.ok()) << s.error().message();
  EXPECT_EQ(s->version, 1u);
  EXPECT_EQ(s->command_byte, 0x45);
  EXPECT_EQ(s->output, 0x55);
  EXPECT_TRUE(s->output_full);
  EXPECT_EQ(s->pending_command, 0x60);
  EXPECT_EQ(s->queue_count, 0);
  // Encoded again, it is the same version-1 bytes (the encodings stay canonical).
  EXPECT_EQ(make_section("x86.i8042", *s).data, v1.data);
  // The section's version and its data's must agree.
  StateSection mixed = v1;
  mixed.version = 2;
  EXPECT_FALSE(decode_section<I8042State>(mixed).ok());
  StateSection future = make_section("x86.i8042", sample_i8042());
  future.version = 3;
  EXPECT_EQ(decode_section<I8042State>(future).error().message(),
            "x86.i8042: section version 3 is not supported (this doppel reads 1 to 2)");
}

template <typename T>
Error decode_error(const T& state) {
  auto r = decode_section<T>(make_section("s", state));
  EXPECT_FALSE(r.ok());
  return r.ok() ? Error("") : r.release_error();
}

TEST_F(StateFileTest, ImpossibleValuesAreRefused) {
  auto hart = sample_hart();
  hart.priv = 2;
  EXPECT_EQ(decode_error(hart).message(), "s: priv: 2 is not a privilege level (0 U, 1 S, 3 M)");
  hart = sample_hart();
  hart.frm = 8;
  EXPECT_EQ(decode_error(hart).message(), "s: frm: 8 is more than 7");
  hart = sample_hart();
  hart.fflags = 0x20;
  EXPECT_EQ(decode_error(hart).message(), "s: fflags: 32 is more than 31");
  hart = sample_hart();
  hart.x[0] = 1;
  EXPECT_TRUE(contains(decode_error(hart), "x0 is 0x1"));
  hart = sample_hart();
  hart.mstatus = 2ull << 11;
  EXPECT_TRUE(contains(decode_error(hart), "MPP is 2"));

  auto clint = sample_clint();
  clint.msip.push_back(0);
  EXPECT_TRUE(contains(decode_error(clint), "4 msip entries for 3 mtimecmp entries"));
  clint = sample_clint();
  clint.msip[1] = 3;
  EXPECT_EQ(decode_error(clint).message(), "s: msip[1]: 3 is more than 1");
  clint = sample_clint();
  clint.mtimecmp.assign(kMaxStateHarts + 1, 0);
  clint.msip.assign(kMaxStateHarts + 1, 0);
  EXPECT_TRUE(contains(decode_error(clint), "mtimecmp: 1025 entries at byte 4 exceed the limit of 1024"));

  auto plic = sample_plic();
  plic.priority[3] = 8;
  EXPECT_EQ(decode_error(plic).message(), "s: priority[3]: 8 is more than 7");
  plic = sample_plic();
  plic.pending.pop_back();
  EXPECT_EQ(decode_error(plic).message(), "s: pending: 39 entries for 40 sources");
  plic = sample_plic();
  plic.level[0] = 2;
  EXPECT_EQ(decode_error(plic).message(), "s: level[0]: 2 is more than 1");
  plic = sample_plic();
  plic.enable.pop_back();
  EXPECT_TRUE(contains(decode_error(plic), "enable: 7 words for 4 contexts of 40 sources"));
  plic = sample_plic();
  plic.priority.assign(kMaxStatePlicSources + 1, 0);
  EXPECT_TRUE(contains(decode_error(plic), "exceed the limit of 1024"));

  auto uart = sample_uart();
  uart.rx_count = 17;
  EXPECT_EQ(decode_error(uart).message(), "s: rx count: 17 is more than 16");
  auto kbd = sample_i8042();
  kbd.queue_count = 16;
  EXPECT_EQ(decode_error(kbd).message(), "s: keyboard queue count: 16 is more than 15");

  // Booleans are bytes 0 or 1: patch one in an encoding.
  auto section = make_section("i8042", sample_i8042());
  section.data[4 + 2] = 7;  // version, command byte, output, then output_full
  EXPECT_TRUE(contains(decode_section<I8042State>(section).error(),
                       "i8042: output full: 7 at byte 6 is not a boolean"));

  auto virtio = sample_virtio();
  virtio.queues.resize(kMaxStateVirtqueues + 1);
  EXPECT_TRUE(contains(decode_error(virtio), "queues: 1025 entries"));
  auto vsection = make_section("virtio-mmio 2", sample_virtio());
  vsection.data.back() = 5;  // queue 1's broken flag
  EXPECT_TRUE(contains(decode_section<virtio::VirtioMmioState>(vsection).error(),
                       "virtio-mmio 2: queue 1: broken: 5"));

  auto vcpu = sample_vcpu();
  vcpu.xcrs.nr_xcrs = 17;
  EXPECT_TRUE(contains(decode_error(vcpu), "kvm_xcrs: 17 registers"));
  vcpu = sample_vcpu();
  vcpu.msrs.resize(kMaxStateMsrs + 1);
  EXPECT_TRUE(contains(decode_error(vcpu), "msrs: 4097 entries"));

  auto vm = sample_kvm_vm();
  vm.ioapic.chip_id = 0;
  EXPECT_EQ(decode_error(vm).message(), "s: IOAPIC: chip id 0, expected 2");

  // A raw KVM struct of another size (another kernel's layout).
  auto kvm_section = make_section("kvm vm", sample_kvm_vm());
  kvm_section.data[4] = 0x10;  // the PIC master's recorded size, low byte
  EXPECT_TRUE(contains(decode_section<kvm::KvmVmState>(kvm_section).error(),
                       "kvm vm: PIC master: 528 bytes at byte 4, expected 520"));
}

// ---- write_state_file() and read_state_file() on disk ----

TEST_F(StateFileTest, AFailedWriteLeavesNothingBehind) {
  // The target is a directory: the rename fails after the temporary file was written.
  const std::string p = path("target");
  std::filesystem::create_directory(p);
  auto r = write_state_file(p, sample_file());
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(contains(r.error(), p)) << r.error().message();
  EXPECT_FALSE(std::filesystem::exists(p + ".tmp"));
  EXPECT_TRUE(std::filesystem::is_directory(p));

  // A directory that does not exist.
  const std::string nowhere = path("no/such/dir/state");
  r = write_state_file(nowhere, sample_file());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message(), nowhere + ".tmp: No such file or directory");

  // Over an existing file: replaced whole.
  const std::string existing = path("state");
  write_bytes(existing, {1, 2, 3});
  ASSERT_TRUE(write_state_file(existing, sample_file()).ok());
  EXPECT_TRUE(read_state_file(existing, std::nullopt, std::nullopt).ok());
}

TEST_F(StateFileTest, ReadErrorsNameThePath) {
  auto r = read_state_file(path("missing"), std::nullopt, std::nullopt);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message(), path("missing") + ": No such file or directory");

  r = read_state_file(dir, std::nullopt, std::nullopt);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message(), dir + ": not a regular file");

  const std::string junk = path("junk");
  write_bytes(junk, std::vector<uint8_t>(100, 'x'));
  r = read_state_file(junk, std::nullopt, std::nullopt);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message(),
            junk + ": not a doppel VM state file (magic 'xxxxxxxx', expected 'DOPPELVM')");

  auto cut = sample_bytes();
  cut.resize(cut.size() - 1);
  write_bytes(junk, cut);
  r = read_state_file(junk, std::nullopt, std::nullopt);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(contains(r.error(), junk + ": truncated: the header promises")) << r.error().message();
}

TEST_F(StateFileTest, RateLimiterStatesRoundTripAndImpossibleOnesAreRefused) {
  virtio::VirtioLimitsState limits;
  limits.limiters.push_back({{{2'000'000, 200, 0}, -123456}, {{20, 100, 5}, 7}});
  limits.limiters.push_back({});
  auto section = make_section("virtio.3.limits", limits);
  auto back = decode_section<virtio::VirtioLimitsState>(section);
  ASSERT_TRUE(back.ok()) << back.error().message();
  EXPECT_EQ(back->limiters, limits.limiters);

  limits.limiters[0].ops.budget = 21;
  EXPECT_EQ(decode_error(limits).message(), "s: limiter 0: ops: budget: 21 is more than the size 20");
  limits.limiters.assign(kMaxStateLimiters + 1, {});
  EXPECT_TRUE(contains(decode_error(limits), "limiters: 17 entries"));
}

}  // namespace
}  // namespace doppel
