#include "vmm/virtio_devices.h"

#include <unistd.h>

#include <gtest/gtest.h>

#include "devices/virtio/virtio_test_util.h"

namespace doppel {
namespace {

class NullIrq : public IrqLine {
 public:
  void set_level(bool) override {}
};

TEST(VirtioDevicesTest, BuildsDisksConsoleAndRngInOrder) {
  char tmpl[] = "/tmp/doppel-factory-XXXXXX";
  int fd = mkstemp(tmpl);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(ftruncate(fd, 64 * 1024), 0);
  close(fd);
  VmConfig config;
  config.disks.push_back({tmpl, false});
  config.disks.push_back({tmpl, true, DiskFormat::kAuto, /*locking=*/false});
  config.console2 = ConsoleConfig{ConsoleConfig::Kind::kFile, std::string(tmpl) + ".out"};
  auto mem = virtio::testing::make_ram();
  std::vector<NullIrq> irqs(8);
  std::vector<size_t> asked;
  auto devs = create_virtio_devices(config, *mem, [&](size_t i) -> IrqLine& {
    asked.push_back(i);
    return irqs[i];
  });
  ASSERT_TRUE(devs.ok()) << devs.error().message();
  ASSERT_EQ(devs->size(), 4u);
  EXPECT_EQ(virtio_device_count(config), 4u);
  EXPECT_EQ(asked, (std::vector<size_t>{0, 1, 2, 3}));
  EXPECT_EQ((*devs)[0]->read(8, 4), 2u);
  EXPECT_EQ((*devs)[0]->name(), "virtio-blk0");
  EXPECT_EQ((*devs)[1]->read(8, 4), 2u);
  EXPECT_EQ((*devs)[2]->read(8, 4), 3u);
  EXPECT_EQ((*devs)[3]->read(8, 4), 4u);
  // The read-only disk says so in its features (VIRTIO_BLK_F_RO, bit 5).
  (*devs)[1]->write(0x14, 4, 0);
  EXPECT_TRUE((*devs)[1]->read(0x10, 4) & (1u << 5));
  (*devs)[0]->write(0x14, 4, 0);
  EXPECT_FALSE((*devs)[0]->read(0x10, 4) & (1u << 5));
  devs->clear();
  unlink(tmpl);
  unlink((std::string(tmpl) + ".out").c_str());
}

TEST(VirtioDevicesTest, MissingDiskIsAnErrorNamingIt) {
  VmConfig config;
  config.disks.push_back({"/nonexistent/root.img", false});
  auto mem = virtio::testing::make_ram();
  NullIrq irq;
  auto devs = create_virtio_devices(config, *mem, [&](size_t) -> IrqLine& { return irq; });
  ASSERT_FALSE(devs.ok());
  EXPECT_NE(devs.error().message().find("/nonexistent/root.img"), std::string::npos)
      << devs.error().message();
}

TEST(VirtioDevicesTest, GeneratedMacIsLocallyAdministeredUnicast) {
  const MacAddress a = generate_mac(), b = generate_mac();
  EXPECT_EQ(a[0] & 0x03, 0x02);
  EXPECT_NE(a, b);
}

}  // namespace
}  // namespace doppel
