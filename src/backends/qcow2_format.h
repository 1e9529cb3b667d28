// The qcow2 on-disk format (QEMU's docs/interop/qcow2.txt): the header, its extensions and
// the bits of table entries, parsed and validated; and creating a new image.
//
// Everything here is plain data and pure functions: qcow2.h does the I/O.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "base/result.h"

namespace doppel::qcow2 {

constexpr uint32_t kMagic = 0x514649fb;  // "QFI\xfb"
constexpr uint32_t kMinClusterBits = 9;  // the spec's minimum (512-byte clusters)
constexpr uint32_t kMaxClusterBits = 21; // 2 MiB: QEMU's limit too
constexpr uint32_t kV2HeaderBytes = 72;
constexpr uint32_t kV3HeaderBytes = 104;  // without compression_type and its padding
constexpr uint64_t kMaxL1Bytes = 32ull << 20;        // QEMU's limit: 32 MiB of L1 table
constexpr uint64_t kMaxRefcountTableBytes = 8ull << 20;  // QEMU's limit
constexpr uint32_t kMaxBackingNameBytes = 1023;

// Incompatible feature bits (header bytes 72-79).
enum IncompatibleFeature : uint64_t {
  kIncompatDirty = 1ull << 0,           // refcounts may be stale (lazy refcounts in use)
  kIncompatCorrupt = 1ull << 1,         // QEMU found corruption: writes refused
  kIncompatExternalData = 1ull << 2,    // guest data lives in another file
  kIncompatCompressionType = 1ull << 3, // header byte 104 names the compression
  kIncompatExtendedL2 = 1ull << 4,      // 128-bit L2 entries with subcluster bitmaps
};
constexpr uint64_t kKnownIncompatible = kIncompatDirty | kIncompatCorrupt | kIncompatExternalData |
                                        kIncompatCompressionType | kIncompatExtendedL2;
// Compatible feature bits (80-87).
constexpr uint64_t kCompatLazyRefcounts = 1ull << 0;

// Header extension types.
constexpr uint32_t kExtEnd = 0;
constexpr uint32_t kExtBackingFormat = 0xe2792aca;
constexpr uint32_t kExtFeatureNames = 0x6803f857;

enum class Compression : uint8_t { kDeflate = 0, kZstd = 1 };

// L1 entries: bits 9-55 the L2 table's offset, bit 63 "refcount is exactly one".
constexpr uint64_t kL1OffsetMask = 0x00fffffffffffe00ull;
constexpr uint64_t kL1ReservedMask = 0x7f000000000001ffull;
// Standard L2 entries: bit 0 reads as zeroes (v3), bits 9-55 the data cluster's offset,
// bit 62 compressed, bit 63 "refcount is exactly one".
constexpr uint64_t kEntryCopied = 1ull << 63;
constexpr uint64_t kEntryCompressed = 1ull << 62;
constexpr uint64_t kL2Zero = 1ull << 0;
constexpr uint64_t kL2OffsetMask = 0x00fffffffffffe00ull;
constexpr uint64_t kL2ReservedMask = 0x3f000000000001feull;
// Refcount table entries: bits 9-63 the refcount block's offset, bits 0-8 reserved.
constexpr uint64_t kReftableOffsetMask = 0xfffffffffffffe00ull;

struct FeatureName {
  uint8_t type = 0;  // 0 incompatible, 1 compatible, 2 autoclear
  uint8_t bit = 0;
  std::string name;
};

struct Header {
  uint32_t version = 3;
  uint64_t backing_file_offset = 0;
  uint32_t backing_file_size = 0;
  uint32_t cluster_bits = 16;
  uint64_t size = 0;
  uint32_t crypt_method = 0;
  uint32_t l1_size = 0;
  uint64_t l1_table_offset = 0;
  uint64_t refcount_table_offset = 0;
  uint32_t refcount_table_clusters = 0;
  uint32_t nb_snapshots = 0;
  uint64_t snapshots_offset = 0;
  // Version 3 (version 2 reads these as zero / the defaults).
  uint64_t incompatible_features = 0;
  uint64_t compatible_features = 0;
  uint64_t autoclear_features = 0;
  uint32_t refcount_order = 4;
  uint32_t header_length = kV3HeaderBytes;
  Compression compression = Compression::kDeflate;
  // From the extensions and the backing file name.
  std::string backing_file;
  std::string backing_format;  // empty: not recorded
  std::vector<FeatureName> feature_names;

  uint64_t cluster_size() const { return 1ull << cluster_bits; }
  uint32_t l2_bits() const { return cluster_bits - 3; }            // 8-byte entries
  uint32_t refcount_bits() const { return 1u << refcount_order; }
  // log2 of the number of refcounts in one refcount block.
  uint32_t refblock_bits() const { return cluster_bits + 3 - refcount_order; }
};

// Parses and validates the header at the start of `bytes` (the image's first cluster, or
// all of the file if shorter). file_size bounds every table. Errors name `path` and the
// field: "x.qcow2: l1_table_offset 0x123 is not cluster-aligned".
Result<Header> parse_header(std::span<const uint8_t> bytes, uint64_t file_size, const std::string& path);

// Whether the first bytes of a file are a qcow2 (or qcow1) magic.
bool has_magic(std::span<const uint8_t> first_bytes);

// Names the unknown bits of an incompatible feature mask, using the image's feature
// name table where it has one: "bit 5, bit 7 (\"foo\")".
std::string describe_features(uint64_t mask, uint8_t type, const std::vector<FeatureName>& names);

// Refcount block entries are 1 << order bits wide: big-endian for 8 bits and more, packed
// from the least significant bit of each byte below that (as QEMU writes them).
uint64_t refcount_get(std::span<const uint8_t> block, uint64_t index, uint32_t order);
// Sets entry `index` to value (which must fit); returns the offset of the first changed byte
// and how many bytes changed, for writing just those back.
std::pair<size_t, size_t> refcount_set(std::span<uint8_t> block, uint64_t index, uint32_t order,
                                       uint64_t value);

// The L1 entries needed to map `size` bytes (0 if it cannot be mapped at all).
uint64_t l1_entries_for(uint64_t size, uint32_t cluster_bits);

// Header bytes of an image, for creation: the v3 header with compression type 0,
// a backing format extension if backing_format is set, the end extension, then the
// backing file name. Fits in one cluster (checked by the caller).
std::vector<uint8_t> serialize_header(const Header& header);

struct CreateOptions {
  uint64_t size = 0;            // bytes; 0 with a backing file: the backing file's size
  uint32_t cluster_bits = 16;   // 64 KiB, qemu-img's default
  uint32_t refcount_order = 4;  // 16-bit refcounts, qemu-img's default
  std::string backing_file;     // as stored in the image (relative to the image's directory)
  std::string backing_format;   // "raw" or "qcow2" when backing_file is set
};
// Creates a new, empty version 3 image at path (refuses to overwrite a file).
Result<void> create_image(const std::string& path, const CreateOptions& options);

}  // namespace doppel::qcow2
