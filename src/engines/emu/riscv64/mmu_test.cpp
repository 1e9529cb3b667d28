// Sv39/Sv48 page-table walks, A/D updates, permission faults, SUM/MXR/MPRV, satp WARL.
#include <gtest/gtest.h>

#include "engines/emu/riscv64/test_asm.h"

namespace doppel::rv64 {
namespace {

using namespace testasm;

constexpr uint64_t kV = 1, kR = 2, kW = 4, kX = 8, kU = 16, kA = 64, kD = 128;
constexpr uint64_t kRoot = 0x8010'0000;   // level-2 (Sv39) table
constexpr uint64_t kL1 = 0x8010'1000;
constexpr uint64_t kL0 = 0x8010'2000;
constexpr uint64_t kData = 0x8030'0000;   // physical page behind VA 0x10000
constexpr uint64_t kDataVa = 0x10000;

uint64_t pte(uint64_t pa, uint64_t flags) { return ((pa >> 12) << 10) | flags; }

class MmuTest : public HartFixture {
 protected:
  void SetUp() override {
    HartFixture::SetUp();
    // 0x80000000 (1 GiB gigapage, identity, RWX, A/D set) holds code and the tables.
    put(kRoot + 2 * 8, pte(0x8000'0000, kV | kR | kW | kX | kA | kD));
    put(kRoot + 0 * 8, pte(kL1, kV));
    put(kL1 + 0 * 8, pte(kL0, kV));
    put(kL0 + 0x10 * 8, pte(kData, kV | kR | kW));  // no A/D yet
    put(kL0 + 0x11 * 8, pte(kData + 0x1000, kV | kR | kW | kU | kA | kD));  // user page
    put(kL0 + 0x12 * 8, pte(kData + 0x2000, kV | kX | kA));                 // execute-only
    ASSERT_TRUE(memory->write_le<uint64_t>(kData, 0x1122334455667788ull));
    ASSERT_TRUE(hart->write_csr(kMtvec, kRamBase + 0x800));
    load({JAL(zero, 0)}, kRamBase + 0x800);  // M handler spins
  }
  void put(uint64_t gpa, uint64_t v) { ASSERT_TRUE(memory->write_le<uint64_t>(gpa, v)); }
  void enter_s(uint64_t satp_mode = 8, uint64_t root = kRoot) {
    ASSERT_TRUE(hart->write_csr(kSatp, (satp_mode << 60) | (root >> 12)));
    hart->set_priv(Priv::kS);
  }
};

TEST_F(MmuTest, Sv39LoadSetsAccessedAndStoreSetsDirty) {
  enter_s();
  hart->set_x(a1, kDataVa);
  hart->set_x(a2, 0xabcdef);
  load({LD(a0, a1, 0)});
  hart->step(1);
  EXPECT_EQ(hart->x(a0), 0x1122334455667788ull);
  EXPECT_EQ(hart->priv(), Priv::kS);
  uint64_t leaf = mem64(kL0 + 0x10 * 8);
  EXPECT_TRUE(leaf & kA);
  EXPECT_FALSE(leaf & kD);
  load({SD(a2, a1, 8)}, kRamBase + 4);
  hart->step(1);
  leaf = mem64(kL0 + 0x10 * 8);
  EXPECT_TRUE(leaf & kD);
  EXPECT_EQ(mem64(kData + 8), 0xabcdefu);
}

TEST_F(MmuTest, UnmappedAddressRaisesLoadPageFaultWithTval) {
  enter_s();
  hart->set_x(a1, 0x20000);
  load({LD(a0, a1, 8)});
  hart->step(1);
  EXPECT_EQ(hart->priv(), Priv::kM);
  EXPECT_EQ(csr(kMcause), static_cast<uint64_t>(Exception::kLoadPageFault));
  EXPECT_EQ(csr(kMtval), 0x20008u);
  EXPECT_EQ(csr(kMepc), kRamBase);
  EXPECT_EQ((csr(kMstatus) >> 11) & 3, 1u);  // MPP = S
}

TEST_F(MmuTest, DelegatedStorePageFaultGoesToStvec) {
  ASSERT_TRUE(hart->write_csr(kMedeleg, 1u << 15));
  ASSERT_TRUE(hart->write_csr(kStvec, kRamBase + 0x900));
  load({JAL(zero, 0)}, kRamBase + 0x900);
  put(kL0 + 0x13 * 8, pte(kData + 0x3000, kV | kR | kA));  // read-only
  enter_s();
  hart->set_x(a1, 0x13000);
  load({SD(a0, a1, 0)});
  hart->step(1);
  EXPECT_EQ(hart->priv(), Priv::kS);
  EXPECT_EQ(hart->pc(), kRamBase + 0x900);
  EXPECT_EQ(csr(kScause), static_cast<uint64_t>(Exception::kStorePageFault));
  EXPECT_EQ(csr(kStval), 0x13000u);
  EXPECT_NE(csr(kSstatus) & Hart::kMstatusSPP, 0u);  // came from S
}

TEST_F(MmuTest, SupervisorNeedsSumForUserPages) {
  enter_s();
  hart->set_x(a1, 0x11000);
  load({LD(a0, a1, 0)});
  hart->step(1);
  EXPECT_EQ(csr(kMcause), static_cast<uint64_t>(Exception::kLoadPageFault));
  // With SUM the same load succeeds.
  hart->set_pc(kRamBase);
  ASSERT_TRUE(hart->write_csr(kMstatus, csr(kMstatus) | Hart::kMstatusSUM));
  hart->set_priv(Priv::kS);
  ASSERT_TRUE(memory->write_le<uint64_t>(kData + 0x1000, 99));
  hart->step(1);
  EXPECT_EQ(hart->x(a0), 99u);
  EXPECT_EQ(hart->priv(), Priv::kS);
}

TEST_F(MmuTest, UserCannotAccessSupervisorPages) {
  enter_s();
  hart->setup_user_mode();  // also sets satp = 0 -> re-enable translation
  ASSERT_TRUE(hart->write_csr(kSatp, (8ull << 60) | (kRoot >> 12)));
  // Code for U must be on a U page: map VA 0x14000 -> code page, U|X.
  put(kL0 + 0x14 * 8, pte(kRamBase + 0x3000, kV | kX | kU | kA));
  load({LD(a0, a1, 0)}, kRamBase + 0x3000);
  hart->set_pc(0x14000);
  hart->set_x(a1, kDataVa);
  const StepResult r = hart->step(1);
  ASSERT_EQ(r.kind, StepResult::Kind::kTrap);
  EXPECT_EQ(r.trap.cause, static_cast<uint64_t>(Exception::kLoadPageFault));
  EXPECT_EQ(r.trap.pc, 0x14000u);
}

TEST_F(MmuTest, ExecuteOnlyPageNeedsMxrToRead) {
  enter_s();
  hart->set_x(a1, 0x12000);
  load({LD(a0, a1, 0)});
  hart->step(1);
  EXPECT_EQ(csr(kMcause), static_cast<uint64_t>(Exception::kLoadPageFault));
  hart->set_pc(kRamBase);
  ASSERT_TRUE(hart->write_csr(kMstatus, csr(kMstatus) | Hart::kMstatusMXR));
  hart->set_priv(Priv::kS);
  ASSERT_TRUE(memory->write_le<uint64_t>(kData + 0x2000, 7));
  hart->step(1);
  EXPECT_EQ(hart->x(a0), 7u);
}

TEST_F(MmuTest, FetchFromNonExecutablePageFaults) {
  enter_s();
  hart->set_pc(kDataVa);
  hart->step(1);
  EXPECT_EQ(csr(kMcause), static_cast<uint64_t>(Exception::kInsnPageFault));
  EXPECT_EQ(csr(kMtval), kDataVa);
}

TEST_F(MmuTest, NonCanonicalAddressFaults) {
  enter_s();
  hart->set_x(a1, 0x0000'0040'0000'0000ull);  // bit 38 clear but bit 39 set: not Sv39
  load({LD(a0, a1, 0)});
  hart->step(1);
  EXPECT_EQ(csr(kMcause), static_cast<uint64_t>(Exception::kLoadPageFault));
}

TEST_F(MmuTest, UnsupportedSatpModeLeavesSatpUnchanged) {
  ASSERT_TRUE(hart->write_csr(kSatp, (8ull << 60) | 0x80100));
  ASSERT_TRUE(hart->write_csr(kSatp, (10ull << 60) | 0x12345));  // Sv57: not supported
  EXPECT_EQ(csr(kSatp), (8ull << 60) | 0x80100);
  ASSERT_TRUE(hart->write_csr(kSatp, (9ull << 60) | 0x80100));  // Sv48 is
  EXPECT_EQ(csr(kSatp) >> 60, 9u);
}

TEST_F(MmuTest, Sv48WalksFourLevels) {
  constexpr uint64_t kRoot48 = 0x8010'4000;
  put(kRoot48 + 0, pte(kRoot, kV));  // level 3 -> the Sv39 root as level 2
  enter_s(9, kRoot48);
  hart->set_x(a1, kDataVa);
  load({LD(a0, a1, 0)});
  // Code at 0x80000000 is VPN[3] = 0, VPN[2] = 2: reachable through the same tables.
  hart->step(1);
  EXPECT_EQ(hart->x(a0), 0x1122334455667788ull);
}

TEST_F(MmuTest, MprvTranslatesMachineLoads) {
  ASSERT_TRUE(hart->write_csr(kSatp, (8ull << 60) | (kRoot >> 12)));
  ASSERT_TRUE(hart->write_csr(kMstatus, Hart::kMstatusMPRV | (1ull << 11)));  // MPP = S
  hart->set_x(a1, kDataVa);
  load({LD(a0, a1, 0)});
  hart->step(1);
  EXPECT_EQ(hart->x(a0), 0x1122334455667788ull);
  EXPECT_EQ(hart->priv(), Priv::kM);
}

TEST_F(MmuTest, SfenceVmaMakesNewMappingsVisible) {
  enter_s();
  hart->set_x(a1, kDataVa);
  ASSERT_TRUE(memory->write_le<uint64_t>(kData + 0x5000, 5));
  load({LD(a0, a1, 0), SFENCE_VMA, LD(a2, a1, 0)});
  hart->step(1);
  EXPECT_EQ(hart->x(a0), 0x1122334455667788ull);
  put(kL0 + 0x10 * 8, pte(kData + 0x5000, kV | kR | kW | kA | kD));
  hart->step(2);
  EXPECT_EQ(hart->x(a2), 5u);
}

TEST_F(MmuTest, PageTableOutsideRamIsAnAccessFault) {
  enter_s(8, 0x4000'0000);  // root table where there is no RAM
  hart->set_x(a1, kDataVa);
  hart->set_pc(kRamBase);
  hart->step(1);  // even the fetch walks through the missing table
  EXPECT_EQ(csr(kMcause), static_cast<uint64_t>(Exception::kInsnAccessFault));
}

// Dirty pages for diff snapshots: a store marks its page on the slow path, before the page
// enters the write TLB; GuestMemory::clear_dirty() (with the hart paused between steps)
// makes the hart drop its write entries, so the next store to the page marks it again.
TEST_F(MmuTest, StoresMarkTheirPageDirtyEvenThroughACachedTlbEntry) {
  hart->set_x(a1, kData);
  hart->set_x(a2, 7);
  load({SD(a2, a1, 0), SD(a2, a1, 8), SD(a2, a1, 16), SD(a2, a1, 24)});
  memory->clear_dirty();
  hart->step(1);
  EXPECT_EQ(memory->dirty_pages(), std::vector<uint64_t>{kData});
  memory->clear_dirty();  // the page is in the write TLB now
  hart->step(1);
  EXPECT_EQ(memory->dirty_pages(), std::vector<uint64_t>{kData})
      << "a write TLB entry filled before clear_dirty() must not skip the marking";
  hart->step(2);  // TLB hits: still that page only
  EXPECT_EQ(memory->dirty_pages(), std::vector<uint64_t>{kData});
  EXPECT_EQ(mem64(kData + 24), 7u);
}

TEST_F(MmuTest, StoreAcrossAPageBoundaryMarksBothPages) {
  hart->set_x(a1, kData + 0xffc);
  hart->set_x(a2, ~0ull);
  load({SD(a2, a1, 0)});
  memory->clear_dirty();
  hart->step(1);
  EXPECT_EQ(memory->dirty_pages(), (std::vector<uint64_t>{kData, kData + 0x1000}));
}

TEST_F(MmuTest, AmoAndScMarkTheirPageDirtyEvenThroughACachedTlbEntry) {
  hart->set_x(a1, kData);
  hart->set_x(a2, 1);
  load({AMOADD_D(a0, a2, a1), AMOADD_D(a0, a2, a1), LR_D(a3, a1), SC_D(a4, a2, a1)});
  memory->clear_dirty();
  hart->step(1);
  EXPECT_TRUE(memory->is_dirty(kData));
  memory->clear_dirty();
  hart->step(1);  // the page is cached for writing
  EXPECT_TRUE(memory->is_dirty(kData));
  memory->clear_dirty();
  hart->step(1);  // LR only reads
  EXPECT_FALSE(memory->is_dirty(kData));
  hart->step(1);
  EXPECT_EQ(hart->x(a4), 0u) << "SC succeeded";
  EXPECT_TRUE(memory->is_dirty(kData));
}

TEST_F(MmuTest, PageWalkSettingAccessedAndDirtyMarksThePageTable) {
  enter_s();
  hart->set_x(a1, kDataVa);
  load({SD(a2, a1, 0)});
  memory->clear_dirty();
  hart->step(1);
  EXPECT_TRUE(mem64(kL0 + 0x10 * 8) & kD);
  EXPECT_EQ(memory->dirty_pages(), (std::vector<uint64_t>{kL0, kData}));
}

}  // namespace
}  // namespace doppel::rv64
