#include "core/bus.h"

#include <gtest/gtest.h>

#include <vector>

namespace doppel {
namespace {

// Records the accesses it sees and answers reads with offset + size.
class RecordingDevice : public Device {
 public:
  explicit RecordingDevice(std::string name) : m_name(std::move(name)) {}
  std::string_view name() const override { return m_name; }
  uint64_t read(uint64_t offset, unsigned size) override {
    accesses.push_back({false, offset, size, 0});
    return offset + size;
  }
  void write(uint64_t offset, unsigned size, uint64_t value) override {
    accesses.push_back({true, offset, size, value});
  }
  struct Access {
    bool write;
    uint64_t offset;
    unsigned size;
    uint64_t value;
  };
  std::vector<Access> accesses;

 private:
  std::string m_name;
};

TEST(Bus, DispatchesToTheDeviceWithAnOffsetNotAnAddress) {
  Bus bus("mmio");
  RecordingDevice uart("uart"), rtc("rtc");
  ASSERT_TRUE(bus.insert(0x1000'0000, 0x100, uart).ok());
  ASSERT_TRUE(bus.insert(0x1010'0000, 0x1000, rtc).ok());

  uint64_t value = 0;
  ASSERT_TRUE(bus.read(0x1000'0005, 1, value));
  EXPECT_EQ(value, 6u);
  ASSERT_TRUE(bus.write(0x1010'0ff8, 8, 0xabcd));
  ASSERT_EQ(uart.accesses.size(), 1u);
  EXPECT_EQ(uart.accesses[0].offset, 5u);
  ASSERT_EQ(rtc.accesses.size(), 1u);
  EXPECT_TRUE(rtc.accesses[0].write);
  EXPECT_EQ(rtc.accesses[0].offset, 0xff8u);
  EXPECT_EQ(rtc.accesses[0].value, 0xabcdu);
}

TEST(Bus, UnmappedAddressesReachNoDevice) {
  Bus bus("mmio");
  RecordingDevice dev("dev");
  ASSERT_TRUE(bus.insert(0x2000, 0x10, dev).ok());
  uint64_t value = 0;
  EXPECT_FALSE(bus.read(0x1fff, 1, value));
  EXPECT_FALSE(bus.read(0x2010, 1, value));
  EXPECT_FALSE(bus.write(0x0, 4, 1));
  // An access that starts inside but runs past the end is refused too.
  EXPECT_FALSE(bus.read(0x200c, 8, value));
  EXPECT_TRUE(dev.accesses.empty());
  EXPECT_EQ(bus.find(0x1fff), nullptr);
  ASSERT_NE(bus.find(0x200f), nullptr);
  EXPECT_EQ(bus.find(0x200f)->device, &dev);
}

TEST(Bus, RefusesOverlapsNamingBothDevices) {
  Bus bus("mmio");
  RecordingDevice a("plic"), b("clint");
  ASSERT_TRUE(bus.insert(0x1000, 0x1000, a).ok());
  for (auto [base, size] : {std::pair<uint64_t, uint64_t>{0x1000, 1}, {0xfff, 2}, {0x1fff, 0x10},
                            {0x0, 0x10000}, {0x1800, 0x10}}) {
    auto r = bus.insert(base, size, b);
    ASSERT_FALSE(r.ok()) << std::hex << base << "+" << size;
    EXPECT_NE(r.error().message().find("'clint'"), std::string::npos);
    EXPECT_NE(r.error().message().find("overlaps 'plic'"), std::string::npos);
  }
  // Adjacent ranges are fine on either side.
  EXPECT_TRUE(bus.insert(0x2000, 0x10, b).ok());
  RecordingDevice c("c");
  EXPECT_TRUE(bus.insert(0xff0, 0x10, c).ok());
  EXPECT_EQ(bus.mappings().size(), 3u);
}

TEST(Bus, RefusesZeroSizeAndWrappingRanges) {
  Bus bus("pio");
  RecordingDevice dev("dev");
  auto zero = bus.insert(0x3f8, 0, dev);
  ASSERT_FALSE(zero.ok());
  EXPECT_NE(zero.error().message().find("size is zero"), std::string::npos);
  auto wrap = bus.insert(~0ull - 1, 4, dev);
  ASSERT_FALSE(wrap.ok());
  EXPECT_NE(wrap.error().message().find("wraps"), std::string::npos);
  // The very top of the address space is a valid place.
  EXPECT_TRUE(bus.insert(~0ull - 3, 4, dev).ok());
  uint64_t value = 0;
  EXPECT_TRUE(bus.read(~0ull, 1, value));
}

}  // namespace
}  // namespace doppel
