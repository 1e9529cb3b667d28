// libFuzzer: the state file parser and every section decoder on arbitrary bytes, as a
// damaged or hostile snapshot file would give them.
//
// Input: byte 0 picks what the rest is (mod 3):
//   0  a whole state file, as is;
//   1  a whole state file whose header's body length and CRC are first made to match its
//      body, so that mutations reach the section parser instead of the CRC check;
//   2  the data of one section, decoded as every state struct.
// Invariants checked beyond "no crash, no UB, no huge allocation": whatever parses or
// decodes encodes back to the very same bytes (the encodings are canonical), and
// decode_section() accepts exactly the sections whose version is their data's, one the
// struct reads.
#include <cstdlib>
#include <span>
#include <vector>

#include "base/bits.h"
#include "base/state_io.h"
#include "vmm/machine.h"
#include "vmm/state_codec.h"
#include "vmm/state_file.h"

using namespace doppel;

namespace {

void check(bool ok) {
  if (!ok) std::abort();
}

template <typename T>
void try_decode(const StateSection& section) {
  StateReader r(section.data);
  T state{};
  const bool decoded = decode_state(r, state).ok() && r.at_end();
  if (decoded) {
    StateWriter w;
    encode_state(w, state);
    check(w.data() == section.data);
  }
  if constexpr (requires { T::kVersion; }) {
    // A T reads its versions oldest_state_version<T>() to kVersion, and the data's version
    // (state.version, which decode_state() checked is one of them) must be the section's.
    const bool via_section = decode_section<T>(section).ok();
    check(via_section == (decoded && section.version == state.version));
  }
}

void decode_as_everything(const StateSection& section) {
  try_decode<rv64::HartState>(section);
  try_decode<rv64::ClintState>(section);
  try_decode<rv64::PlicState>(section);
  try_decode<rv64::TimebaseState>(section);
  try_decode<Uart16550State>(section);
  try_decode<I8042State>(section);
  try_decode<AcpiPmState>(section);
  try_decode<virtio::Virtqueue::State>(section);
  try_decode<virtio::VirtioMmioState>(section);
  try_decode<virtio::VirtioLimitsState>(section);
  try_decode<kvm::VcpuState>(section);
  try_decode<kvm::KvmVmState>(section);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::vector<uint8_t> bytes(data + 1, data + size);
  switch (data[0] % 3) {
    case 1:
      if (bytes.size() >= kStateFileHeaderSize) {
        const auto body = std::span(bytes).subspan(kStateFileHeaderSize);
        store_le<uint64_t>(bytes.data() + 20, body.size());
        store_le<uint32_t>(bytes.data() + 28, crc32(body));
      }
      [[fallthrough]];
    case 0: {
      auto file = parse_state_file(bytes);
      if (!file.ok()) return 0;
      auto again = encode_state_file(*file);
      check(again.ok() && *again == bytes);
      for (const auto& section : file->sections) decode_as_everything(section);
      // The JSON sections a restore reads: the VM's config and its memory files.
      (void)Machine::config_from_state(*file, "fuzz");
      (void)Machine::memory_chain_from_state(*file, "fuzz");
      return 0;
    }
    default: {
      StateSection section;
      section.name = "fuzz";
      section.data = std::move(bytes);
      // Each struct's own version, so that decode_section() gets past its version check.
      for (uint32_t version : {1u, 2u}) {
        section.version = version;
        decode_as_everything(section);
      }
      return 0;
    }
  }
}
