// The GDB remote serial protocol's framing (gdb manual, "Remote Protocol", "Overview"):
// packets "$payload#cc" (cc: the payload's byte sum modulo 256, two hex digits), the
// acknowledgements '+' and '-', and the interrupt byte 0x03 (Ctrl-C) outside packets.
// Binary data escapes '#', '$', '}' and '*' as '}' followed by the byte XOR 0x20.
//
// Pure: no I/O, no state beyond the decoder's; the input is hostile (a debugger on a TCP
// port): every byte sequence gives events or nothing, never a crash, and memory stays
// bounded (kMaxPayload).
//
// Threads: a decoder belongs to one thread; the functions are plain.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace doppel::gdb {

// The largest packet payload accepted (after unescaping) and advertised (PacketSize).
constexpr size_t kMaxPayload = 0x4000;

struct PacketEvent {
  enum class Kind {
    kPacket,     // payload holds the unescaped payload; its checksum was right
    kBadPacket,  // a bad checksum (answer '-': the sender retransmits)
    kTooLong,    // a payload over kMaxPayload (answer '+' and an error reply)
    kAck,        // '+'
    kNack,       // '-': resend the last packet
    kInterrupt,  // 0x03 outside a packet
  };
  Kind kind = Kind::kPacket;
  std::string payload;
};

class PacketDecoder {
 public:
  // Appends the events that `bytes` complete to `out`; a packet split across calls is
  // kept until its end arrives. Bytes outside packets other than '+', '-', 0x03 are
  // ignored, as gdb does.
  void feed(std::span<const uint8_t> bytes, std::vector<PacketEvent>& out);

 private:
  enum class State { kIdle, kPayload, kEscape, kSum1, kSum2 };
  State m_state = State::kIdle;
  std::string m_payload;
  uint8_t m_sum = 0;       // of the raw bytes between '$' and '#'
  uint8_t m_received = 0;  // the checksum's first digit
  bool m_too_long = false;
  bool m_bad_digit = false;
};

// "$payload#cc" with '#', '$', '}' and '*' escaped.
std::string encode_packet(std::string_view payload);

// Lower-case hex of bytes / of a string's bytes.
std::string hex_encode(std::span<const uint8_t> bytes);
std::string hex_encode(std::string_view text);
// Pairs of hex digits to bytes; nullopt for an odd length or a non-hex digit.
std::optional<std::vector<uint8_t>> hex_decode(std::string_view hex);
// 1 to 16 hex digits (no sign, no prefix) to a number; nullopt otherwise.
std::optional<uint64_t> parse_hex(std::string_view text);

}  // namespace doppel::gdb
