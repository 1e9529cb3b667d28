// EmuEngine through the Vcpu interface: kick, WFI sleep and wake-up, reset state.
#include "engines/emu/riscv64/emu_engine.h"

#include <chrono>
#include <future>
#include <thread>

#include <gtest/gtest.h>

#include "engines/emu/riscv64/test_asm.h"

namespace doppel::rv64 {
namespace {

using namespace testasm;
using namespace std::chrono_literals;

class EmuEngineTest : public HartFixture {
 protected:
  void SetUp() override {
    HartFixture::SetUp();
    auto e = EmuEngine::create(*memory, bus, timebase, 2);
    ASSERT_TRUE(e.ok()) << e.error().message();
    engine = e.release_value();
  }
  std::unique_ptr<EmuEngine> engine;
};

TEST_F(EmuEngineTest, RejectsBadHartCountsAndIndexes) {
  EXPECT_FALSE(EmuEngine::create(*memory, bus, timebase, 0).ok());
  const auto bad = engine->create_vcpu(2);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message().find("vcpu 2"), std::string::npos);
  ASSERT_TRUE(engine->create_vcpu(0).ok());
  EXPECT_FALSE(engine->create_vcpu(0).ok());  // twice
}

TEST_F(EmuEngineTest, ResetStateAndKick) {
  load({ADDI(t0, t0, 1), JAL(zero, -4)});
  engine->set_reset_state(1, HartResetState{kRamBase, 1, 0x82200000, 0x1234});
  auto vcpu = engine->create_vcpu(1);
  ASSERT_TRUE(vcpu.ok());
  EXPECT_EQ(engine->hart(1).x(a0), 1u);
  EXPECT_EQ(engine->hart(1).x(a1), 0x82200000u);
  EXPECT_EQ(engine->hart(1).x(a2), 0x1234u);
  auto done = std::async(std::launch::async, [&] { return (*vcpu)->run(); });
  std::this_thread::sleep_for(20ms);
  (*vcpu)->kick();
  ASSERT_EQ(done.wait_for(5s), std::future_status::ready);
  auto exit = done.get();
  ASSERT_TRUE(exit.ok());
  EXPECT_EQ(exit->reason, VcpuExit::Reason::kKicked);
  EXPECT_GT(engine->hart(1).x(t0), 1000u);  // it was running
}

TEST_F(EmuEngineTest, WfiSleepsUntilAnInterruptIsPending) {
  // mie = MSIE; MIE stays off, so the interrupt wakes WFI without being taken.
  load({CSRRW(zero, kMie, t1), WFI, ADDI(a0, a0, 1), JAL(zero, -8)});
  engine->set_reset_state(0, HartResetState{kRamBase, 0, 0, 0});
  auto vcpu = engine->create_vcpu(0);
  ASSERT_TRUE(vcpu.ok());
  Hart& h = engine->hart(0);
  h.set_x(t1, kMipMSIP);
  auto done = std::async(std::launch::async, [&] { return (*vcpu)->run(); });
  std::this_thread::sleep_for(50ms);
  // Asleep in the first WFI: nothing retired past it, and the thread is not spinning.
  EXPECT_EQ(h.instret(), 2u);
  engine->pins(0).set(kMipMSIP, true);  // now WFI completes at once every time
  std::this_thread::sleep_for(20ms);
  engine->pins(0).set(kMipMSIP, false);
  (*vcpu)->kick();
  ASSERT_EQ(done.wait_for(5s), std::future_status::ready);
  EXPECT_EQ(done.get()->reason, VcpuExit::Reason::kKicked);
  EXPECT_GT(h.x(a0), 10u);
  EXPECT_EQ(h.priv(), Priv::kM);
}

TEST_F(EmuEngineTest, KickWakesASleepingHart) {
  load({WFI, JAL(zero, -4)});
  auto vcpu = engine->create_vcpu(0);
  ASSERT_TRUE(vcpu.ok());
  engine->hart(0).set_pc(kRamBase);
  auto done = std::async(std::launch::async, [&] { return (*vcpu)->run(); });
  std::this_thread::sleep_for(20ms);
  (*vcpu)->kick();
  ASSERT_EQ(done.wait_for(5s), std::future_status::ready);
  EXPECT_EQ(done.get()->reason, VcpuExit::Reason::kKicked);
}

}  // namespace
}  // namespace doppel::rv64
