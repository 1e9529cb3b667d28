#include "vmm/board_riscv64.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <vector>

#include "base/bits.h"
#include "base/unique_fd.h"
#include "vmm/exit_codes.h"
#include "vmm/test_files.h"
#include "vmm/machine.h"

namespace doppel {
namespace {

using test::TempFile;

// M-mode "firmware": hart 0 writes "ok\n" to the UART, then the word at `cmd` to the
// sifive,test finisher; every other hart parks in WFI. (riscv64-linux-gnu-as output.)
std::vector<uint32_t> firmware_words(uint32_t command) {
  return {
      0x02051863,  // bnez a0, park
      0x100002b7,  // lui t0, 0x10000        (UART)
      0x06f00313,  // li t1, 'o'
      0x00628023,  // sb t1, 0(t0)
      0x06b00313,  // li t1, 'k'
      0x00628023,  // sb t1, 0(t0)
      0x00a00313,  // li t1, '\n'
      0x00628023,  // sb t1, 0(t0)
      0x001002b7,  // lui t0, 0x100          (finisher)
      0x00000397,  // auipc t2, 0
      0x0143a303,  // lw t1, 20(t2)          (cmd)
      0x0062a023,  // sw t1, 0(t0)
      0x10500073,  // park: wfi
      0xffdff06f,  // j park
      command,     // cmd
  };
}


struct BootResult {
  int code = -1;
  std::string output;
};

BootResult boot(uint32_t command, unsigned cpus) {
  const auto words = firmware_words(command);
  TempFile firmware(words.data(), words.size() * 4);
  std::vector<uint8_t> image(4096, 0);  // a valid Image header; never executed
  store_le<uint64_t>(&image[8], 0x200000);
  store_le<uint64_t>(&image[16], 4096);
  std::memcpy(&image[56], "RSC\x05", 4);
  TempFile kernel(image.data(), image.size());

  VmConfig config;
  config.cpus = cpus;
  config.memory = 64ull << 20;
  config.firmware = firmware.path();
  config.kernel = kernel.path();
  config.cmdline = "console=ttyS0";

  int fds[2];
  EXPECT_EQ(pipe(fds), 0);
  UniqueFd r(fds[0]), w(fds[1]);
  BootResult run;
  {
    auto console = Console::create({-1, w.get(), true});
    EXPECT_TRUE(console.ok());
    auto machine = Machine::create(config, **console);
    EXPECT_TRUE(machine.ok()) << machine.error().message();
    if (!machine.ok()) return run;
    auto code = (*machine)->run();
    EXPECT_TRUE(code.ok());
    run.code = code.ok() ? *code : -1;
  }
  w.reset();
  char buf[256];
  ssize_t n;
  while ((n = read(r.get(), buf, sizeof buf)) > 0) run.output.append(buf, static_cast<size_t>(n));
  return run;
}

TEST(BoardRiscv64, GuestPowersOffThroughTheFinisher) {
  const BootResult run = boot(0x5555, 1);
  EXPECT_EQ(run.output, "ok\n");
  EXPECT_EQ(run.code, kExitPowerOff);
}

TEST(BoardRiscv64, AllHartsStopWhenOneHartPowersOff) {
  // Harts 1..3 sleep in WFI forever: run() returns only if the machine kicks them.
  const BootResult run = boot(0x5555, 4);
  EXPECT_EQ(run.output, "ok\n");
  EXPECT_EQ(run.code, kExitPowerOff);
}

TEST(BoardRiscv64, RebootAndFailureBecomeTheirExitCodes) {
  EXPECT_EQ(boot(0x7777, 1).code, kExitReboot);
  EXPECT_EQ(boot((7u << 16) | 0x3333, 2).code, kExitCrash);
}

TEST(BoardRiscv64, DeviceTreeIsBuiltForTheConfig) {
  const auto words = firmware_words(0x5555);
  TempFile firmware(words.data(), words.size() * 4);
  std::vector<uint8_t> image(4096, 0);
  std::memcpy(&image[56], "RSC\x05", 4);
  TempFile kernel(image.data(), image.size());
  VmConfig config;
  config.cpus = 3;
  config.memory = 32ull << 20;
  config.firmware = firmware.path();
  config.kernel = kernel.path();
  auto console = Console::create({-1, -1, true});
  ASSERT_TRUE(console.ok());
  auto machine = Machine::create(config, **console);
  ASSERT_TRUE(machine.ok()) << machine.error().message();
  const auto& dtb = static_cast<BoardRiscv64&>((*machine)->board()).device_tree();
  ASSERT_GE(dtb.size(), 4u);
  EXPECT_EQ(load_le<uint32_t>(dtb.data()), 0xedfe0dd0u);  // FDT magic, big-endian
}

TEST(BoardRiscv64, MissingFirmwareIsAClearError) {
  VmConfig config;
  config.firmware = "/nonexistent/fw_dynamic.bin";
  config.kernel = "/nonexistent/Image";
  auto console = Console::create({-1, -1, true});
  ASSERT_TRUE(console.ok());
  auto machine = Machine::create(config, **console);
  ASSERT_FALSE(machine.ok());
  EXPECT_NE(machine.error().message().find("/nonexistent/"), std::string::npos);
}

}  // namespace
}  // namespace doppel
