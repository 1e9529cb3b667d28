// Instruction-level tests of the hart: small programs in guest RAM at 0x80000000, run for N
// steps, then registers, memory and CSRs are checked.
#include "engines/emu/riscv64/hart.h"

#include <thread>

#include "engines/emu/riscv64/decode.h"
#include "engines/emu/riscv64/test_asm.h"

namespace doppel::rv64 {
namespace {

using namespace testasm;

class HartTest : public HartFixture {};

TEST_F(HartTest, IntegerArithmeticAndX0) {
  load({ADDI(a0, zero, 5), ADDI(a1, zero, -3), ADD(a2, a0, a1), SUB(a3, a1, a0),
        ADDI(zero, a0, 7), LUI(a4, 0x80000), SRAI(a5, a4, 4), SLLI(a6, a0, 62),
        AUIPC(a7, 1)});
  const StepResult r = hart->step(9);
  EXPECT_EQ(r.kind, StepResult::Kind::kBudget);
  EXPECT_EQ(r.executed, 9u);
  EXPECT_EQ(hart->x(a2), 2u);
  EXPECT_EQ(hart->x(a3), static_cast<uint64_t>(-8));
  EXPECT_EQ(hart->x(zero), 0u);
  EXPECT_EQ(hart->x(a4), 0xffffffff80000000ull);  // lui sign-extends on RV64
  EXPECT_EQ(hart->x(a5), 0xfffffffff8000000ull);
  EXPECT_EQ(hart->x(a6), 1ull << 62);
  EXPECT_EQ(hart->x(a7), kRamBase + 8 * 4 + 0x1000);
  EXPECT_EQ(hart->pc(), kRamBase + 36);
}

TEST_F(HartTest, LoopSumsOneToTen) {
  // a0 = 0; a1 = 10; loop: a0 += a1; a1 -= 1; bne a1, zero, loop; ebreak
  load({ADDI(a0, zero, 0), ADDI(a1, zero, 10), ADD(a0, a0, a1), ADDI(a1, a1, -1),
        BNE(a1, zero, -8), EBREAK});
  hart->set_exit_on_trap(true);
  const StepResult r = hart->step(1000);
  ASSERT_EQ(r.kind, StepResult::Kind::kTrap);
  EXPECT_EQ(r.trap.cause, static_cast<uint64_t>(Exception::kBreakpoint));
  EXPECT_EQ(r.trap.pc, kRamBase + 20);
  EXPECT_EQ(hart->x(a0), 55u);
  EXPECT_EQ(r.executed, 2u + 3u * 10u);
}

TEST_F(HartTest, StepBudgetIsExact) {
  load({ADDI(a0, a0, 1), ADDI(a0, a0, 1), ADDI(a0, a0, 1), ADDI(a0, a0, 1), JAL(zero, -16)});
  const StepResult r = hart->step(7);
  EXPECT_EQ(r.executed, 7u);
  EXPECT_EQ(hart->x(a0), 6u);  // 4 addi, jal, 2 addi
  EXPECT_EQ(hart->pc(), kRamBase + 8);
}

TEST_F(HartTest, LoadsStoresSignExtension) {
  hart->set_x(a1, 0x80200000);
  load({ADDI(a3, zero, -2), SD(a3, a1, 0), LB(a4, a1, 0), LWU(a5, a1, 0), LD(a6, a1, 0),
        SB(zero, a1, 7), LD(a7, a1, 0)});
  hart->step(7);
  EXPECT_EQ(hart->x(a4), static_cast<uint64_t>(-2));
  EXPECT_EQ(hart->x(a5), 0xfffffffeu);
  EXPECT_EQ(hart->x(a6), static_cast<uint64_t>(-2));
  EXPECT_EQ(hart->x(a7), 0x00fffffffffffffeull);
  EXPECT_EQ(mem64(0x80200000), 0x00fffffffffffffeull);
}

TEST_F(HartTest, AccessesAtTheTopOfTheAddressSpaceFaultInsteadOfTouchingTheHost) {
  // The last page's TLB slot is empty: its tag must not match these (a host write at va).
  hart->set_x(a1, ~0ull - 0x631);
  hart->set_x(a2, ~0ull - 2);  // an 8-byte access wrapping past 2^64
  load({SD(a1, a1, 0), LD(a3, a2, 0), SD(a2, a2, 0)});
  hart->set_exit_on_trap(true);
  for (uint64_t pc : {kRamBase, kRamBase + 4, kRamBase + 8}) {
    const StepResult r = hart->step(1);
    ASSERT_EQ(r.kind, StepResult::Kind::kTrap);
    EXPECT_EQ(r.trap.pc, pc);
    EXPECT_TRUE(r.trap.cause == static_cast<uint64_t>(Exception::kStoreAccessFault) ||
                r.trap.cause == static_cast<uint64_t>(Exception::kLoadAccessFault));
    hart->set_pc(pc + 4);
  }
}

TEST_F(HartTest, MisalignedLoadAndStoreAcrossPagesAreHandled) {
  ASSERT_TRUE(memory->write_le<uint64_t>(kRamBase + 0x1ffc, 0x8877665544332211ull));
  hart->set_x(a1, kRamBase + 0x1ffd);  // crosses into the next page
  hart->set_x(a2, 0x0102030405060708ull);
  load({LD(a0, a1, 0), LW(a3, a1, 1), SD(a2, a1, 8), EBREAK});
  hart->set_exit_on_trap(true);
  const StepResult r = hart->step(10);
  ASSERT_EQ(r.kind, StepResult::Kind::kTrap);
  EXPECT_EQ(r.trap.cause, static_cast<uint64_t>(Exception::kBreakpoint));
  EXPECT_EQ(hart->x(a0), 0x0088776655443322ull);
  EXPECT_EQ(hart->x(a3), 0x66554433u);
  std::array<uint8_t, 8> out{};
  ASSERT_TRUE(memory->read(kRamBase + 0x2005, out));
  EXPECT_EQ(load_le<uint64_t>(out.data()), 0x0102030405060708ull);
}

TEST_F(HartTest, MultiplyDivideEdgeCases) {
  hart->set_x(a1, static_cast<uint64_t>(INT64_MIN));
  hart->set_x(a2, static_cast<uint64_t>(-1));
  hart->set_x(a3, 7);
  load({DIV(a0, a1, a2), REM(a4, a1, a2), DIVU(a5, a3, zero), DIV(a6, a3, zero), MULH(a7, a1, a1),
        MUL(t0, a3, a3), DIVW(t1, a3, a2)});
  hart->step(7);
  EXPECT_EQ(hart->x(a0), static_cast<uint64_t>(INT64_MIN));  // overflow: dividend
  EXPECT_EQ(hart->x(a4), 0u);
  EXPECT_EQ(hart->x(a5), ~0ull);  // divide by zero: all ones
  EXPECT_EQ(hart->x(a6), ~0ull);
  EXPECT_EQ(hart->x(a7), 1ull << 62);
  EXPECT_EQ(hart->x(t0), 49u);
  EXPECT_EQ(hart->x(t1), static_cast<uint64_t>(-7));
}

TEST_F(HartTest, CompressedInstructionsExpandAsTheAssemblerSays) {
  // Pairs from riscv64-linux-gnu-as: 16-bit form and its 32-bit equivalent.
  const std::pair<uint16_t, uint32_t> pairs[] = {
      {0x0505, 0x00150513}, {0x4515, 0x00500513}, {0x85aa, 0x00a005b3}, {0x952e, 0x00b50533},
      {0x8082, 0x00008067}, {0x6522, 0x00813503}, {0xe82a, 0x00a13823}, {0x41c8, 0x0045a503},
      {0xe588, 0x00a5b423}, {0x7139, 0xfc010113}, {0x657d, 0x0001f537}, {0x850d, 0x40355513},
      {0x9d0d, 0x40b5053b}, {0x2588, 0x0085b507}, {0x0808, 0x01010513},
  };
  for (auto [c, full] : pairs) EXPECT_EQ(expand_compressed(c), full) << std::hex << c;
  EXPECT_EQ(expand_compressed(0x0000), 0u);  // the all-zero parcel is illegal
  // Branches: c.beqz a0, +16 and c.j -4 expand to beq/jal with the same offsets.
  EXPECT_EQ(decode(0xc901).imm, 16);
  EXPECT_EQ(decode(0xbff5).imm, -4);
}

TEST_F(HartTest, CompressedProgramRuns) {
  // c.li a0,5; c.addi a0,1; c.mv a1,a0; c.add a0,a1; ebreak (32-bit, at offset 8)
  ASSERT_TRUE(memory->write_le<uint16_t>(kRamBase + 0, 0x4515));
  ASSERT_TRUE(memory->write_le<uint16_t>(kRamBase + 2, 0x0505));
  ASSERT_TRUE(memory->write_le<uint16_t>(kRamBase + 4, 0x85aa));
  ASSERT_TRUE(memory->write_le<uint16_t>(kRamBase + 6, 0x952e));
  ASSERT_TRUE(memory->write_le<uint32_t>(kRamBase + 8, EBREAK));
  hart->set_exit_on_trap(true);
  const StepResult r = hart->step(10);
  ASSERT_EQ(r.kind, StepResult::Kind::kTrap);
  EXPECT_EQ(r.trap.pc, kRamBase + 8);
  EXPECT_EQ(hart->x(a0), 12u);
  EXPECT_EQ(hart->x(a1), 6u);
}

TEST_F(HartTest, IllegalInstructionTrapsWithTheEncodingInTval) {
  load({0xffffffff});
  hart->set_exit_on_trap(true);
  StepResult r = hart->step(1);
  ASSERT_EQ(r.kind, StepResult::Kind::kTrap);
  EXPECT_EQ(r.trap.cause, static_cast<uint64_t>(Exception::kIllegalInsn));
  EXPECT_EQ(r.trap.tval, 0xffffffffu);
  EXPECT_EQ(hart->pc(), kRamBase);  // nothing changed
  // In engine mode the same instruction enters the M-mode handler.
  hart->set_exit_on_trap(false);
  ASSERT_TRUE(hart->write_csr(kMtvec, kRamBase + 0x100));
  r = hart->step(1);
  EXPECT_EQ(hart->pc(), kRamBase + 0x100);
  EXPECT_EQ(csr(kMcause), 2u);
  EXPECT_EQ(csr(kMtval), 0xffffffffu);
  EXPECT_EQ(csr(kMepc), kRamBase);
}

TEST_F(HartTest, EcallFromUserModeComesBackAsAValue) {
  load({ADDI(a7, zero, 93), ECALL, ADDI(a0, zero, 1)});
  hart->setup_user_mode();
  StepResult r = hart->step(100);
  ASSERT_EQ(r.kind, StepResult::Kind::kTrap);
  EXPECT_EQ(r.trap.cause, static_cast<uint64_t>(Exception::kEcallFromU));
  EXPECT_EQ(r.trap.pc, kRamBase + 4);
  EXPECT_EQ(hart->x(a7), 93u);
  hart->set_pc(r.trap.pc + 4);  // the runner services the call and resumes
  r = hart->step(1);
  EXPECT_EQ(hart->x(a0), 1u);
  EXPECT_EQ(hart->priv(), Priv::kU);
}

TEST_F(HartTest, UserModeCannotTouchMachineCsrs) {
  load({CSRRS(a0, kMstatus, zero)});
  hart->setup_user_mode();
  const StepResult r = hart->step(1);
  ASSERT_EQ(r.kind, StepResult::Kind::kTrap);
  EXPECT_EQ(r.trap.cause, static_cast<uint64_t>(Exception::kIllegalInsn));
}

TEST_F(HartTest, DelegatedEcallGoesToSupervisorAndSretReturns) {
  const uint64_t stvec = kRamBase + 0x200;
  const uint64_t user = kRamBase + 0x400;
  // M-mode: delegate ecall-from-U, set stvec, MPP = U, mepc = user, mret.
  hart->set_x(t0, 1u << 8);
  hart->set_x(t1, stvec);
  hart->set_x(t2, user);
  load({CSRRW(zero, kMedeleg, t0), CSRRW(zero, kStvec, t1), CSRRW(zero, kMepc, t2), MRET});
  load({ADDI(a0, zero, 42), ECALL, ADDI(a1, zero, 1), EBREAK}, user);
  // S handler: sepc += 4; sret.
  load({CSRRS(t3, kSepc, zero), ADDI(t3, t3, 4), CSRRW(zero, kSepc, t3), SRET}, stvec);
  hart->step(6);  // 4 in M, addi + ecall in U
  EXPECT_EQ(hart->priv(), Priv::kS);
  EXPECT_EQ(hart->pc(), stvec);
  EXPECT_EQ(csr(kScause), 8u);
  EXPECT_EQ(csr(kSepc), user + 4);
  EXPECT_EQ(csr(kSstatus) & Hart::kMstatusSPP, 0u);  // came from U
  hart->step(5);  // handler + addi a1
  EXPECT_EQ(hart->priv(), Priv::kU);
  EXPECT_EQ(hart->x(a1), 1u);
  EXPECT_EQ(hart->x(a0), 42u);
}

TEST_F(HartTest, TimerInterruptIsTakenWhenEnabled) {
  load({ADDI(a0, a0, 1), JAL(zero, -4)});
  ASSERT_TRUE(hart->write_csr(kMtvec, kRamBase + 0x100));
  ASSERT_TRUE(hart->write_csr(kMie, kMipMTIP | kMipMEIP));
  hart->step(10);
  EXPECT_EQ(hart->x(a0), 5u);
  hart->pins().set(kMipMTIP, true);
  hart->step(4);  // MIE is off in M-mode: not taken
  EXPECT_NE(hart->pc(), kRamBase + 0x100);
  load({JAL(zero, 0)}, kRamBase + 0x100);  // the handler spins
  ASSERT_TRUE(hart->write_csr(kMstatus, Hart::kMstatusMIE));
  hart->pins().set(kMipMEIP, true);
  hart->step(1);
  EXPECT_EQ(hart->pc(), kRamBase + 0x100);
  EXPECT_EQ(csr(kMcause), kInterruptBit | 11);  // MEI outranks MTI
  EXPECT_EQ(csr(kMstatus) & Hart::kMstatusMIE, 0u);
  EXPECT_NE(csr(kMstatus) & Hart::kMstatusMPIE, 0u);
  EXPECT_EQ(csr(kMip) & (kMipMTIP | kMipMEIP), kMipMTIP | kMipMEIP);
}

TEST_F(HartTest, SupervisorInterruptsAreNotTakenInMachineMode) {
  load({ADDI(a0, a0, 1), JAL(zero, -4)});
  ASSERT_TRUE(hart->write_csr(kMideleg, kMipSSIP));
  ASSERT_TRUE(hart->write_csr(kMie, kMipSSIP));
  ASSERT_TRUE(hart->write_csr(kMip, kMipSSIP));
  ASSERT_TRUE(hart->write_csr(kMstatus, Hart::kMstatusMIE | Hart::kMstatusSIE));
  hart->step(10);
  EXPECT_EQ(hart->x(a0), 5u);
  EXPECT_EQ(hart->priv(), Priv::kM);
}

TEST_F(HartTest, ClearingStipDoesNotLatchThePlicSeipLine) {
  // OpenSBI does csrc mip, STIP while the PLIC holds SEIP high: the read-modify-write must
  // not copy the line into the software SEIP bit, or SEIP stays pending forever.
  hart->set_x(t0, kMipSTIP);
  ASSERT_TRUE(hart->write_csr(kMip, kMipSTIP));
  hart->pins().set(kMipSEIP, true);
  load({0x3442b073 /* csrrc zero, mip, t0 */});
  hart->step(1);
  hart->pins().set(kMipSEIP, false);
  EXPECT_EQ(csr(kMip) & (kMipSEIP | kMipSTIP), 0u);
}

TEST_F(HartTest, VectoredModeUsesCauseOffset) {
  load({ADDI(a0, a0, 1), JAL(zero, -4)});
  ASSERT_TRUE(hart->write_csr(kMtvec, (kRamBase + 0x100) | 1));
  ASSERT_TRUE(hart->write_csr(kMie, kMipMSIP));
  ASSERT_TRUE(hart->write_csr(kMstatus, Hart::kMstatusMIE));
  load({JAL(zero, 0)}, kRamBase + 0x100 + 4 * 3);
  hart->pins().set(kMipMSIP, true);
  hart->step(1);
  EXPECT_EQ(hart->pc(), kRamBase + 0x100 + 4 * 3);
}

TEST_F(HartTest, MmioGoesToTheBusAndUnmappedAddressesFault) {
  hart->set_x(a1, kMmioBase);
  hart->set_x(a2, 0xabcd);
  load({SW(a2, a1, 0x10), LW(a0, a1, 0x20), LUI(a3, 0x30000), LD(a4, a3, 0)});
  ASSERT_TRUE(hart->write_csr(kMtvec, kRamBase + 0x100));
  hart->step(4);
  ASSERT_EQ(device.writes.size(), 1u);
  EXPECT_EQ(device.writes[0].offset, 0x10u);
  EXPECT_EQ(device.writes[0].size, 4u);
  EXPECT_EQ(device.writes[0].value, 0xabcdu);
  EXPECT_EQ(device.last_read_offset, 0x20u);
  EXPECT_EQ(hart->x(a0), 0x55667788u);
  EXPECT_EQ(csr(kMcause), static_cast<uint64_t>(Exception::kLoadAccessFault));
  EXPECT_EQ(csr(kMtval), 0x30000000u);
  EXPECT_EQ(hart->pc(), kRamBase + 0x100);
}

TEST_F(HartTest, FetchOutsideRamIsAnAccessFault) {
  hart->set_exit_on_trap(true);
  hart->set_pc(0x4000'0000);
  const StepResult r = hart->step(1);
  ASSERT_EQ(r.kind, StepResult::Kind::kTrap);
  EXPECT_EQ(r.trap.cause, static_cast<uint64_t>(Exception::kInsnAccessFault));
  EXPECT_EQ(r.trap.tval, 0x40000000u);
}

TEST_F(HartTest, LrScAndAmos) {
  const uint64_t data = kRamBase + 0x1000;
  ASSERT_TRUE(memory->write_le<uint64_t>(data, 40));
  hart->set_x(a1, data);
  hart->set_x(a2, 2);
  load({AMOADD_D(a0, a2, a1),  // a0 = 40, mem = 42
        LR_D(a3, a1), ADDI(a3, a3, 1), SC_D(a4, a3, a1),  // mem = 43, a4 = 0
        SC_D(a5, a3, a1),  // no reservation: a5 = 1
        AMOMAX_W(a6, a2, a1), AMOSWAP_D(a7, a2, a1)});
  hart->step(7);
  EXPECT_EQ(hart->x(a0), 40u);
  EXPECT_EQ(hart->x(a4), 0u);
  EXPECT_EQ(hart->x(a5), 1u);
  EXPECT_EQ(hart->x(a6), 43u);
  EXPECT_EQ(hart->x(a7), 43u);
  EXPECT_EQ(mem64(data), 2u);
}

TEST_F(HartTest, MisalignedAmoTraps) {
  hart->set_x(a1, kRamBase + 0x1002);
  load({AMOADD_W(a0, a2, a1)});
  hart->set_exit_on_trap(true);
  const StepResult r = hart->step(1);
  ASSERT_EQ(r.kind, StepResult::Kind::kTrap);
  EXPECT_EQ(r.trap.cause, static_cast<uint64_t>(Exception::kStoreMisaligned));
}

TEST_F(HartTest, AmoAddIsAtomicAcrossHarts) {
  const uint64_t counter = kRamBase + 0x2000;
  // loop: amoadd.w zero, a2, (a1); addi a3, a3, -1; bne a3, zero, loop; ebreak
  load({AMOADD_W(zero, a2, a1), ADDI(a3, a3, -1), BNE(a3, zero, -8), EBREAK});
  Hart other(*memory, bus, timebase, 1);
  constexpr uint64_t kIters = 100000;
  for (Hart* h : {hart.get(), &other}) {
    h->set_pc(kRamBase);
    h->set_x(a1, counter);
    h->set_x(a2, 1);
    h->set_x(a3, kIters);
    h->set_exit_on_trap(true);
  }
  std::thread t([&] { other.step(10 * kIters); });
  const StepResult r = hart->step(10 * kIters);
  t.join();
  EXPECT_EQ(r.kind, StepResult::Kind::kTrap);
  EXPECT_EQ(memory->read_le<uint32_t>(counter).value_or(0), 2 * kIters);
}

TEST_F(HartTest, FenceIMakesStoredCodeVisible) {
  // Overwrite the instruction at +16 (addi a0, zero, 1) with addi a0, zero, 2, then run it.
  hart->set_x(a1, kRamBase + 16);
  hart->set_x(a2, ADDI(a0, zero, 2));
  load({JAL(zero, 16), 0, 0, 0, ADDI(a0, zero, 1), SW(a2, a1, 0), FENCE_I, JAL(zero, -12)});
  hart->step(2);  // jal, addi (decodes and caches the old instruction)
  EXPECT_EQ(hart->x(a0), 1u);
  hart->step(4);  // sw, fence.i, jal, addi (new)
  EXPECT_EQ(hart->x(a0), 2u);
}

// The only hart of its VM: fence.i drops the blocks of the pages written since they were
// decoded (here by the VMM, as a device's DMA would: GuestMemory marks them), and keeps the
// others. A change behind GuestMemory's back (host_ptr() without a mark, which no writer
// may do) shows which blocks it kept.
TEST_F(HartTest, FenceIOnTheOnlyHartDropsTheCodeOfWrittenPagesOnly) {
  hart->set_sole_hart(true);
  // Page 0: a loop calling page 1's `addi a0, zero, N; ret` and running fence.i.
  load({JAL(ra, 0x1000), FENCE_I, JAL(zero, -8)});
  ASSERT_TRUE(memory->write_le<uint32_t>(kRamBase + 0x1000, ADDI(a0, zero, 1)));
  ASSERT_TRUE(memory->write_le<uint32_t>(kRamBase + 0x1004, JALR(zero, ra, 0)));
  hart->step(10);  // two passes: every page decoded, the writes' marks taken by fence.i
  EXPECT_EQ(hart->x(a0), 1u);
  store_le<uint32_t>(memory->host_ptr(kRamBase + 0x1000, 4), ADDI(a0, zero, 3));
  hart->step(10);  // fence.i kept page 1's block: the old instruction runs
  EXPECT_EQ(hart->x(a0), 1u);
  ASSERT_TRUE(memory->write_le<uint32_t>(kRamBase + 0x1000, ADDI(a0, zero, 2)));
  hart->step(5);  // jal, addi (still the cached one), ret, fence.i (drops page 1), jal
  EXPECT_EQ(hart->x(a0), 1u);
  hart->step(2);  // jal, addi (decoded again)
  EXPECT_EQ(hart->x(a0), 2u);
  // Another hart could have written without a mark: fence.i drops everything.
  hart->set_sole_hart(false);
  store_le<uint32_t>(memory->host_ptr(kRamBase + 0x1000, 4), ADDI(a0, zero, 3));
  hart->step(5);  // ret, fence.i, jal, jal, addi (new)
  EXPECT_EQ(hart->x(a0), 3u);
}

TEST_F(HartTest, CsrSemantics) {
  hart->set_x(a1, 0x1234);
  load({CSRRW(zero, 0x340, a1),          // mscratch = 0x1234
        CSRRS(a0, 0x340, zero),          // read
        CSRRWI(a2, 0x340, 5),            // swap in 5
        CSRRS(a3, kMhartid, zero),
        CSRRW(zero, kMhartid, a1),       // read-only: illegal
  });
  ASSERT_TRUE(hart->write_csr(kMtvec, kRamBase + 0x100));
  hart->step(5);
  EXPECT_EQ(hart->x(a0), 0x1234u);
  EXPECT_EQ(hart->x(a2), 0x1234u);
  EXPECT_EQ(csr(0x340), 5u);
  EXPECT_EQ(hart->x(a3), 0u);
  EXPECT_EQ(csr(kMcause), 2u);
  EXPECT_EQ(csr(kMepc), kRamBase + 16);
}

TEST_F(HartTest, MisaAndMstatusWarl) {
  const uint64_t misa = csr(0x301);
  EXPECT_EQ(misa >> 62, 2u);  // RV64
  for (char ext : std::string("IMAFDCSU")) EXPECT_TRUE(misa & (1u << (ext - 'A'))) << ext;
  // MPP = 2 is reserved: the write keeps the old value. UXL/SXL read as 64-bit.
  ASSERT_TRUE(hart->write_csr(kMstatus, 2ull << 11));
  EXPECT_EQ((csr(kMstatus) >> 11) & 3, 0u);
  EXPECT_EQ((csr(kMstatus) >> 32) & 0xf, 0xau);
  // FS = Dirty sets SD.
  ASSERT_TRUE(hart->write_csr(kMstatus, 3ull << 13));
  EXPECT_NE(csr(kMstatus) & Hart::kMstatusSD, 0u);
}

TEST_F(HartTest, PmpCsrsAreWarl) {
  ASSERT_TRUE(hart->write_csr(kPmpaddr0, ~0ull));
  EXPECT_EQ(csr(kPmpaddr0), (1ull << 54) - 1);
  ASSERT_TRUE(hart->write_csr(kPmpcfg0, 0x1f));  // NAPOT, RWX
  EXPECT_EQ(csr(kPmpcfg0), 0x1fu);
  ASSERT_TRUE(hart->write_csr(kPmpcfg0, 0x02));  // W without R is reserved
  EXPECT_EQ(csr(kPmpcfg0), 0x00u);
  EXPECT_FALSE(hart->read_csr(kPmpcfg0 + 1).has_value());  // odd pmpcfg: RV32 only
  ASSERT_TRUE(hart->write_csr(kPmpcfg0, 0x80 | 0x1f));     // locked
  ASSERT_TRUE(hart->write_csr(kPmpaddr0, 0x1000));
  EXPECT_EQ(csr(kPmpaddr0), (1ull << 54) - 1);
}

TEST_F(HartTest, CountersAndTime) {
  load({ADDI(a0, zero, 1), ADDI(a0, zero, 1), CSRRS(a1, kInstret, zero), CSRRS(a2, kTime, zero)});
  hart->step(4);
  EXPECT_EQ(hart->x(a1), 2u);
  EXPECT_LE(hart->x(a2), timebase.now());
  // U-mode with mcounteren = 0: rdtime is illegal.
  load({CSRRS(a2, kTime, zero)}, kRamBase + 0x100);
  hart->setup_user_mode();
  hart->set_pc(kRamBase + 0x100);
  EXPECT_EQ(hart->step(1).kind, StepResult::Kind::kTrap);
}

TEST_F(HartTest, WfiInUserModeIsIllegal) {
  load({WFI});
  hart->setup_user_mode();
  const StepResult r = hart->step(1);
  ASSERT_EQ(r.kind, StepResult::Kind::kTrap);
  EXPECT_EQ(r.trap.cause, static_cast<uint64_t>(Exception::kIllegalInsn));
}

TEST_F(HartTest, SaveRestoreRoundTrip) {
  hart->set_x(a0, 77);
  hart->set_f(3, 0x4000000000000000ull);
  ASSERT_TRUE(hart->write_csr(kSatp, (8ull << 60) | 0x80123));
  HartState s = hart->save();
  Hart other(*memory, bus, timebase, 0);
  ASSERT_TRUE(other.restore(s).ok());
  EXPECT_EQ(other.x(a0), 77u);
  EXPECT_EQ(other.f(3), 0x4000000000000000ull);
  EXPECT_EQ(other.read_csr(kSatp), (8ull << 60) | 0x80123);
  s.version = 99;
  const auto bad = other.restore(s);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message().find("version 99"), std::string::npos);
}

TEST(Disassembler, PrintsOperands) {
  EXPECT_EQ(disassemble(ADDI(a0, a0, 1), 0), "addi a0, a0, 1");
  EXPECT_EQ(disassemble(LD(a0, sp, 8), 0), "ld a0, 8(sp)");
  EXPECT_EQ(disassemble(BNE(a1, zero, -8), 0x1000), "bne a1, zero, 0xff8");
  EXPECT_EQ(disassemble(CSRRS(a0, kMstatus, zero), 0), "csrrs a0, mstatus, zero");
  EXPECT_EQ(disassemble(0x8082, 0), "c:jalr zero, 0(ra)");
  EXPECT_EQ(disassemble(FADD_D(1, 2, 3, 7), 0), "fadd.d f1, f2, f3");
  EXPECT_EQ(disassemble(0xffffffff, 0), "illegal 0xffffffff");
}

}  // namespace
}  // namespace doppel::rv64
