#include "core/guest_memory.h"

#include <gtest/gtest.h>

#include <array>
#include <cstdint>

namespace doppel {
namespace {

constexpr uint64_t kBase = 0x8000'0000;
constexpr uint64_t kSize = 64 * KiB;

std::unique_ptr<GuestMemory> make_memory() {
  auto mem = GuestMemory::create({{kBase, kSize}});
  EXPECT_TRUE(mem.ok()) << mem.error().message();
  return mem.release_value();
}

TEST(GuestMemory, ReadsBackWhatWasWrittenLittleEndian) {
  auto mem = make_memory();
  ASSERT_TRUE(mem->write_le<uint32_t>(kBase + 0x100, 0x11223344u));
  EXPECT_EQ(mem->read_le<uint8_t>(kBase + 0x100), 0x44);
  EXPECT_EQ(mem->read_le<uint16_t>(kBase + 0x102), 0x1122);
  EXPECT_EQ(mem->read_le<uint32_t>(kBase + 0x100), 0x11223344u);
}

TEST(GuestMemory, StartsZeroed) {
  auto mem = make_memory();
  EXPECT_EQ(mem->read_le<uint64_t>(kBase), 0u);
  EXPECT_EQ(mem->read_le<uint64_t>(kBase + kSize - 8), 0u);
}

TEST(GuestMemory, RefusesAccessesThatLeaveRam) {
  auto mem = make_memory();
  // The last 8 bytes are fine; one byte further is not.
  EXPECT_TRUE(mem->write_le<uint64_t>(kBase + kSize - 8, ~0ull));
  EXPECT_FALSE(mem->write_le<uint64_t>(kBase + kSize - 7, 1));
  EXPECT_FALSE(mem->read_le<uint64_t>(kBase + kSize - 7).has_value());
  EXPECT_FALSE(mem->read_le<uint8_t>(kBase - 1).has_value());
  EXPECT_FALSE(mem->read_le<uint8_t>(kBase + kSize).has_value());
  EXPECT_FALSE(mem->read_le<uint8_t>(0).has_value());
  // And nothing was written by the refused access.
  EXPECT_EQ(mem->read_le<uint64_t>(kBase + kSize - 8), ~0ull);
}

TEST(GuestMemory, GuestControlledLengthsCannotWrapAround) {
  auto mem = make_memory();
  EXPECT_EQ(mem->host_ptr(kBase + 16, ~0ull), nullptr);
  EXPECT_EQ(mem->host_ptr(kBase + 16, ~0ull - kBase), nullptr);
  EXPECT_EQ(mem->host_ptr(~0ull, 2), nullptr);
  std::array<uint8_t, 16> buf{};
  EXPECT_FALSE(mem->read(~0ull - 4, buf));
  EXPECT_FALSE(mem->write(kBase + kSize - 8, buf));
}

TEST(GuestMemory, SpanCopiesAreAllOrNothing) {
  auto mem = make_memory();
  std::array<uint8_t, 4> in{1, 2, 3, 4};
  ASSERT_TRUE(mem->write(kBase + 10, in));
  std::array<uint8_t, 4> out{};
  ASSERT_TRUE(mem->read(kBase + 10, out));
  EXPECT_EQ(out, in);
  EXPECT_TRUE(mem->host_ptr(kBase + kSize, 0) != nullptr) << "an empty range at the end is valid";
}

TEST(GuestMemory, SeveralRegionsAreEachReachableAndTheGapIsNot) {
  auto mem = GuestMemory::create({{0x10000, 0x1000}, {0x0, 0x1000}});
  ASSERT_TRUE(mem.ok());
  EXPECT_EQ((*mem)->total_size(), 0x2000u);
  EXPECT_TRUE((*mem)->write_le<uint8_t>(0x0, 1));
  EXPECT_TRUE((*mem)->write_le<uint8_t>(0x10fff, 1));
  EXPECT_FALSE((*mem)->write_le<uint8_t>(0x1000, 1));
  EXPECT_FALSE((*mem)->write_le<uint16_t>(0xfff, 1)) << "an access may not span two regions";
}

TEST(GuestMemory, RejectsBadLayouts) {
  auto overlap = GuestMemory::create({{0x0, 0x2000}, {0x1000, 0x1000}});
  ASSERT_FALSE(overlap.ok());
  EXPECT_NE(overlap.error().message().find("overlaps"), std::string::npos);
  auto empty = GuestMemory::create({{0x0, 0}});
  ASSERT_FALSE(empty.ok());
  EXPECT_NE(empty.error().message().find("size is zero"), std::string::npos);
  auto unaligned = GuestMemory::create({{0x10, 0x1000}});
  ASSERT_FALSE(unaligned.ok());
  EXPECT_NE(unaligned.error().message().find("not page-aligned"), std::string::npos);
}

TEST(GuestMemory, AtomicIndexHelpersCheckAlignmentAndBounds) {
  auto mem = make_memory();
  EXPECT_TRUE(mem->store_u16_release(kBase + 2, 0xbeef));
  EXPECT_EQ(mem->load_u16_acquire(kBase + 2), 0xbeef);
  EXPECT_FALSE(mem->store_u16_release(kBase + 3, 1));
  EXPECT_FALSE(mem->load_u16_acquire(kBase + kSize).has_value());
}

}  // namespace
}  // namespace doppel
