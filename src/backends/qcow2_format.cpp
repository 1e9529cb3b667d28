#include "backends/qcow2_format.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "base/bits.h"
#include "base/unique_fd.h"

namespace doppel::qcow2 {

bool has_magic(std::span<const uint8_t> first_bytes) {
  return first_bytes.size() >= 4 && load_be<uint32_t>(first_bytes.data()) == kMagic;
}

uint64_t l1_entries_for(uint64_t size, uint32_t cluster_bits) {
  const uint32_t shift = 2 * cluster_bits - 3;  // bytes one L1 entry maps: cluster * entries
  return (size >> shift) + ((size & ((1ull << shift) - 1)) != 0 ? 1 : 0);
}

std::string describe_features(uint64_t mask, uint8_t type, const std::vector<FeatureName>& names) {
  std::string out;
  for (uint8_t b = 0; b < 64; b++) {
    if (!(mask & (1ull << b))) continue;
    std::string one = fmt::format("bit {}", b);
    for (const auto& n : names)
      if (n.type == type && n.bit == b) one += fmt::format(" (\"{}\")", n.name);
    out += (out.empty() ? "" : ", ") + one;
  }
  return out;
}

uint64_t refcount_get(std::span<const uint8_t> block, uint64_t index, uint32_t order) {
  if (order >= 3) {
    const size_t width = size_t{1} << (order - 3);
    const uint8_t* p = block.data() + index * width;
    uint64_t v = 0;
    for (size_t i = 0; i < width; i++) v = (v << 8) | p[i];
    return v;
  }
  const uint32_t per_byte = 8u >> order;
  const uint8_t byte = block[index / per_byte];
  const uint32_t shift = static_cast<uint32_t>(index % per_byte) << order;
  return (byte >> shift) & ((1u << (1u << order)) - 1);
}

std::pair<size_t, size_t> refcount_set(std::span<uint8_t> block, uint64_t index, uint32_t order,
                                       uint64_t value) {
  if (order >= 3) {
    const size_t width = size_t{1} << (order - 3);
    const size_t first = static_cast<size_t>(index) * width;
    for (size_t i = 0; i < width; i++)
      block[first + width - 1 - i] = static_cast<uint8_t>(value >> (8 * i));
    return {first, width};
  }
  const uint32_t per_byte = 8u >> order;
  const size_t at = static_cast<size_t>(index / per_byte);
  const uint32_t shift = static_cast<uint32_t>(index % per_byte) << order;
  const uint32_t mask = ((1u << (1u << order)) - 1) << shift;
  block[at] = static_cast<uint8_t>((block[at] & ~mask) | ((static_cast<uint32_t>(value) << shift) & mask));
  return {at, 1};
}

namespace {

// Whether [offset, offset+len) lies inside a file of file_size bytes (no overflow).
bool inside(uint64_t offset, uint64_t len, uint64_t file_size) {
  return offset <= file_size && len <= file_size - offset;
}

Result<void> parse_extensions(Header& h, std::span<const uint8_t> bytes, uint64_t start,
                              uint64_t end, const std::string& path) {
  uint64_t off = start;
  while (off + 8 <= end) {
    const uint32_t type = load_be<uint32_t>(&bytes[off]);
    const uint32_t len = load_be<uint32_t>(&bytes[off + 4]);
    if (type == kExtEnd) return {};
    if (len > end - off - 8)
      return Error::format("{}: header extension {:#x} at byte {} ({} bytes) overruns the header area",
                           path, type, off, len);
    const uint8_t* data = &bytes[off + 8];
    if (type == kExtBackingFormat) {
      if (len == 0 || len > kMaxBackingNameBytes)
        return Error::format("{}: backing format extension of {} bytes", path, len);
      h.backing_format.assign(reinterpret_cast<const char*>(data), len);
    } else if (type == kExtFeatureNames) {
      // 48-byte entries: type, bit number, a 46-byte name padded with NULs.
      for (uint32_t i = 0; i + 48 <= len; i += 48) {
        FeatureName n;
        n.type = data[i];
        n.bit = data[i + 1];
        const char* name = reinterpret_cast<const char*>(data + i + 2);
        n.name.assign(name, strnlen(name, 46));
        h.feature_names.push_back(std::move(n));
      }
    }
    // Other extensions (bitmaps, encryption, external data file name) only matter together
    // with feature bits checked elsewhere.
    off += 8 + align_up(len, 8);
  }
  return {};
}

}  // namespace

Result<Header> parse_header(std::span<const uint8_t> bytes, uint64_t file_size, const std::string& path) {
  if (!has_magic(bytes)) return Error::format("{}: not a qcow2 image (no QFI\\xfb header)", path);
  if (bytes.size() < kV2HeaderBytes)
    return Error::format("{}: truncated qcow2 header ({} bytes)", path, bytes.size());
  Header h;
  h.version = load_be<uint32_t>(&bytes[4]);
  if (h.version != 2 && h.version != 3)
    return Error::format("{}: qcow2 version {} is not supported (2 and 3 are)", path, h.version);
  h.backing_file_offset = load_be<uint64_t>(&bytes[8]);
  h.backing_file_size = load_be<uint32_t>(&bytes[16]);
  h.cluster_bits = load_be<uint32_t>(&bytes[20]);
  h.size = load_be<uint64_t>(&bytes[24]);
  h.crypt_method = load_be<uint32_t>(&bytes[32]);
  h.l1_size = load_be<uint32_t>(&bytes[36]);
  h.l1_table_offset = load_be<uint64_t>(&bytes[40]);
  h.refcount_table_offset = load_be<uint64_t>(&bytes[48]);
  h.refcount_table_clusters = load_be<uint32_t>(&bytes[56]);
  h.nb_snapshots = load_be<uint32_t>(&bytes[60]);
  h.snapshots_offset = load_be<uint64_t>(&bytes[64]);

  if (h.cluster_bits < kMinClusterBits || h.cluster_bits > kMaxClusterBits)
    return Error::format("{}: cluster_bits {} is outside {}..{} (512 bytes to 2 MiB)", path,
                         h.cluster_bits, kMinClusterBits, kMaxClusterBits);
  const uint64_t cs = h.cluster_size();
  // The header, its extensions and the backing file name all live in the first cluster.
  const uint64_t area = std::min<uint64_t>(cs, bytes.size());

  if (h.version == 3) {
    if (bytes.size() < kV3HeaderBytes)
      return Error::format("{}: too short for a version 3 header ({} bytes)", path, bytes.size());
    h.incompatible_features = load_be<uint64_t>(&bytes[72]);
    h.compatible_features = load_be<uint64_t>(&bytes[80]);
    h.autoclear_features = load_be<uint64_t>(&bytes[88]);
    h.refcount_order = load_be<uint32_t>(&bytes[96]);
    h.header_length = load_be<uint32_t>(&bytes[100]);
    if (h.header_length < kV3HeaderBytes || h.header_length % 8 != 0 || h.header_length > area)
      return Error::format("{}: header_length {} is not a multiple of 8 between {} and {}", path,
                           h.header_length, kV3HeaderBytes, area);
    const uint8_t compression = h.header_length > kV3HeaderBytes ? bytes[104] : 0;
    const bool has_type_bit = h.incompatible_features & kIncompatCompressionType;
    if (has_type_bit != (compression != 0))
      return Error::format("{}: compression type {} does not agree with incompatible feature bit 3", path,
                           compression);
    if (compression > static_cast<uint8_t>(Compression::kZstd))
      return Error::format("{}: unknown compression type {} (0 deflate, 1 zstd)", path, compression);
    h.compression = static_cast<Compression>(compression);
  } else {
    h.header_length = kV2HeaderBytes;
    h.refcount_order = 4;
  }

  // The backing file name; the extensions end where it starts.
  uint64_t ext_end = area;
  if (h.backing_file_offset != 0) {
    if (h.backing_file_size == 0 || h.backing_file_size > kMaxBackingNameBytes)
      return Error::format("{}: backing file name of {} bytes (1 to {})", path, h.backing_file_size,
                           kMaxBackingNameBytes);
    if (h.backing_file_offset < h.header_length || !inside(h.backing_file_offset, h.backing_file_size, area))
      return Error::format("{}: backing file name at byte {} ({} bytes) is outside the header cluster",
                           path, h.backing_file_offset, h.backing_file_size);
    h.backing_file.assign(reinterpret_cast<const char*>(&bytes[h.backing_file_offset]), h.backing_file_size);
    if (h.backing_file.find('\0') != std::string::npos)
      return Error::format("{}: the backing file name contains a NUL byte", path);
    ext_end = h.backing_file_offset;
  }
  if (h.header_length < ext_end) TRY(parse_extensions(h, bytes, h.header_length, ext_end, path));

  if (const uint64_t unknown = h.incompatible_features & ~kKnownIncompatible; unknown)
    return Error::format("{}: unknown incompatible features {}: doppel cannot use this image", path,
                         describe_features(unknown, 0, h.feature_names));
  if (h.incompatible_features & kIncompatExtendedL2)
    return Error::format("{}: uses extended L2 entries (subclusters, incompatible feature bit 4), which "
                         "doppel does not support; `qemu-img convert -O qcow2` makes a copy without them",
                         path);
  if (h.incompatible_features & kIncompatExternalData)
    return Error::format("{}: keeps its data in an external data file (incompatible feature bit 2), "
                         "which doppel does not support", path);
  if (h.crypt_method != 0)
    return Error::format("{}: encrypted images (crypt_method {}) are not supported", path, h.crypt_method);
  if (h.refcount_order > 6)
    return Error::format("{}: refcount_order {} is more than 6 (64-bit refcounts)", path, h.refcount_order);

  // The L1 table: big enough for the virtual size, inside the file, cluster-aligned.
  if (uint64_t{h.l1_size} * 8 > kMaxL1Bytes)
    return Error::format("{}: l1_size {} is larger than doppel's (and QEMU's) 32 MiB limit", path, h.l1_size);
  if (l1_entries_for(h.size, h.cluster_bits) > h.l1_size)
    return Error::format("{}: l1_size {} cannot map the virtual size {} bytes", path, h.l1_size, h.size);
  if (h.l1_size > 0) {
    if (h.l1_table_offset == 0 || h.l1_table_offset % cs != 0)
      return Error::format("{}: l1_table_offset {:#x} is not a cluster-aligned offset after the header",
                           path, h.l1_table_offset);
    if (!inside(h.l1_table_offset, uint64_t{h.l1_size} * 8, file_size))
      return Error::format("{}: the L1 table at {:#x} ({} entries) runs past the end of the file ({} bytes)",
                           path, h.l1_table_offset, h.l1_size, file_size);
  }
  // The refcount table.
  if (h.refcount_table_offset == 0 || h.refcount_table_offset % cs != 0)
    return Error::format("{}: refcount_table_offset {:#x} is not a cluster-aligned offset after the header",
                         path, h.refcount_table_offset);
  if (h.refcount_table_clusters == 0 ||
      uint64_t{h.refcount_table_clusters} * cs > std::max(kMaxRefcountTableBytes, cs))
    return Error::format("{}: refcount_table_clusters {} is outside 1..{}", path, h.refcount_table_clusters,
                         std::max<uint64_t>(kMaxRefcountTableBytes / cs, 1));
  if (!inside(h.refcount_table_offset, uint64_t{h.refcount_table_clusters} * cs, file_size))
    return Error::format("{}: the refcount table at {:#x} ({} clusters) runs past the end of the file ({} bytes)",
                         path, h.refcount_table_offset, h.refcount_table_clusters, file_size);
  if (h.nb_snapshots > 0 && (h.snapshots_offset == 0 || h.snapshots_offset % cs != 0 ||
                             h.snapshots_offset >= file_size))
    return Error::format("{}: snapshots_offset {:#x} is not a cluster-aligned offset inside the file", path,
                         h.snapshots_offset);
  return h;
}

std::vector<uint8_t> serialize_header(const Header& h) {
  std::vector<uint8_t> out(112, 0);
  store_be<uint32_t>(&out[0], kMagic);
  store_be<uint32_t>(&out[4], 3);
  store_be<uint32_t>(&out[20], h.cluster_bits);
  store_be<uint64_t>(&out[24], h.size);
  store_be<uint32_t>(&out[36], h.l1_size);
  store_be<uint64_t>(&out[40], h.l1_table_offset);
  store_be<uint64_t>(&out[48], h.refcount_table_offset);
  store_be<uint32_t>(&out[56], h.refcount_table_clusters);
  store_be<uint64_t>(&out[72], h.incompatible_features);
  store_be<uint64_t>(&out[80], h.compatible_features);
  store_be<uint64_t>(&out[88], h.autoclear_features);
  store_be<uint32_t>(&out[96], h.refcount_order);
  store_be<uint32_t>(&out[100], 112);  // compression type byte 104 (0: deflate) and padding
  auto extension = [&](uint32_t type, const std::string& data) {
    const size_t at = out.size();
    out.resize(at + 8 + align_up(data.size(), 8), 0);
    store_be<uint32_t>(&out[at], type);
    store_be<uint32_t>(&out[at + 4], static_cast<uint32_t>(data.size()));
    std::copy(data.begin(), data.end(), out.begin() + static_cast<ptrdiff_t>(at + 8));
  };
  if (!h.backing_format.empty()) extension(kExtBackingFormat, h.backing_format);
  out.resize(out.size() + 8, 0);  // the end extension
  if (!h.backing_file.empty()) {
    store_be<uint64_t>(&out[8], out.size());
    store_be<uint32_t>(&out[16], static_cast<uint32_t>(h.backing_file.size()));
    out.insert(out.end(), h.backing_file.begin(), h.backing_file.end());
  }
  return out;
}

Result<void> create_image(const std::string& path, const CreateOptions& o) {
  if (o.cluster_bits < kMinClusterBits || o.cluster_bits > kMaxClusterBits)
    return Error::format("{}: cluster size 2^{} is outside 512 bytes..2 MiB", path, o.cluster_bits);
  if (o.refcount_order > 6) return Error::format("{}: refcount order {} is more than 6", path, o.refcount_order);
  if (o.size == 0 || o.size % 512 != 0)
    return Error::format("{}: size {} is not a positive multiple of 512 bytes", path, o.size);
  if (o.backing_file.size() > kMaxBackingNameBytes)
    return Error::format("{}: the backing file name is longer than {} bytes", path, kMaxBackingNameBytes);
  Header h;
  h.cluster_bits = o.cluster_bits;
  h.refcount_order = o.refcount_order;
  h.size = o.size;
  h.backing_file = o.backing_file;
  h.backing_format = o.backing_file.empty() ? "" : o.backing_format;
  const uint64_t cs = h.cluster_size();
  const uint64_t l1_entries = l1_entries_for(o.size, o.cluster_bits);
  if (l1_entries * 8 > kMaxL1Bytes)
    return Error::format("{}: {} bytes is too large for {}-byte clusters", path, o.size, cs);
  h.l1_size = static_cast<uint32_t>(l1_entries);
  // Layout: header, refcount table, one refcount block, L1 table.
  const uint64_t l1_clusters = std::max<uint64_t>(1, align_up(l1_entries * 8, cs) / cs);
  const uint64_t clusters = 3 + l1_clusters;
  if (clusters > (1ull << h.refblock_bits()))
    return Error::format("{}: {} bytes is too large for {}-byte clusters with {}-bit refcounts", path,
                         o.size, cs, h.refcount_bits());
  h.refcount_table_offset = cs;
  h.refcount_table_clusters = 1;
  h.l1_table_offset = 3 * cs;
  const std::vector<uint8_t> header = serialize_header(h);
  if (header.size() > cs)
    return Error::format("{}: the header and backing file name do not fit in a {}-byte cluster", path, cs);

  std::vector<uint8_t> image(3 * cs, 0);
  std::copy(header.begin(), header.end(), image.begin());
  store_be<uint64_t>(&image[cs], 2 * cs);  // refcount table entry 0: the block in cluster 2
  for (uint64_t c = 0; c < clusters; c++)
    refcount_set(std::span<uint8_t>(image).subspan(2 * cs, cs), c, h.refcount_order, 1);

  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
  if (!fd.valid()) return Error::from_errno(path);
  auto fail = [&](std::string_view what) {
    Error e = Error::from_errno(fmt::format("{}: {}", path, what));
    ::unlink(path.c_str());
    return e;
  };
  if (::pwrite(fd.get(), image.data(), image.size(), 0) != static_cast<ssize_t>(image.size()))
    return fail("write");
  // The L1 table is all zeroes: extending the file writes it.
  if (::ftruncate(fd.get(), static_cast<off_t>(clusters * cs)) != 0) return fail("truncate");
  if (::fdatasync(fd.get()) != 0) return fail("fdatasync");
  return {};
}

}  // namespace doppel::qcow2
