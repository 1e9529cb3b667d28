// libFuzzer: a destination reading a hostile or damaged live-migration stream into a small
// guest RAM (64 KiB at 0x80000000).
//
// Input: byte 0 picks what the rest is (mod 2):
//   0  the whole stream, as is (header and records);
//   1  records framed for the fuzzer: a valid header first, then from the input repeatedly
//      a type byte, a u16 payload length and the payload, each sent as a record with its
//      correct length and CRC, so that mutations reach the page parser, not the CRC check.
// Beyond "no crash, no UB, no access outside RAM, no huge allocation": a stream that is
// accepted carries a state payload.
#include <cstdlib>
#include <cstring>
#include <span>
#include <vector>

#include "core/guest_memory.h"
#include "vmm/migration_stream.h"

using namespace doppel;

namespace {

constexpr uint64_t kRamBase = 0x80000000;
constexpr uint64_t kRamSize = 64 * 1024;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  static auto memory = GuestMemory::create({{kRamBase, kRamSize}});
  if (!memory.ok()) std::abort();
  const MigrationHeader expect{Arch::kRiscv64, EngineKind::kEmu, kRamSize};
  std::span<const uint8_t> rest(data + 1, size - 1);

  std::vector<uint8_t> stream;
  if (data[0] % 2 == 0) {
    stream.assign(rest.begin(), rest.end());
  } else {
    VectorSink sink;
    (void)write_migration_header(sink, expect);
    while (rest.size() >= 3) {
      const uint32_t type = rest[0] % 5;  // pages, state, end, sync (0: unknown)
      const size_t len = std::min<size_t>(rest[1] | (size_t{rest[2]} << 8), rest.size() - 3);
      (void)write_migration_record(sink, static_cast<MigrationRecord>(type),
                                   rest.subspan(3, len));
      rest = rest.subspan(3 + len);
    }
    stream = std::move(sink.bytes);
  }
  SpanSource source(stream);
  VectorSink answers;
  auto state = receive_migration(source, answers, **memory, expect);
  if (state.ok() && state->empty()) std::abort();
  return 0;
}
