// The framing decoder on any byte stream: events or nothing, bounded memory; a packet it
// accepts re-encodes to bytes it decodes to the same payload.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "gdb/gdb_packet.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace doppel::gdb;
  PacketDecoder decoder;
  std::vector<PacketEvent> events;
  decoder.feed(std::span(data, size), events);
  for (const auto& e : events) {
    if (e.kind != PacketEvent::Kind::kPacket) continue;
    if (e.payload.size() > kMaxPayload) std::abort();
    const std::string wire = encode_packet(e.payload);
    PacketDecoder again;
    std::vector<PacketEvent> back;
    again.feed(std::span(reinterpret_cast<const uint8_t*>(wire.data()), wire.size()), back);
    if (back.size() != 1 || back[0].kind != PacketEvent::Kind::kPacket ||
        back[0].payload != e.payload)
      std::abort();
  }
  return 0;
}
