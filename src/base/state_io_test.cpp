#include "base/state_io.h"

#include <gtest/gtest.h>

#include <array>
#include <string>

namespace doppel {
namespace {

bool contains(const Error& e, std::string_view what) {
  return e.message().find(what) != std::string::npos;
}

std::vector<uint8_t> bytes_of(std::initializer_list<int> v) {
  std::vector<uint8_t> out;
  for (int b : v) out.push_back(static_cast<uint8_t>(b));
  return out;
}

TEST(StateWriter, IntegersAreLittleEndianAtTheirWidth) {
  StateWriter w;
  w.write_u8(0x01);
  w.write_u16(0x0302);
  w.write_u32(0x07060504);
  w.write_u64(0x0f0e0d0c0b0a0908ull);
  w.write_bool(true);
  w.write_i64(-2);
  std::vector<uint8_t> want;
  for (int i = 1; i <= 15; ++i) want.push_back(static_cast<uint8_t>(i));
  want.push_back(1);
  for (int b : {0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}) want.push_back(static_cast<uint8_t>(b));
  EXPECT_EQ(w.data(), want);
}

TEST(StateWriter, StringsBlobsAndVectorsCarryTheirLength) {
  StateWriter w;
  w.write_string("ab");
  w.write_blob(bytes_of({9}));
  w.write_int_vector(std::vector<uint16_t>{0x1234, 0x5678});
  EXPECT_EQ(w.data(), bytes_of({2, 0, 0, 0, 'a', 'b', 1, 0, 0, 0, 0, 0, 0, 0, 9, 2, 0, 0, 0, 0x34,
                                0x12, 0x78, 0x56}));
}

TEST(StateReader, ReadsBackWhatTheWriterWrote) {
  struct Plain {
    uint32_t a;
    uint16_t b;
  };
  StateWriter w;
  w.write_u8(0xab);
  w.write_u16(0xbeef);
  w.write_u32(0xdeadbeef);
  w.write_u64(0x0123456789abcdefull);
  w.write_i64(-5);
  w.write_bool(false);
  w.write_bool(true);
  w.write_string("hart 0");
  w.write_blob(bytes_of({1, 2, 3}));
  w.write_int_vector(std::vector<uint64_t>{7, 8, 9});
  w.write_vector(std::vector<std::string>{"x", "yz"},
                 [](StateWriter& out, const std::string& s) { out.write_string(s); });
  w.write_raw(Plain{0x11223344, 0x5566});

  StateReader r(w.data());
  EXPECT_EQ(*r.read_u8("a"), 0xab);
  EXPECT_EQ(*r.read_u16("b"), 0xbeef);
  EXPECT_EQ(*r.read_u32("c"), 0xdeadbeefu);
  EXPECT_EQ(*r.read_u64("d"), 0x0123456789abcdefull);
  EXPECT_EQ(*r.read_i64("e"), -5);
  EXPECT_FALSE(*r.read_bool("f"));
  EXPECT_TRUE(*r.read_bool("g"));
  EXPECT_EQ(*r.read_string("h", 64), "hart 0");
  EXPECT_EQ(*r.read_blob("i", 64), bytes_of({1, 2, 3}));
  EXPECT_EQ(*r.read_int_vector<uint64_t>("j", 16), (std::vector<uint64_t>{7, 8, 9}));
  auto strings = r.read_vector<std::string>(
      "k", 16, 4, [](StateReader& in, size_t) { return in.read_string("s", 8); });
  ASSERT_TRUE(strings.ok()) << strings.error().message();
  EXPECT_EQ(*strings, (std::vector<std::string>{"x", "yz"}));
  Plain p{};
  ASSERT_TRUE(r.read_raw(p, "plain").ok());
  EXPECT_EQ(p.a, 0x11223344u);
  EXPECT_EQ(p.b, 0x5566u);
  EXPECT_TRUE(r.at_end());
  EXPECT_TRUE(r.expect_end("state").ok());
}

TEST(StateReader, TruncationNamesTheFieldAndTheOffset) {
  const auto data = bytes_of({1, 2, 3, 4, 5, 6, 7});
  StateReader r(data);
  ASSERT_TRUE(r.read_u32("version").ok());
  auto pc = r.read_u64("pc");
  ASSERT_FALSE(pc.ok());
  EXPECT_EQ(pc.error().message(), "pc: truncated at byte 4 (8 bytes needed, 3 left)");
  // A failed read consumes nothing.
  EXPECT_EQ(r.offset(), 4u);
  EXPECT_EQ(*r.read_u16("x"), 0x0605);
  EXPECT_FALSE(r.read_u16("y").ok());
  EXPECT_FALSE(r.read_bytes(2, "z").ok());
  EXPECT_TRUE(r.read_bytes(1, "z").ok());
  EXPECT_FALSE(r.read_u8("w").ok());
}

TEST(StateReader, EveryPrefixOfAValidStreamFailsCleanly) {
  StateWriter w;
  w.write_u32(1);
  w.write_string("name");
  w.write_int_vector(std::vector<uint32_t>{1, 2, 3});
  w.write_blob(bytes_of({4, 5}));
  w.write_bool(true);
  const auto& full = w.data();
  for (size_t n = 0; n < full.size(); ++n) {
    StateReader r(std::span<const uint8_t>(full).first(n));
    const bool failed = !r.read_u32("a").ok() || !r.read_string("b", 16).ok() ||
                        !r.read_int_vector<uint32_t>("c", 16).ok() || !r.read_blob("d", 16).ok() ||
                        !r.read_bool("e").ok();
    EXPECT_TRUE(failed) << "prefix of " << n << " bytes read as whole";
  }
}

TEST(StateReader, BooleansAreZeroOrOne) {
  const auto data = bytes_of({2});
  StateReader r(data);
  auto b = r.read_bool("ready");
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.error().message(), "ready: 2 at byte 0 is not a boolean (0 or 1)");
}

TEST(StateReader, HugeLengthsAreRefusedBeforeAllocating) {
  // A string claiming 4 GiB: refused by its limit, and without one by the bytes that follow.
  {
    const auto data = bytes_of({0xff, 0xff, 0xff, 0xff, 'a'});
    StateReader r(data);
    auto s = r.read_string("name", 64);
    ASSERT_FALSE(s.ok());
    EXPECT_TRUE(contains(s.error(), "length 4294967295 at byte 0 exceeds the limit of 64"))
        << s.error().message();
    StateReader r2(data);
    auto s2 = r2.read_string("name", SIZE_MAX);
    ASSERT_FALSE(s2.ok());
    EXPECT_TRUE(contains(s2.error(), "truncated")) << s2.error().message();
  }
  // A blob claiming 2^63 bytes.
  {
    const auto data = bytes_of({0, 0, 0, 0, 0, 0, 0, 0x80, 1, 2});
    StateReader r(data);
    auto b = r.read_blob("data", UINT64_MAX);
    ASSERT_FALSE(b.ok());
    EXPECT_TRUE(contains(b.error(), "but only 2 bytes follow")) << b.error().message();
  }
  // A vector of 2^32 - 1 u64s in a 12-byte input, and one above its limit.
  {
    const auto data = bytes_of({0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0});
    StateReader r(data);
    auto v = r.read_int_vector<uint64_t>("mtimecmp", SIZE_MAX);
    ASSERT_FALSE(v.ok());
    EXPECT_TRUE(contains(v.error(), "need at least")) << v.error().message();
    StateReader r2(data);
    auto v2 = r2.read_int_vector<uint64_t>("mtimecmp", 1024);
    ASSERT_FALSE(v2.ok());
    EXPECT_TRUE(contains(v2.error(), "exceed the limit of 1024")) << v2.error().message();
    StateReader r3(data);
    auto v3 = r3.read_vector<int>("things", SIZE_MAX, 1,
                                  [](StateReader&, size_t) -> Result<int> { return 0; });
    ASSERT_FALSE(v3.ok());
  }
}

TEST(StateReader, RawStructsMustHaveTheirSize) {
  StateWriter w;
  w.write_raw(std::array<uint8_t, 6>{});
  StateReader r(w.data());
  std::array<uint8_t, 8> wrong{};
  auto res = r.read_raw(wrong, "kvm_regs");
  ASSERT_FALSE(res.ok());
  EXPECT_EQ(res.error().message(), "kvm_regs: 6 bytes at byte 0, expected 8");
}

TEST(StateReader, LeftoverBytesAreAnError) {
  const auto data = bytes_of({1, 2, 3});
  StateReader r(data);
  ASSERT_TRUE(r.read_u8("a").ok());
  auto end = r.expect_end("uart");
  ASSERT_FALSE(end.ok());
  EXPECT_EQ(end.error().message(), "uart: 2 bytes left over at byte 1");
}

TEST(Crc32, MatchesZlib) {
  const std::string check = "123456789";
  const std::span<const uint8_t> bytes(reinterpret_cast<const uint8_t*>(check.data()),
                                       check.size());
  EXPECT_EQ(crc32(bytes), 0xcbf43926u);  // the CRC-32 check value
  EXPECT_EQ(crc32({}), 0u);
  EXPECT_EQ(crc32(bytes.subspan(4), crc32(bytes.first(4))), 0xcbf43926u) << "running CRC";
}

}  // namespace
}  // namespace doppel
