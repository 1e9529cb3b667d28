// The diff memory file of a diff snapshot: the guest RAM pages written since the previous
// snapshot, to lay over that snapshot's memory (GuestMemory::apply_diff_file(),
// merge_diff_into()). Also the atomic file writing both memory files use.
//
// Format, version 1. All integers little-endian.
//
//   offset  size  field
//        0     8  magic "DPLMDIFF"
//        8     4  version (1)
//       12     4  page size (4096)
//       16     8  RAM size: bytes of the full memory file this diff applies to
//       24     8  page count
//       32     4  region count (1 to 64)
//       36     4  flags (0; readers refuse others)
//       40     8  checksum: diff_checksum() of the whole file with these 8 bytes left out
//       48        region table: per region, ascending, gpa (8) and size (8); they add up to
//                 the RAM size
//      ...        page count records: the page's offset in the full memory file (8; a
//                 multiple of the page size, strictly ascending), then its 4096 bytes
//
// Offsets (not guest addresses) let `doppel snapshot merge` fold a diff into a memory file
// without knowing the VM; the region table lets a restore refuse a diff made for another
// RAM layout. Readers check every field, the exact file size and the checksum, and name the
// file and the reason when they refuse one.
//
// Threads: none shared; each object belongs to its caller.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"

namespace doppel::memdiff {

constexpr char kMagic[8] = {'D', 'P', 'L', 'M', 'D', 'I', 'F', 'F'};
constexpr uint32_t kVersion = 1;
constexpr uint64_t kPageSize = 4096;
constexpr uint64_t kHeaderSize = 48;
constexpr uint64_t kChecksumOffset = 40;
constexpr uint64_t kRegionEntrySize = 16;
constexpr uint64_t kRecordSize = 8 + kPageSize;
constexpr uint32_t kMaxRegions = 64;

struct Region {
  uint64_t gpa = 0;
  uint64_t size = 0;
  bool operator==(const Region&) const = default;
};

struct Header {
  uint64_t ram_size = 0;
  uint64_t page_count = 0;
  std::vector<Region> regions;
  uint64_t checksum = 0;
};

// A 64-bit checksum against corruption (not against tampering), fed in pieces whose sizes
// are multiples of 8 bytes: one multiply-rotate round per 8-byte word, then a final mix with
// the length (the rounds and the finish of xxHash64).
class Checksum {
 public:
  void update(std::span<const uint8_t> bytes);  // bytes.size() % 8 == 0
  uint64_t finish() const;

 private:
  uint64_t m_state = 0x9e3779b97f4a7c15ull;
  uint64_t m_length = 0;
};

// The header's serialized bytes (kHeaderSize + the region table), checksum field included.
std::vector<uint8_t> encode_header(const Header& header);

// Reads a diff file. open() checks the header and that the file size is exactly what the
// header announces; pages() walks the records, checking order and bounds, and at the end the
// checksum; with a callback it hands over each page as it goes (so a caller that must not
// act on a bad file runs pages() once without one first).
class Reader {
 public:
  static Result<Reader> open(const std::string& path);
  const Header& header() const { return m_header; }
  const std::string& path() const { return m_path; }
  using PageFn = std::function<Result<void>(uint64_t offset, std::span<const uint8_t> page)>;
  Result<void> pages(const PageFn& fn = nullptr) const;

 private:
  Reader(std::string path, UniqueFd fd, Header header, std::vector<uint8_t> raw)
      : m_path(std::move(path)), m_fd(std::move(fd)), m_header(std::move(header)),
        m_raw_header(std::move(raw)) {}
  std::string m_path;
  UniqueFd m_fd;
  Header m_header;
  std::vector<uint8_t> m_raw_header;  // the header and region table as read
};

// A file written to `path`.tmp and renamed over `path` by commit() after an fsync(); the
// temporary is removed if the object dies uncommitted, so a failure leaves `path` as it was.
class AtomicFile {
 public:
  static Result<AtomicFile> create(const std::string& path);
  AtomicFile(AtomicFile&& other) noexcept;
  AtomicFile& operator=(AtomicFile&&) = delete;
  AtomicFile(const AtomicFile&) = delete;
  ~AtomicFile();

  int fd() const { return m_fd.get(); }
  const std::string& path() const { return m_path; }
  // All of `bytes` at `offset` (retrying short writes and EINTR).
  Result<void> pwrite_all(std::span<const uint8_t> bytes, uint64_t offset);
  Result<void> truncate(uint64_t size);
  Result<void> commit();

 private:
  AtomicFile(std::string path, std::string tmp, UniqueFd fd)
      : m_path(std::move(path)), m_tmp(std::move(tmp)), m_fd(std::move(fd)) {}
  std::string m_path;
  std::string m_tmp;  // empty once committed (or moved from)
  UniqueFd m_fd;
};

// Writes a diff: the header with a placeholder checksum, then add_page() for each page in
// ascending order, then finish() (the checksum, then commit()).
class Writer {
 public:
  static Result<Writer> create(const std::string& path, Header header);
  Result<void> add_page(uint64_t offset, std::span<const uint8_t> page);
  Result<void> finish();

 private:
  Writer(AtomicFile file, Header header) : m_file(std::move(file)), m_header(std::move(header)) {}
  Result<void> flush();
  AtomicFile m_file;
  Header m_header;
  Checksum m_checksum;
  std::vector<uint8_t> m_buffer;  // records not yet written
  uint64_t m_at = 0;              // file offset of m_buffer
  uint64_t m_pages = 0;
};

// Whether the kPageSize bytes at `page` are all zero.
bool is_zero_page(const uint8_t* page);
// All of `bytes` to `fd` at `offset`, retrying short writes and EINTR; errors name `path`.
Result<void> pwrite_all(int fd, std::span<const uint8_t> bytes, uint64_t offset,
                        const std::string& path);

}  // namespace doppel::memdiff
