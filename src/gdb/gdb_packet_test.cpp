#include "gdb/gdb_packet.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

namespace doppel::gdb {
namespace {

std::vector<PacketEvent> decode(std::string_view bytes) {
  PacketDecoder d;
  std::vector<PacketEvent> out;
  d.feed(std::span(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()), out);
  return out;
}

TEST(GdbPacket, EncodesWithChecksumAndEscapes) {
  EXPECT_EQ(encode_packet("OK"), "$OK#9a");
  EXPECT_EQ(encode_packet(""), "$#00");
  // '#', '$', '}' and '*' are escaped as '}' + byte ^ 0x20; the sum covers what is sent.
  EXPECT_EQ(encode_packet("a#b"), "$a}\x03" "b#43");
}

TEST(GdbPacket, DecodesPacketsAcksAndInterrupts) {
  const auto e = decode("+$g#67-\x03junk$m1000,4#8e");
  ASSERT_EQ(e.size(), 5u);
  EXPECT_EQ(e[0].kind, PacketEvent::Kind::kAck);
  EXPECT_EQ(e[1].kind, PacketEvent::Kind::kPacket);
  EXPECT_EQ(e[1].payload, "g");
  EXPECT_EQ(e[2].kind, PacketEvent::Kind::kNack);
  EXPECT_EQ(e[3].kind, PacketEvent::Kind::kInterrupt);
  EXPECT_EQ(e[4].kind, PacketEvent::Kind::kPacket);
  EXPECT_EQ(e[4].payload, "m1000,4");
}

TEST(GdbPacket, BadChecksumOrDigitsIsABadPacket) {
  auto e = decode("$g#68");
  ASSERT_EQ(e.size(), 1u);
  EXPECT_EQ(e[0].kind, PacketEvent::Kind::kBadPacket);
  e = decode("$g#zz");
  ASSERT_EQ(e.size(), 1u);
  EXPECT_EQ(e[0].kind, PacketEvent::Kind::kBadPacket);
}

TEST(GdbPacket, UnescapesBinaryData) {
  const std::string wire = encode_packet(std::string("X0,2:}\x7d#", 8));
  const auto e = decode(wire);
  ASSERT_EQ(e.size(), 1u);
  ASSERT_EQ(e[0].kind, PacketEvent::Kind::kPacket);
  EXPECT_EQ(e[0].payload, std::string("X0,2:}\x7d#", 8));
}

TEST(GdbPacket, SplitAcrossFeeds) {
  PacketDecoder d;
  std::vector<PacketEvent> out;
  const std::string a = "$qSupp", b = "orted#37";
  d.feed(std::span(reinterpret_cast<const uint8_t*>(a.data()), a.size()), out);
  EXPECT_TRUE(out.empty());
  d.feed(std::span(reinterpret_cast<const uint8_t*>(b.data()), b.size()), out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].payload, "qSupported");
}

TEST(GdbPacket, OverlongPayloadIsRefusedWithBoundedMemory) {
  std::string big(kMaxPayload + 100, 'a');
  uint8_t sum = 0;
  for (char c : big) sum = static_cast<uint8_t>(sum + c);
  const auto e = decode("$" + big + "#" + fmt::format("{:02x}", sum));
  ASSERT_EQ(e.size(), 1u);
  EXPECT_EQ(e[0].kind, PacketEvent::Kind::kTooLong);
}

TEST(GdbPacket, Hex) {
  EXPECT_EQ(hex_encode(std::string_view("\x01\xab", 2)), "01ab");
  EXPECT_EQ(*hex_decode("01AB"), (std::vector<uint8_t>{1, 0xab}));
  EXPECT_FALSE(hex_decode("abc"));
  EXPECT_FALSE(hex_decode("zz"));
  EXPECT_EQ(*parse_hex("ffffffff802db50e"), 0xffffffff802db50eull);
  EXPECT_FALSE(parse_hex("1ffffffff802db50e"));
  EXPECT_FALSE(parse_hex(""));
  EXPECT_FALSE(parse_hex("-1"));
}

}  // namespace
}  // namespace doppel::gdb
