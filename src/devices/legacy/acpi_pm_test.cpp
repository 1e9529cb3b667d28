// The ACPI PM register block as Linux's ACPICA drives it: clear status, program enables,
// then the two-step S5 entry (SLP_TYP, then SLP_TYP|SLP_EN) on PM1a_CNT.
#include "devices/legacy/acpi_pm.h"

#include <gtest/gtest.h>

#include <vector>

namespace doppel {
namespace {

struct Recorder {
  std::vector<AcpiPm::Action> actions;
  uint64_t now_ns = 0;
  AcpiPm make() {
    return AcpiPm(
        5, 0x0e, [this](AcpiPm::Action a) { actions.push_back(a); },
        [this] { return now_ns; });
  }
};

TEST(AcpiPm, S5EntryPowersOffOnlyWithSlpEn) {
  Recorder r;
  AcpiPm pm = r.make();
  // ACPICA's acpi_hw_legacy_sleep: read PM1a_CNT, write SLP_TYP, then SLP_TYP | SLP_EN.
  const uint64_t cnt = pm.read(AcpiPm::kPm1aControl, 2);
  EXPECT_EQ(cnt & AcpiPm::kSciEn, AcpiPm::kSciEn) << "always in ACPI mode";
  pm.write(AcpiPm::kPm1aControl, 2, cnt | (5u << 10));
  EXPECT_TRUE(r.actions.empty()) << "SLP_TYP alone does not sleep";
  pm.write(AcpiPm::kPm1aControl, 2, cnt | (5u << 10) | AcpiPm::kSlpEn);
  ASSERT_EQ(r.actions.size(), 1u);
  EXPECT_EQ(r.actions[0], AcpiPm::Action::kPowerOff);
  EXPECT_EQ(pm.read(AcpiPm::kPm1aControl, 2) & AcpiPm::kSlpEn, 0u) << "SLP_EN is write-only";
}

TEST(AcpiPm, OtherSleepTypesAndByteWritesOfTheHighByte) {
  Recorder r;
  AcpiPm pm = r.make();
  pm.write(AcpiPm::kPm1aControl + 1, 1, (3u << 2) | 0x20);  // S3 through the high byte
  EXPECT_TRUE(r.actions.empty()) << "only S5 is supported";
  pm.write(AcpiPm::kPm1aControl + 1, 1, (5u << 2) | 0x20);  // S5 through the high byte
  ASSERT_EQ(r.actions.size(), 1u);
  EXPECT_EQ(r.actions[0], AcpiPm::Action::kPowerOff);
}

TEST(AcpiPm, ResetRegisterNeedsTheFadtValue) {
  Recorder r;
  AcpiPm pm = r.make();
  pm.write(AcpiPm::kReset, 1, 0x01);
  EXPECT_TRUE(r.actions.empty());
  pm.write(AcpiPm::kReset, 1, 0x0e);
  ASSERT_EQ(r.actions.size(), 1u);
  EXPECT_EQ(r.actions[0], AcpiPm::Action::kReset);
}

TEST(AcpiPm, EnableSticksStatusClearsByWritingOnes) {
  Recorder r;
  AcpiPm pm = r.make();
  pm.write(AcpiPm::kPm1aEnable, 2, 0x0120);  // GBL_EN, PWRBTN_EN
  EXPECT_EQ(pm.read(AcpiPm::kPm1aEnable, 2), 0x0120u);
  // PM1 event block as one 32-bit access: status low, enable high.
  EXPECT_EQ(pm.read(AcpiPm::kPm1aStatus, 4), 0x01200000u);
  auto state = pm.save();
  state.pm1_sts = 0x8101;  // WAK_STS, PWRBTN_STS, TMR_STS
  ASSERT_TRUE(pm.restore(state).ok());
  pm.write(AcpiPm::kPm1aStatus, 2, 0x0100);
  EXPECT_EQ(pm.read(AcpiPm::kPm1aStatus, 2), 0x8001u);
  state.version = 99;
  EXPECT_FALSE(pm.restore(state).ok());
}

TEST(AcpiPm, PmTimerCountsAt3579545HzAndWrapsAt32Bits) {
  Recorder r;
  AcpiPm pm = r.make();
  r.now_ns = 1'000'000'000;  // one second
  EXPECT_EQ(pm.read(AcpiPm::kPmTimer, 4), 3579545u);
  EXPECT_EQ(pm.read(AcpiPm::kPmTimer + 2, 2), 3579545u >> 16) << "byte-addressable";
  // 2^32 ticks take 1199.9 s; at 1200 s the counter has wrapped.
  r.now_ns = 1200ull * 1'000'000'000;
  EXPECT_EQ(pm.read(AcpiPm::kPmTimer, 4), (1200ull * 3579545) & 0xffffffffu);
  pm.write(AcpiPm::kPmTimer, 4, 0);  // read-only
  EXPECT_EQ(pm.read(AcpiPm::kPmTimer, 4), (1200ull * 3579545) & 0xffffffffu);
  EXPECT_EQ(pm.read(AcpiPm::kSize, 4), 0u) << "outside the block";
}

}  // namespace
}  // namespace doppel
