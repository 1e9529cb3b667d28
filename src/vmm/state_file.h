// The whole-VM state file of a snapshot: every device's and engine's saved state (rule 9)
// as named, versioned sections in one container. Guest RAM is not in it (its own file).
//
// Layout, little-endian:
//
//   offset  size  field
//        0     8  magic "DOPPELVM"
//        8     4  format version (kStateFileFormatVersion)
//       12     4  arch: 1 riscv64, 2 x86_64
//       16     4  engine: 1 emu, 2 kvm
//       20     8  body length in bytes
//       28     4  CRC-32 of the body (zlib's crc32)
//       32        body: u32 section count, then per section
//                   name     u32 length + bytes (1..kMaxSectionName printable ASCII, unique)
//                   version  u32 (the saved struct's kVersion)
//                   data     u64 length + bytes (base/state_io.h encoding; vmm/state_codec.h)
//
// The file ends with the body: anything after it is refused, as is anything the parser
// does not understand. Readers never trust a length before checking it against the bytes
// that are really there (fuzzed by state_file_fuzz.cpp).
//
// Threads: plain functions; no shared state.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "vmm/vm_config.h"

namespace doppel {

inline constexpr char kStateFileMagic[8] = {'D', 'O', 'P', 'P', 'E', 'L', 'V', 'M'};
constexpr uint32_t kStateFileFormatVersion = 1;
constexpr size_t kStateFileHeaderSize = 32;
constexpr size_t kMaxSectionName = 64;
constexpr size_t kMaxSections = 4096;
// Far above any real VM's state (registers and device state, not RAM): a bigger file is
// refused before it is read.
constexpr uint64_t kMaxStateFileSize = 256ull << 20;

struct StateSection {
  std::string name;      // "hart 0", "uart", "virtio-blk 1" ...
  uint32_t version = 0;  // the version of the struct in `data`
  std::vector<uint8_t> data;
};

struct StateFile {
  Arch arch = Arch::kRiscv64;
  EngineKind engine = EngineKind::kEmu;
  std::vector<StateSection> sections;

  // The section named `name`, or nullptr.
  const StateSection* find(std::string_view name) const;
};

// The file's bytes. Refuses what parse_state_file() would refuse: section names that are
// empty, too long, not printable ASCII or used twice, too many sections.
Result<std::vector<uint8_t>> encode_state_file(const StateFile& file);

// Writes `path` whole or not at all: the bytes go to "<path>.tmp", which is fsynced and
// renamed over `path` (then the directory is fsynced); on any failure the temporary file
// is removed and `path` is left as it was. The file is created mode 0600: it holds guest
// register contents.
Result<void> write_state_file(const std::string& path, const StateFile& file);

// Refuses bad magic, an unknown format version, arch or engine, a body shorter or longer
// than the header says, a CRC mismatch, malformed or duplicate sections, and bytes left
// over after the last section, each with a message saying which and where.
Result<StateFile> parse_state_file(std::span<const uint8_t> bytes);

// Reads and parses `path`; errors start with the path. With expect_arch / expect_engine
// set, a snapshot of another architecture or engine is refused:
// "snap/state: a riscv64 snapshot; this VM is x86_64".
Result<StateFile> read_state_file(const std::string& path, std::optional<Arch> expect_arch,
                                  std::optional<EngineKind> expect_engine);

}  // namespace doppel
