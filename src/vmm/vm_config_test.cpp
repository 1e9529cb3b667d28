#include "vmm/vm_config.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

namespace doppel {
namespace {

using json = nlohmann::json;

TEST(MemorySize, UnderstandsSuffixesAndBareMiB) {
  EXPECT_EQ(*parse_memory_size("512M"), 512ull << 20);
  EXPECT_EQ(*parse_memory_size("2G"), 2ull << 30);
  EXPECT_EQ(*parse_memory_size("65536K"), 64ull << 20);
  EXPECT_EQ(*parse_memory_size("256"), 256ull << 20);
  EXPECT_EQ(*parse_memory_size("1GiB"), 1ull << 30);
}

TEST(MemorySize, RejectsGarbage) {
  for (const char* bad : {"", "M", "12X", "-5M", "1.5G", "99999999999999999999G"}) {
    auto r = parse_memory_size(bad);
    EXPECT_FALSE(r.ok()) << bad;
  }
  EXPECT_NE(parse_memory_size("12X").error().message().find("unknown suffix 'X'"), std::string::npos);
}

TEST(DiskSpec, PathAndReadOnlyFlag) {
  auto rw = parse_disk_spec("/var/disk.img");
  ASSERT_TRUE(rw.ok());
  EXPECT_EQ(rw->path, "/var/disk.img");
  EXPECT_FALSE(rw->read_only);
  auto ro = parse_disk_spec("/var/disk.img,ro");
  ASSERT_TRUE(ro.ok());
  EXPECT_TRUE(ro->read_only);
  EXPECT_FALSE(parse_disk_spec(",ro").ok());
  auto bad = parse_disk_spec("/d.img,readonly");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message().find("unknown option 'readonly'"), std::string::npos);
}

TEST(NetSpec, TapAndOptionalMac) {
  auto net = parse_net_spec("tap=tap0,mac=52:54:00:ab:cd:ef");
  ASSERT_TRUE(net.ok());
  EXPECT_EQ(net->tap, "tap0");
  ASSERT_TRUE(net->mac.has_value());
  EXPECT_EQ((*net->mac)[5], 0xef);
  EXPECT_FALSE(parse_net_spec("tap=tap0")->mac.has_value());
  EXPECT_FALSE(parse_net_spec("mac=52:54:00:ab:cd:ef").ok()) << "tap= is required";
  EXPECT_FALSE(parse_net_spec("tap=tap0,mac=52:54:00:ab:cd").ok());
  EXPECT_FALSE(parse_net_spec("tap=tap0,mac=01:54:00:ab:cd:ef").ok()) << "multicast";
  auto zero = parse_net_spec("tap=tap0,mac=00:00:00:00:00:00");
  ASSERT_FALSE(zero.ok());
  EXPECT_NE(zero.error().message().find("the all-zero MAC address"), std::string::npos);
  EXPECT_FALSE(parse_net_spec("tap=averyveryverylongname").ok());
}

class VmFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    m_dir = std::filesystem::temp_directory_path() / ("doppel-config-test-" + std::to_string(getpid()));
    std::filesystem::create_directories(m_dir);
    touch("Image");
    touch("fw.bin");
    touch("disk.img");
  }
  void TearDown() override { std::filesystem::remove_all(m_dir); }
  void touch(const std::string& name) { std::ofstream(m_dir / name) << "x"; }
  std::string write_file(const std::string& text) {
    const auto path = m_dir / "vm.json";
    std::ofstream(path) << text;
    return path.string();
  }
  std::string error_of(const std::string& text) {
    auto r = load_vm_file(write_file(text), VmConfig{});
    EXPECT_FALSE(r.ok()) << text;
    return r.ok() ? "" : r.error().message();
  }
  std::filesystem::path m_dir;
};

TEST_F(VmFileTest, AFullFileBuildsTheSameConfigAsFlags) {
  const auto path = write_file(R"({
    // comments are allowed
    "machine": {"arch": "riscv64", "engine": "emu", "cpus": 4, "memory": "512M", "on_reboot": "restart"},
    "boot": {"kernel": "Image", "firmware": "fw.bin", "cmdline": "console=ttyS0"},
    "disks": [{"path": "disk.img", "read_only": true}],
    "nets": [{"tap": "tap7", "mac": "52:54:00:00:00:07"}],
    "console": {"file": "console.log"}
  })");
  auto config = load_vm_file(path, VmConfig{});
  ASSERT_TRUE(config.ok()) << config.error().message();
  EXPECT_EQ(config->cpus, 4u);
  EXPECT_EQ(config->memory, 512ull << 20);
  EXPECT_EQ(config->on_reboot, OnReboot::kRestart);
  // Relative paths are relative to the VM file.
  EXPECT_EQ(config->kernel, (m_dir / "Image").string());
  ASSERT_EQ(config->disks.size(), 1u);
  EXPECT_TRUE(config->disks[0].read_only);
  EXPECT_EQ(config->nets[0].tap, "tap7");
  ASSERT_TRUE(config->console2.has_value());
  EXPECT_EQ(config->console2->path, (m_dir / "console.log").string());
  EXPECT_TRUE(validate(*config, 0).ok()) << validate(*config, 0).error().message();

  // Round trip: the printed config parses to the same thing.
  VmConfig again;
  ASSERT_TRUE(apply_json(again, to_json(*config)).ok());
  EXPECT_EQ(to_json(again), to_json(*config));
}

// "firmware": "none" is QEMU's -bios none, not a file beside the VM file; "from": "disk" is
// --boot disk.
TEST_F(VmFileTest, FirmwareNoneAndBootFromDisk) {
  const auto path = write_file(R"({"boot": {"kernel": "Image", "firmware": "none", "from": "disk"},
                                   "disks": [{"path": "disk.img"}]})");
  auto config = load_vm_file(path, VmConfig{});
  ASSERT_TRUE(config.ok()) << config.error().message();
  EXPECT_EQ(config->firmware, "none");
  EXPECT_EQ(firmware_to_load(*config), "");
  EXPECT_EQ(config->boot_from, BootFrom::kDisk);
  EXPECT_TRUE(validate(*config, 0).ok()) << validate(*config, 0).error().message();
  EXPECT_EQ(to_json(*config)["boot"]["from"], "disk");
  // U-Boot runs in S-mode: it needs the firmware.
  auto r = apply_boot_from(*config);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("needs firmware"), std::string::npos) << r.error().message();
  EXPECT_NE(error_of(R"({"boot": {"from": "floppy"}})").find("boot.from: unknown boot source 'floppy'"),
            std::string::npos);
}

TEST_F(VmFileTest, SeccompIsOnUnlessTheFileTurnsItOff) {
  auto on = load_vm_file(write_file(R"({"machine": {"cpus": 1}})"), VmConfig{});
  ASSERT_TRUE(on.ok()) << on.error().message();
  EXPECT_TRUE(on->seccomp);
  EXPECT_FALSE(to_json(*on)["machine"].contains("seccomp"));
  auto off = load_vm_file(write_file(R"({"machine": {"seccomp": false}})"), VmConfig{});
  ASSERT_TRUE(off.ok()) << off.error().message();
  EXPECT_FALSE(off->seccomp);
  VmConfig again;
  ASSERT_TRUE(apply_json(again, to_json(*off)).ok());
  EXPECT_FALSE(again.seccomp);
  EXPECT_NE(error_of(R"({"machine": {"seccomp": "no"}})").find("machine.seccomp"), std::string::npos);
}

TEST(BootFrom, DiskNeedsADiskAndDefaultsTheKernelToUboot) {
  VmConfig config;
  config.firmware = "/etc/hostname";
  config.boot_from = BootFrom::kDisk;
  auto r = apply_boot_from(config);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message(), "--boot disk: no disk to boot from; give --disk PATH");
  config.disks.push_back({"/etc/hostname", true});
  r = apply_boot_from(config);
  if (::access(kUbootSmode, R_OK) != 0) GTEST_SKIP() << kUbootSmode << " is not installed (u-boot-qemu)";
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(config.kernel, kUbootSmode);
}

TEST_F(VmFileTest, ErrorsNameTheFileTheKeyPathAndTheReason) {
  EXPECT_NE(error_of(R"({"machine": {"cpus": 0}})").find("vm.json: machine.cpus: must be between 1 and 8, got 0"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"machine": {"cpus": 9}})").find("machine.cpus: must be between 1 and 8, got 9"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"machine": {"cpus": "2"}})").find("machine.cpus: must be a non-negative integer, got string"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"machine": {"cpus": -1}})").find("machine.cpus: must be a non-negative integer, got -1"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"machine": {"memory": "0M"}})").find("machine.memory: 0 bytes is too little"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"machine": {"memroy": 5}})").find("machine.memroy: unknown key"), std::string::npos);
  EXPECT_NE(error_of(R"({"bogus": 1})").find("bogus: unknown key"), std::string::npos);
  EXPECT_NE(error_of(R"({"machine": {"engine": "xen"}})").find("machine.engine: unknown engine 'xen'"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"boot": {"kernel": "missing"}})").find("boot.kernel: "),
            std::string::npos);
  EXPECT_NE(error_of(R"({"boot": {"kernel": "missing"}})").find("No such file or directory"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"disks": [{"path": "disk.img"}, {"read_only": true}]})").find("disks[1].path: is required"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"disks": {"path": "disk.img"}})").find("disks: must be an array, got object"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"nets": [{"tap": "t", "mac": "zz"}]})").find("nets[0].mac: 'zz' is not a MAC"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"console": {"file": "a", "socket": "b"}})").find("console: needs exactly one"),
            std::string::npos);
  EXPECT_NE(error_of("[1, 2]").find("the top level must be an object"), std::string::npos);
  EXPECT_NE(error_of("{ not json").find("not valid JSON"), std::string::npos);
}

TEST(Validate, CatchesWhatAUserGetsWrong) {
  VmConfig config;
  config.kernel = "/etc/hostname";
  config.firmware = "/etc/hostname";
  EXPECT_TRUE(validate(config, 1ull << 30).ok());

  VmConfig too_big = config;
  too_big.memory = 2ull << 30;
  auto r = validate(too_big, 1ull << 30);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("more than the host's 1024 MiB"), std::string::npos);

  VmConfig missing_disk = config;
  missing_disk.disks.push_back({"/nonexistent/x.img", false});
  r = validate(missing_disk, 0);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message(), "--disk /nonexistent/x.img: No such file or directory");

  VmConfig no_firmware = config;
  no_firmware.firmware.clear();
  EXPECT_FALSE(validate(no_firmware, 0).ok());

  VmConfig none = config;
  none.firmware = "none";
  EXPECT_TRUE(validate(none, 0).ok());
  none.arch = Arch::kX86_64;
  none.engine = EngineKind::kKvm;
  EXPECT_FALSE(validate(none, 0).ok());

  VmConfig kvm_riscv = config;
  kvm_riscv.engine = EngineKind::kKvm;
  EXPECT_FALSE(validate(kvm_riscv, 0).ok());

  VmConfig twice = config;
  NetConfig tap0;
  tap0.tap = "tap0";
  twice.nets = {tap0, tap0};
  EXPECT_FALSE(validate(twice, 0).ok());

  // The kernel would cut these without a word.
  VmConfig long_cmdline = config;
  long_cmdline.cmdline = std::string(1023, 'a');
  EXPECT_TRUE(validate(long_cmdline, 0).ok());
  long_cmdline.cmdline += 'a';
  r = validate(long_cmdline, 0);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message(), "--cmdline: 1024 bytes is too long: a riscv64 Linux kernel reads at "
                                 "most 1023 (COMMAND_LINE_SIZE 1024)");
  VmConfig nul = config;
  nul.cmdline = std::string("console=ttyS0\0 init=/x", 23);
  r = validate(nul, 0);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("contains a NUL byte at offset 13"), std::string::npos);

  VmConfig x86_firmware = config;
  x86_firmware.arch = Arch::kX86_64;
  x86_firmware.engine = EngineKind::kKvm;
  r = validate(x86_firmware, 0);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("--firmware /etc/hostname: riscv64 only"), std::string::npos);
}

}  // namespace
}  // namespace doppel
