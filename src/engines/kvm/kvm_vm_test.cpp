// The KVM engine on the host's /dev/kvm with tiny real-mode guests (tests/guests/*.S).
#include "engines/kvm/kvm_vm.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <optional>

#include <chrono>
#include <thread>

#include "../../../tests/guests/test_guests.h"
#include "engines/kvm/cpuid.h"
#include "engines/kvm/kvm_abi.h"
#include "engines/kvm/kvm_vcpu.h"
#include "engines/kvm/msr.h"

namespace doppel::kvm {
namespace {

using Reason = VcpuExit::Reason;

#define SKIP_WITHOUT_KVM()                                                         \
  do {                                                                             \
    if (access("/dev/kvm", R_OK | W_OK) != 0)                                      \
      GTEST_SKIP() << "/dev/kvm is not available here: KVM engine test skipped";   \
  } while (0)

struct Fixture {
  std::unique_ptr<GuestMemory> memory;
  std::unique_ptr<KvmVm> vm;
  std::unique_ptr<Vcpu> vcpu;
};

// A VM with 64 KiB of RAM holding `code` at its load address, entered in real mode.
template <size_t N>
Fixture real_mode_vm(const uint8_t (&code)[N], uint64_t load) {
  Fixture f;
  auto mem = GuestMemory::create({{0, 64 * KiB}});
  EXPECT_TRUE(mem.ok()) << mem.error().message();
  if (!mem.ok()) return f;
  f.memory = mem.release_value();
  EXPECT_TRUE(f.memory->write(load, std::span<const uint8_t>(code, N)));
  auto vm = KvmVm::create(*f.memory, {.cpus = 1});
  EXPECT_TRUE(vm.ok()) << vm.error().message();
  if (!vm.ok()) return f;
  f.vm = vm.release_value();
  f.vm->set_boot_entry({.mode = X86EntryState::Mode::kReal, .rip = load, .rsp = 0x8000});
  auto vcpu = f.vm->create_vcpu(0);
  EXPECT_TRUE(vcpu.ok()) << vcpu.error().message();
  if (vcpu.ok()) f.vcpu = vcpu.release_value();
  return f;
}

VcpuExit run(Vcpu& vcpu) {
  auto exit = vcpu.run();
  EXPECT_TRUE(exit.ok()) << exit.error().message();
  return exit.ok() ? exit.value() : VcpuExit{};
}

TEST(KvmVm, RealModePortAndMmioExitsThenTripleFault) {
  SKIP_WITHOUT_KVM();
  auto f = real_mode_vm(test_guests::kRealModeIo, test_guests::kRealModeIoLoad);
  ASSERT_TRUE(f.vcpu);
  Vcpu& v = *f.vcpu;

  auto e = run(v);
  EXPECT_EQ(e.reason, Reason::kPioWrite);
  EXPECT_EQ(e.addr, 0x10u);
  EXPECT_EQ(e.size, 1u);
  EXPECT_EQ(e.data, 0x41u);

  e = run(v);
  ASSERT_EQ(e.reason, Reason::kPioRead);
  EXPECT_EQ(e.addr, 0x11u);
  v.set_io_result(0x5a);
  e = run(v);
  EXPECT_EQ(e.reason, Reason::kPioWrite);
  EXPECT_EQ(e.addr, 0x12u);
  EXPECT_EQ(e.data, 0x5bu) << "the guest must see the value the VMM answered";

  e = run(v);
  EXPECT_EQ(e.addr, 0x13u);
  EXPECT_EQ(e.size, 2u);
  EXPECT_EQ(e.data, 0x1234u);

  std::string rep;
  for (int i = 0; i < 3; ++i) {
    e = run(v);
    ASSERT_EQ(e.reason, Reason::kPioWrite);
    EXPECT_EQ(e.addr, 0x14u);
    rep += static_cast<char>(e.data);
  }
  EXPECT_EQ(rep, "dop") << "rep outsb is handed out one element per exit";

  e = run(v);
  EXPECT_EQ(e.reason, Reason::kMmioWrite);
  EXPECT_EQ(e.addr, 0x20000u);
  EXPECT_EQ(e.size, 2u);
  EXPECT_EQ(e.data, 0xbeefu);

  e = run(v);
  ASSERT_EQ(e.reason, Reason::kMmioRead);
  EXPECT_EQ(e.addr, 0x20004u);
  EXPECT_EQ(e.size, 4u);
  v.set_io_result(0xcafef00d);
  e = run(v);
  EXPECT_EQ(e.reason, Reason::kPioWrite);
  EXPECT_EQ(e.addr, 0x15u);
  EXPECT_EQ(e.size, 4u);
  EXPECT_EQ(e.data, 0xcafef00du);

}

TEST(KvmVm, GuestCpuidShowsTheHypervisorAndKvmsTscDeadlineTimer) {
  SKIP_WITHOUT_KVM();
  // mov eax, 1; cpuid; mov eax, ecx; out 0x10, eax; hlt
  static constexpr uint8_t kCode[] = {0x66, 0xb8, 0x01, 0x00, 0x00, 0x00, 0x0f, 0xa2, 0x66,
                                      0x89, 0xc8, 0x66, 0xe7, 0x10, 0xf4};
  auto f = real_mode_vm(kCode, 0x1000);
  ASSERT_TRUE(f.vcpu);
  const auto e = run(*f.vcpu);
  ASSERT_EQ(e.reason, Reason::kPioWrite);
  ASSERT_EQ(e.addr, 0x10u);
  const uint64_t ecx = e.data;
  EXPECT_TRUE(ecx & (1u << 31)) << "CPUID.1:ECX.hypervisor";
  const int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
  ASSERT_GE(kvm, 0);
  const bool deadline = ioctl(kvm, KVM_CHECK_EXTENSION, KVM_CAP_TSC_DEADLINE_TIMER) > 0;
  close(kvm);
  EXPECT_EQ((ecx >> 24) & 1, deadline ? 1u : 0u) << "CPUID.1:ECX.TSC-deadline follows KVM's cap";
}

TEST(KvmVm, TripleFaultBecomesReset) {
  SKIP_WITHOUT_KVM();
  auto f = real_mode_vm(test_guests::kRealModeTriple, test_guests::kRealModeTripleLoad);
  ASSERT_TRUE(f.vcpu);
  auto e = run(*f.vcpu);
  ASSERT_EQ(e.addr, 0x10u);
  e = run(*f.vcpu);
  if (e.reason == Reason::kPioWrite && e.addr == 0x10 && access("/sys/module/kvm_pvm", F_OK) == 0)
    GTEST_SKIP() << "this restricted KVM (kvm_pvm) restarts the vCPU on a triple fault "
                    "instead of KVM_EXIT_SHUTDOWN; the lab checks it on a standard KVM";
  EXPECT_EQ(e.reason, Reason::kReset) << "exit " << static_cast<int>(e.reason) << " port "
                                      << e.addr;
  EXPECT_EQ(e.detail, "triple fault");
}

TEST(KvmVm, DeviceInterruptThroughInKernelPicWakesHaltedGuest) {
  SKIP_WITHOUT_KVM();
  auto f = real_mode_vm(test_guests::kRealModeIrq, test_guests::kRealModeIrqLoad);
  ASSERT_TRUE(f.vcpu);
  auto e = run(*f.vcpu);
  ASSERT_EQ(e.reason, Reason::kPioWrite);
  ASSERT_EQ(e.addr, 0x10u) << "guest did not finish programming the PIC";

  auto line = f.vm->irq_line(4);
  ASSERT_TRUE(line.ok());
  // The guest sits in HLT inside KVM until the interrupt arrives.
  (*line)->raise();
  e = run(*f.vcpu);
  EXPECT_EQ(e.reason, Reason::kPioWrite);
  EXPECT_EQ(e.addr, 0x11u);
  EXPECT_EQ(e.data, 0x99u) << "the IRQ 4 handler did not run";
  (*line)->lower();
}

TEST(KvmVm, CoalescedPortWritesComeOutInOrderBeforeTheNextExit) {
  SKIP_WITHOUT_KVM();
  auto f = real_mode_vm(test_guests::kRealModeCoalesced, test_guests::kRealModeCoalescedLoad);
  ASSERT_TRUE(f.vcpu);
  if (!f.vm->coalesced_pio_supported()) GTEST_SKIP() << "this KVM lacks KVM_CAP_COALESCED_PIO";
  ASSERT_TRUE(f.vm->set_coalesced_pio(0x10, 2, true).ok());
  auto e = run(*f.vcpu);
  EXPECT_EQ(e.reason, Reason::kPioWrite);
  EXPECT_EQ(e.addr, 0x12u) << "the writes to ports 0x10-0x11 exited instead of coalescing";
  std::vector<std::pair<unsigned, uint64_t>> writes;
  const size_t n = f.vm->drain_coalesced([&](uint64_t port, unsigned size, uint64_t value) {
    EXPECT_EQ(port, 0x10u);
    writes.emplace_back(size, value);
  });
  EXPECT_EQ(n, 3u);
  const std::vector<std::pair<unsigned, uint64_t>> want{{1, 'a'}, {1, 'b'}, {2, 0x6463}};
  EXPECT_EQ(writes, want);
  EXPECT_EQ(f.vm->drain_coalesced([](uint64_t, unsigned, uint64_t) { FAIL(); }), 0u);
  ASSERT_TRUE(f.vm->set_coalesced_pio(0x10, 2, false).ok());
}

TEST(KvmVm, SaveRestoreKeepsRegistersAndVectorState) {
  SKIP_WITHOUT_KVM();
  auto f = real_mode_vm(test_guests::kRealModeIo, test_guests::kRealModeIoLoad);
  ASSERT_TRUE(f.vcpu);
  auto& vcpu = static_cast<KvmVcpu&>(*f.vcpu);
  const bool xsave = ioctl(f.vm->vm_fd(), KVM_CHECK_EXTENSION, KVM_CAP_XSAVE) > 0;
  // Standard-format XSAVE area: XMM3 at byte 160 + 3 * 16 of the legacy area, XSTATE_BV at
  // byte 512, the AVX component (upper halves of YMM0-15) at 576, so YMM3's at 624.
  // kvm_fpu has no AVX state: only the XSAVE area carries it through save and restore.
  constexpr size_t kXmm3 = 208, kXstateBv = 512, kYmm3High = 624;
  auto set_vectors = [&](uint8_t base) -> bool {
    XsaveArea area{};
    if (ioctl(vcpu.fd(), kGetXsave, &area) != 0) return false;
    auto* b = reinterpret_cast<uint8_t*>(area.region);
    for (int i = 0; i < 16; ++i) {
      b[kXmm3 + i] = static_cast<uint8_t>(base + i);
      b[kYmm3High + i] = static_cast<uint8_t>(base + 0x40 + i);
    }
    b[kXstateBv] |= 0x7;  // x87, SSE, AVX
    return ioctl(vcpu.fd(), kSetXsave, &area) == 0;
  };
  auto vectors = [&]() -> std::pair<uint8_t, uint8_t> {
    XsaveArea area{};
    EXPECT_EQ(ioctl(vcpu.fd(), kGetXsave, &area), 0);
    const auto* b = reinterpret_cast<const uint8_t*>(area.region);
    return {b[kXmm3 + 15], b[kYmm3High + 15]};
  };
  // Without AVX in this vCPU's CPUID, KVM refuses the AVX bit: then there is nothing to see.
  const bool avx = xsave && set_vectors(0xa0);
  auto save = vcpu.save();
  ASSERT_TRUE(save.ok()) << save.error().message();
  const VcpuState saved = save.release_value();
  EXPECT_EQ(saved.version, VcpuState::kVersion);
  EXPECT_EQ(saved.has_xsave, xsave) << "KVM_GET_XSAVE failed (its ioctl number?)";

  auto regs = vcpu.regs();
  ASSERT_TRUE(regs.ok());
  regs->rax = saved.regs.rax + 0x1234;
  ASSERT_EQ(ioctl(vcpu.fd(), KVM_SET_REGS, &*regs), 0);
  if (avx) {
    ASSERT_TRUE(set_vectors(0x10));
    ASSERT_EQ(vectors(), (std::pair<uint8_t, uint8_t>{0x1f, 0x5f}));
  }

  ASSERT_TRUE(vcpu.restore(saved).ok());
  EXPECT_EQ(vcpu.regs()->rax, saved.regs.rax);
  if (avx) {
    EXPECT_EQ(vectors(), (std::pair<uint8_t, uint8_t>{0xaf, 0xef}))
        << "XMM3 / YMM3's upper half not restored from the XSAVE area";
  }
  VcpuState bad = saved;
  bad.version = 1;
  EXPECT_FALSE(vcpu.restore(bad).ok());
  if (!avx) GTEST_SKIP() << "registers checked; this vCPU has no AVX state to check";
}

TEST(KvmVm, SavedMsrsAreKvmsSaveableOnesAndRestoreInOrder) {
  SKIP_WITHOUT_KVM();
  auto f = real_mode_vm(test_guests::kRealModeIo, test_guests::kRealModeIoLoad);
  ASSERT_TRUE(f.vcpu);
  auto& vcpu = static_cast<KvmVcpu&>(*f.vcpu);
  EXPECT_FALSE(f.vm->msr_index_list().empty()) << "KVM_GET_MSR_INDEX_LIST gave nothing";
  auto saved = vcpu.save();
  ASSERT_TRUE(saved.ok()) << saved.error().message();
  auto value_of = [&](uint32_t index) -> std::optional<uint64_t> {
    for (const auto& e : saved->msrs)
      if (e.index == index) return e.data;
    return std::nullopt;
  };
  // More than the boot MSRs: KVM's list (the TSC, kvmclock's MSR), and the MTRRs.
  EXPECT_GT(saved->msrs.size(), boot_msrs().size());
  EXPECT_TRUE(value_of(0x10).has_value()) << "IA32_TSC";
  EXPECT_TRUE(value_of(0xc0000082).has_value()) << "LSTAR";
  ASSERT_TRUE(value_of(0x2ff).has_value()) << "MTRRdefType";
  EXPECT_EQ(*value_of(0x2ff) & 0xfff, 0x806u) << "boot MTRRdefType: enabled, write-back";
  for (const auto& e : saved->msrs) {
    size_t same = 0;
    for (const auto& other : saved->msrs) same += other.index == e.index;
    EXPECT_EQ(same, 1u) << "MSR " << std::hex << e.index << " saved twice";
  }

  // The TSC deadline first in the file: restore() still sets the TSC before it.
  VcpuState reordered = *saved;
  std::stable_partition(reordered.msrs.begin(), reordered.msrs.end(),
                        [](const kvm_msr_entry& e) { return e.index == 0x6e0; });
  auto r = vcpu.restore(reordered);
  EXPECT_TRUE(r.ok()) << r.error().message();

  VcpuState bogus = *saved;
  kvm_msr_entry e{};
  e.index = 0xdeadbeef;
  e.data = 1;
  bogus.msrs.push_back(e);
  r = vcpu.restore(bogus);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("0xdeadbeef"), std::string::npos) << r.error().message();
}

TEST(KvmVm, VmStateRoundTripsAndClockCanBeSet) {
  SKIP_WITHOUT_KVM();
  auto f = real_mode_vm(test_guests::kRealModeIrq, test_guests::kRealModeIrqLoad);
  ASSERT_TRUE(f.vcpu);
  ASSERT_EQ(run(*f.vcpu).addr, 0x10u) << "guest did not finish programming the PIC";
  auto saved = f.vm->save();
  ASSERT_TRUE(saved.ok()) << saved.error().message();
  EXPECT_EQ(saved->pic_master.chip_id, static_cast<uint32_t>(KVM_IRQCHIP_PIC_MASTER));
  EXPECT_EQ(saved->pic_slave.chip_id, static_cast<uint32_t>(KVM_IRQCHIP_PIC_SLAVE));
  EXPECT_EQ(saved->ioapic.chip_id, static_cast<uint32_t>(KVM_IRQCHIP_IOAPIC));
  EXPECT_TRUE(saved->has_pit);
  // The guest unmasked IRQ 4 on the master PIC: the saved IMR shows it.
  EXPECT_EQ(saved->pic_master.chip.pic.imr & 0x10, 0) << "IMR " << int{saved->pic_master.chip.pic.imr};

  // Mask everything, then restore: the guest's mask comes back.
  KvmVmState masked = *saved;
  masked.pic_master.chip.pic.imr = 0xff;
  ASSERT_TRUE(f.vm->restore(masked).ok());
  auto now = f.vm->save();
  ASSERT_TRUE(now.ok());
  EXPECT_EQ(now->pic_master.chip.pic.imr, 0xff);
  ASSERT_TRUE(f.vm->restore(*saved).ok());
  now = f.vm->save();
  ASSERT_TRUE(now.ok());
  EXPECT_EQ(now->pic_master.chip.pic.imr, saved->pic_master.chip.pic.imr);

  // kvmclock: set far ahead, read back from there (plus the little time since).
  auto clock = f.vm->get_clock();
  ASSERT_TRUE(clock.ok()) << clock.error().message();
  kvm_clock_data ahead = *clock;
  ahead.clock += 3600ull * 1'000'000'000;
  ahead.flags = 0xffff;  // set_clock() passes the value only
  ASSERT_TRUE(f.vm->set_clock(ahead).ok());
  auto after = f.vm->get_clock();
  ASSERT_TRUE(after.ok());
  EXPECT_GE(after->clock, ahead.clock);
  EXPECT_LT(after->clock, ahead.clock + 10'000'000'000ull);

  KvmVmState bad = *saved;
  bad.ioapic.chip_id = KVM_IRQCHIP_PIC_MASTER;
  EXPECT_FALSE(f.vm->restore(bad).ok());
  bad = *saved;
  bad.has_pit = false;
  auto r = f.vm->restore(bad);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("PIT"), std::string::npos);
  bad = *saved;
  bad.version = 7;
  EXPECT_FALSE(f.vm->restore(bad).ok());
}

TEST(KvmVm, KickStopsAHaltedVcpuFromAnotherThread) {
  SKIP_WITHOUT_KVM();
  auto f = real_mode_vm(test_guests::kRealModeIrq, test_guests::kRealModeIrqLoad);
  ASSERT_TRUE(f.vcpu);
  ASSERT_EQ(run(*f.vcpu).addr, 0x10u);
  // Now the guest halts forever (IRQ 4 never comes): only kick() can get run() back.
  std::thread kicker([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    f.vcpu->kick();
  });
  const auto start = std::chrono::steady_clock::now();
  auto e = run(*f.vcpu);
  kicker.join();
  EXPECT_EQ(e.reason, Reason::kKicked);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
}

TEST(KvmVm, RejectsMoreVcpusThanCreatedAndBadGsi) {
  SKIP_WITHOUT_KVM();
  auto f = real_mode_vm(test_guests::kRealModeIrq, test_guests::kRealModeIrqLoad);
  ASSERT_TRUE(f.vm);
  auto v = f.vm->create_vcpu(1);
  ASSERT_FALSE(v.ok());
  EXPECT_NE(v.error().message().find("created for 1 vCPUs"), std::string::npos);
  auto line = f.vm->irq_line(24);
  ASSERT_FALSE(line.ok());
  EXPECT_NE(line.error().message().find("IRQ 24"), std::string::npos);
}

TEST(KvmVm, MissingDeviceIsAClearError) {
  auto mem = GuestMemory::create({{0, 64 * KiB}});
  ASSERT_TRUE(mem.ok());
  auto vm = KvmVm::create(**mem, {.cpus = 1}, "/nonexistent/kvm");
  ASSERT_FALSE(vm.ok());
  EXPECT_NE(vm.error().message().find("/nonexistent/kvm"), std::string::npos);
  EXPECT_NE(vm.error().message().find("No such file"), std::string::npos);
}

TEST(KvmVm, DirtyLogMarksThePagesTheGuestWrote) {
  SKIP_WITHOUT_KVM();
  // xor ax, ax; mov ds, ax; mov byte [0x3000], 0x2a; mov byte [0x5000], 0x2b; out 0x10, al; hlt
  static constexpr uint8_t kCode[] = {0x31, 0xc0, 0x8e, 0xd8, 0xc6, 0x06, 0x00, 0x30, 0x2a,
                                      0xc6, 0x06, 0x00, 0x50, 0x2b, 0xe6, 0x10, 0xf4};
  auto f = real_mode_vm(kCode, 0x1000);
  ASSERT_TRUE(f.vcpu);
  ASSERT_TRUE(f.vm->set_dirty_logging(true).ok());
  f.memory->clear_dirty();
  const auto e = run(*f.vcpu);
  ASSERT_EQ(e.reason, Reason::kPioWrite);
  EXPECT_EQ(f.memory->read_le<uint8_t>(0x5000), 0x2b);
  EXPECT_EQ(f.memory->dirty_page_count(), 0u) << "KVM's log is not folded in yet";
  auto fetched = f.vm->fetch_dirty_log(*f.memory);
  ASSERT_TRUE(fetched.ok()) << fetched.error().message();
  EXPECT_TRUE(f.memory->is_dirty(0x3000));
  EXPECT_TRUE(f.memory->is_dirty(0x5000));
  EXPECT_FALSE(f.memory->is_dirty(0x4000));
  // KVM_GET_DIRTY_LOG cleared KVM's log: nothing new the second time.
  f.memory->clear_dirty();
  ASSERT_TRUE(f.vm->fetch_dirty_log(*f.memory).ok());
  EXPECT_FALSE(f.memory->is_dirty(0x3000));
  ASSERT_TRUE(f.vm->set_dirty_logging(false).ok());
  EXPECT_FALSE(f.vm->fetch_dirty_log(*f.memory).ok()) << "no log while logging is off";
}

TEST(Cpuid, TopologyCarriesApicIdAndCount) {
  std::vector<kvm_cpuid_entry2> supported(3);
  supported[0].function = 0x1;
  supported[0].ebx = 0x00000800;  // CLFLUSH size field kept
  supported[1].function = 0xb;
  supported[2].function = 0x4;
  supported[2].eax = 0x121;  // level 1 data cache
  const auto out = cpuid_for_vcpu(supported, 5, 8);
  bool saw1 = false, saw4 = false;
  int saw_b = 0;
  for (const auto& e : out) {
    if (e.function == 0x1) {
      saw1 = true;
      EXPECT_EQ(e.ebx >> 24, 5u);
      EXPECT_EQ((e.ebx >> 16) & 0xff, 8u);
      EXPECT_EQ(e.ebx & 0xffff, 0x800u);
      EXPECT_TRUE(e.ecx & (1u << 31));
      EXPECT_TRUE(e.edx & (1u << 28));
    }
    if (e.function == 0x4) {
      saw4 = true;
      EXPECT_EQ(e.eax >> 26, 7u);
    }
    if (e.function == 0xb) {
      ++saw_b;
      EXPECT_EQ(e.edx, 5u);
      if (e.index == 1) {
        EXPECT_EQ(e.eax, 3u);
        EXPECT_EQ(e.ebx, 8u);
        EXPECT_EQ((e.ecx >> 8) & 0xff, 2u);
      }
    }
  }
  EXPECT_TRUE(saw1 && saw4);
  EXPECT_EQ(saw_b, 3);
  EXPECT_EQ(topology_shift(1), 0u);
  EXPECT_EQ(topology_shift(2), 1u);
  EXPECT_EQ(topology_shift(3), 2u);
}

TEST(Cpuid, AmdTopologyLeavesDescribeOnePackageOfCores) {
  std::vector<kvm_cpuid_entry2> supported(6);
  supported[0].function = 0x0;  // "AuthenticAMD"
  supported[0].ebx = 0x68747541;
  supported[0].edx = 0x69746e65;
  supported[0].ecx = 0x444d4163;
  supported[1].function = 0x80000001;
  supported[1].ecx = 1u << 22;  // TOPOEXT kept
  supported[2].function = 0x80000008;
  supported[2].ecx = 0x00010000;  // bits above 15 kept
  supported[3].function = 0x8000001e;
  supported[4].function = 0x8000001d;
  supported[4].eax = 0x163;  // level 3 unified cache, "shared by 1"
  supported[5].function = 0x8000001d;
  supported[5].eax = 0x121;  // level 1 data cache
  const auto out = cpuid_for_vcpu(supported, 6, 8);
  int seen = 0;
  for (const auto& e : out) {
    switch (e.function) {
      case 0x80000001:
        EXPECT_EQ(e.ecx, (1u << 22) | (1u << 1)) << "CmpLegacy";
        ++seen;
        break;
      case 0x80000008:
        EXPECT_EQ(e.ecx, 0x00013007u) << "8 cores, 3 APIC ID bits for the core";
        ++seen;
        break;
      case 0x8000001e:
        EXPECT_EQ(e.eax, 6u);
        EXPECT_EQ(e.ebx, 6u) << "core 6, one thread per core";
        EXPECT_EQ(e.ecx, 0u);
        ++seen;
        break;
      case 0x8000001d:
        EXPECT_EQ((e.eax >> 14) & 0xfff, ((e.eax >> 5) & 7) == 3 ? 7u : 0u);
        ++seen;
        break;
    }
  }
  EXPECT_EQ(seen, 5);
  // One vCPU: no CmpLegacy; Intel hosts: the AMD leaves are left alone.
  for (const auto& e : cpuid_for_vcpu(supported, 0, 1)) {
    if (e.function == 0x80000001) {
      EXPECT_EQ(e.ecx, 1u << 22);
    }
  }
  supported[0].ebx = 0x756e6547;  // "GenuineIntel"
  for (const auto& e : cpuid_for_vcpu(supported, 3, 4)) {
    if (e.function == 0x80000008) {
      EXPECT_EQ(e.ecx, 0x00010000u);
    }
  }
}

}  // namespace
}  // namespace doppel::kvm
