#include "gdb/gdb_packet.h"

namespace doppel::gdb {

namespace {

int hex_digit(uint8_t c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

constexpr char kHex[] = "0123456789abcdef";

}  // namespace

void PacketDecoder::feed(std::span<const uint8_t> bytes, std::vector<PacketEvent>& out) {
  for (const uint8_t c : bytes) {
    switch (m_state) {
      case State::kIdle:
        if (c == '$') {
          m_state = State::kPayload;
          m_payload.clear();
          m_sum = 0;
          m_too_long = false;
          m_bad_digit = false;
        } else if (c == '+') {
          out.push_back({PacketEvent::Kind::kAck, {}});
        } else if (c == '-') {
          out.push_back({PacketEvent::Kind::kNack, {}});
        } else if (c == 0x03) {
          out.push_back({PacketEvent::Kind::kInterrupt, {}});
        }
        break;
      case State::kPayload:
      case State::kEscape:
        if (c == '#') {
          m_state = State::kSum1;  // an escape cut short by '#' leaves its '}' out
          break;
        }
        if (c == '$') {  // a new packet before this one ended: the sender gave up on it
          m_payload.clear();
          m_sum = 0;
          m_too_long = false;
          m_state = State::kPayload;
          break;
        }
        m_sum = static_cast<uint8_t>(m_sum + c);
        if (m_state == State::kPayload && c == '}') {
          m_state = State::kEscape;
          break;
        }
        if (m_payload.size() >= kMaxPayload) {
          m_too_long = true;
        } else {
          m_payload.push_back(static_cast<char>(m_state == State::kEscape ? c ^ 0x20 : c));
        }
        m_state = State::kPayload;
        break;
      case State::kSum1: {
        const int d = hex_digit(c);
        m_bad_digit = d < 0;
        m_received = static_cast<uint8_t>((d < 0 ? 0 : d) << 4);
        m_state = State::kSum2;
        break;
      }
      case State::kSum2: {
        const int d = hex_digit(c);
        m_state = State::kIdle;
        const bool sum_ok = !m_bad_digit && d >= 0 &&
                            static_cast<uint8_t>(m_received | d) == m_sum;
        if (!sum_ok) {
          out.push_back({PacketEvent::Kind::kBadPacket, {}});
        } else if (m_too_long) {
          out.push_back({PacketEvent::Kind::kTooLong, {}});
        } else {
          out.push_back({PacketEvent::Kind::kPacket, std::move(m_payload)});
        }
        m_payload.clear();
        break;
      }
    }
  }
}

std::string encode_packet(std::string_view payload) {
  std::string out;
  out.reserve(payload.size() + 4);
  out.push_back('$');
  uint8_t sum = 0;
  auto put = [&](char c) {
    out.push_back(c);
    sum = static_cast<uint8_t>(sum + static_cast<uint8_t>(c));
  };
  for (const char c : payload) {
    if (c == '#' || c == '$' || c == '}' || c == '*') {
      put('}');
      put(static_cast<char>(c ^ 0x20));
    } else {
      put(c);
    }
  }
  out.push_back('#');
  out.push_back(kHex[sum >> 4]);
  out.push_back(kHex[sum & 15]);
  return out;
}

std::string hex_encode(std::span<const uint8_t> bytes) {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (const uint8_t b : bytes) {
    out.push_back(kHex[b >> 4]);
    out.push_back(kHex[b & 15]);
  }
  return out;
}

std::string hex_encode(std::string_view text) {
  return hex_encode(std::span(reinterpret_cast<const uint8_t*>(text.data()), text.size()));
}

std::optional<std::vector<uint8_t>> hex_decode(std::string_view hex) {
  if (hex.size() % 2 != 0) return std::nullopt;
  std::vector<uint8_t> out;
  out.reserve(hex.size() / 2);
  for (size_t i = 0; i < hex.size(); i += 2) {
    const int hi = hex_digit(static_cast<uint8_t>(hex[i]));
    const int lo = hex_digit(static_cast<uint8_t>(hex[i + 1]));
    if (hi < 0 || lo < 0) return std::nullopt;
    out.push_back(static_cast<uint8_t>(hi << 4 | lo));
  }
  return out;
}

std::optional<uint64_t> parse_hex(std::string_view text) {
  if (text.empty() || text.size() > 16) return std::nullopt;
  uint64_t v = 0;
  for (const char c : text) {
    const int d = hex_digit(static_cast<uint8_t>(c));
    if (d < 0) return std::nullopt;
    v = v << 4 | static_cast<uint64_t>(d);
  }
  return v;
}

}  // namespace doppel::gdb
