// The Machine's lifecycle on the riscv64 board with a tiny M-mode firmware: hart 0 counts
// in RAM as fast as it can, the other harts sleep in WFI. What a user notices: while paused
// the counter and the guest's clock stand still, after resume both go on, and a stop
// ends a paused machine too.
#include "vmm/machine.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <thread>

#include "engines/emu/riscv64/clint.h"
#include "engines/emu/riscv64/memory_map.h"
#include "vmm/exit_codes.h"
#include "vmm/test_files.h"

namespace doppel {
namespace {

using test::TempDir;
using test::TempFile;

using namespace std::chrono_literals;

// hart 0: t0 = &counter; loop { counter++ }   other harts: wfi forever.
// (riscv64-linux-gnu-as output.)
constexpr uint32_t kSpinFirmware[] = {
    0x00051e63,  // bnez a0, park
    0x00000297,  // auipc t0, 0
    0x10428293,  // addi t0, t0, 0x104   (counter at firmware + 0x108)
    0x0002b303,  // loop: ld t1, 0(t0)
    0x00130313,  // addi t1, t1, 1
    0x0062b023,  // sd t1, 0(t0)
    0xff5ff06f,  // j loop
    0x10500073,  // park: wfi
    0xffdff06f,  // j park
};
constexpr uint64_t kCounter = rv64::memmap::kRamBase + 0x108;


class MachineLifecycle : public ::testing::TestWithParam<unsigned> {
 protected:
  void SetUp() override {
    std::vector<uint8_t> image(4096, 0);  // a valid Image header; never executed
    store_le<uint64_t>(&image[8], 0x200000);
    store_le<uint64_t>(&image[16], 4096);
    std::memcpy(&image[56], "RSC\x05", 4);
    m_firmware = std::make_unique<TempFile>(kSpinFirmware, sizeof kSpinFirmware);
    m_kernel = std::make_unique<TempFile>(image.data(), image.size());
    VmConfig config;
    config.cpus = GetParam();
    config.memory = 64ull << 20;
    config.firmware = m_firmware->path();
    config.kernel = m_kernel->path();
    config.cmdline = "console=ttyS0";
    auto console = Console::create({-1, -1, true});
    ASSERT_TRUE(console.ok());
    m_console = std::move(*console);
    auto machine = Machine::create(config, *m_console);
    ASSERT_TRUE(machine.ok()) << machine.error().message();
    m_machine = std::move(*machine);
    m_run = std::async(std::launch::async, [this] { return m_machine->run(); });
  }
  void TearDown() override {
    if (m_machine) m_machine->request_stop(kExitQuit, "test over");
    if (m_run.valid()) m_run.wait();
  }
  uint64_t counter() { return m_machine->board().memory().read_le<uint64_t>(kCounter).value_or(0); }
  uint64_t mtime() {
    uint64_t v = 0;
    EXPECT_TRUE(m_machine->board().mmio().read(
        rv64::memmap::kClintBase + rv64::Clint::kMtime, 8, v));
    return v;
  }
  // Waits until the counter has moved (the machine is running guest code).
  void wait_running() {
    const uint64_t start = counter();
    for (int i = 0; i < 2000 && counter() == start; ++i) std::this_thread::sleep_for(1ms);
    ASSERT_NE(counter(), start) << "hart 0 never ran";
  }

  std::unique_ptr<TempFile> m_firmware, m_kernel;
  std::unique_ptr<Console> m_console;
  std::unique_ptr<Machine> m_machine;
  std::future<Result<int>> m_run;
};

TEST_P(MachineLifecycle, PauseStopsTheGuestAndItsClockResumeGoesOn) {
  wait_running();
  EXPECT_EQ(m_machine->state(), VmState::kRunning);
  ASSERT_TRUE(m_machine->pause().ok());
  EXPECT_EQ(m_machine->state(), VmState::kPaused);

  const uint64_t c0 = counter(), t0 = mtime();
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(counter(), c0) << "a paused hart ran guest code";
  EXPECT_EQ(mtime(), t0) << "the guest's clock moved while paused";

  ASSERT_TRUE(m_machine->resume().ok());
  EXPECT_EQ(m_machine->state(), VmState::kRunning);
  wait_running();
  // The clock goes on from where it stood: 50 ms of pause are not in it.
  const uint64_t t1 = mtime();
  EXPECT_GE(t1, t0);
  EXPECT_LT(t1 - t0, 40 * rv64::kTimebaseHz / 1000) << "mtime jumped by the paused time";
}

TEST_P(MachineLifecycle, PauseAndResumeTwiceAreRefused) {
  wait_running();
  EXPECT_FALSE(m_machine->resume().ok());
  ASSERT_TRUE(m_machine->pause().ok());
  auto again = m_machine->pause();
  ASSERT_FALSE(again.ok());
  EXPECT_NE(again.error().message().find("already paused"), std::string::npos);
  ASSERT_TRUE(m_machine->resume().ok());
}

TEST_P(MachineLifecycle, SnapshotNeedsAPausedMachine) {
  wait_running();
  auto r = m_machine->create_snapshot({SnapshotType::kFull, "/tmp/x-state", "/tmp/x-mem", ""});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("paused"), std::string::npos) << r.error().message();
}

TEST_P(MachineLifecycle, StopEndsAPausedMachine) {
  wait_running();
  ASSERT_TRUE(m_machine->pause().ok());
  m_machine->request_stop(kExitQuit, "stopped while paused");
  ASSERT_EQ(m_run.wait_for(5s), std::future_status::ready) << "run() did not return";
  auto code = m_run.get();
  ASSERT_TRUE(code.ok());
  EXPECT_EQ(*code, kExitQuit);
  EXPECT_EQ(m_machine->state(), VmState::kStopped);
  EXPECT_FALSE(m_machine->resume().ok());
}

TEST_P(MachineLifecycle, ManyPausesInARowAllPark) {
  wait_running();
  for (int i = 0; i < 50; ++i) {
    ASSERT_TRUE(m_machine->pause().ok()) << i;
    const uint64_t c = counter();
    EXPECT_EQ(counter(), c);
    ASSERT_TRUE(m_machine->resume().ok()) << i;
  }
}


uint64_t file_u64(const std::string& path, uint64_t offset) {
  std::ifstream in(path, std::ios::binary);
  in.seekg(static_cast<std::streamoff>(offset));
  uint64_t v = 0;
  in.read(reinterpret_cast<char*>(&v), sizeof v);
  return v;
}

// Runs a restored machine until its counter passes `from`, then stops it; returns the
// counter it saw first (right after the restore).
uint64_t run_restored(Machine& m, uint64_t from) {
  auto read = [&] { return m.board().memory().read_le<uint64_t>(kCounter).value_or(0); };
  const uint64_t first = read();
  auto run = std::async(std::launch::async, [&] { return m.run(); });
  for (int i = 0; i < 5000 && read() <= from; ++i) std::this_thread::sleep_for(1ms);
  m.request_stop(kExitQuit, "test over");
  EXPECT_TRUE(run.get().ok());
  EXPECT_GT(read(), from) << "the restored hart did not run on";
  return first;
}

TEST_P(MachineLifecycle, FullSnapshotRestoresWhereItStopped) {
  TempDir dir;
  wait_running();
  ASSERT_TRUE(m_machine->pause().ok());
  const uint64_t c = counter();
  auto r = m_machine->create_snapshot(
      {SnapshotType::kFull, dir / "state", dir / "memory", dir / "vm.json"});
  ASSERT_TRUE(r.ok()) << r.error().message();
  // The memory file holds the counter as it was at the pause.
  EXPECT_EQ(file_u64(dir / "memory", kCounter - rv64::memmap::kRamBase), c);

  auto restored = Machine::restore(m_machine->config(), *m_console,
                                   {dir / "state", dir / "memory", {}}, true);
  ASSERT_TRUE(restored.ok()) << restored.error().message();
  EXPECT_EQ(run_restored(**restored, c + 1000), c);
  // Copy-on-write: what the restored guest wrote is not in the file.
  EXPECT_EQ(file_u64(dir / "memory", kCounter - rv64::memmap::kRamBase), c);
  // The original goes on too.
  ASSERT_TRUE(m_machine->resume().ok());
  wait_running();
}

TEST_P(MachineLifecycle, DiffSnapshotOnItsBaseRestoresTheLaterState) {
  TempDir dir;
  wait_running();
  ASSERT_TRUE(m_machine->pause().ok());
  auto diff_first = m_machine->create_snapshot({SnapshotType::kDiff, dir / "d", dir / "dm", ""});
  ASSERT_FALSE(diff_first.ok()) << "a diff without a base was accepted";
  ASSERT_TRUE(m_machine->create_snapshot({SnapshotType::kFull, dir / "state", dir / "memory", ""}).ok());
  ASSERT_TRUE(m_machine->resume().ok());
  wait_running();
  ASSERT_TRUE(m_machine->pause().ok());
  const uint64_t c = counter();
  auto r = m_machine->create_snapshot(
      {SnapshotType::kDiff, dir / "diff-state", dir / "memory.diff", ""});
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_LT(std::filesystem::file_size(dir / "memory.diff"), 1u << 20)
      << "a diff of a counter loop holds only the pages written";

  auto restored = Machine::restore(m_machine->config(), *m_console,
                                   {dir / "diff-state", dir / "memory", {dir / "memory.diff"}}, true);
  ASSERT_TRUE(restored.ok()) << restored.error().message();
  EXPECT_EQ(run_restored(**restored, c + 1000), c);
}

TEST_P(MachineLifecycle, ACorruptOrForeignStateFileIsRefused) {
  TempDir dir;
  wait_running();
  ASSERT_TRUE(m_machine->pause().ok());
  ASSERT_TRUE(m_machine->create_snapshot({SnapshotType::kFull, dir / "state", dir / "memory", ""}).ok());
  {
    std::fstream f(dir / "state", std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(40);
    f.put('\x5a');
  }
  auto corrupt = Machine::restore(m_machine->config(), *m_console, {dir / "state", dir / "memory", {}}, true);
  ASSERT_FALSE(corrupt.ok());
  EXPECT_NE(corrupt.error().message().find(dir / "state"), std::string::npos)
      << corrupt.error().message();

  VmConfig x86 = m_machine->config();
  x86.arch = Arch::kX86_64;
  x86.engine = EngineKind::kKvm;
  ASSERT_TRUE(m_machine->create_snapshot({SnapshotType::kFull, dir / "state", dir / "memory", ""}).ok());
  auto foreign = Machine::restore(x86, *m_console, {dir / "state", dir / "memory", {}}, true);
  ASSERT_FALSE(foreign.ok());
  EXPECT_NE(foreign.error().message().find("riscv64"), std::string::npos) << foreign.error().message();
  ASSERT_TRUE(m_machine->resume().ok());
}

// 1 hart spinning; 4 harts: one spinning, three in WFI (a pause must wake them to park).
INSTANTIATE_TEST_SUITE_P(Harts, MachineLifecycle, ::testing::Values(1u, 4u));

}  // namespace
}  // namespace doppel
