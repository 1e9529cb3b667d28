#include "core/memory_diff.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cstring>

#include "base/bits.h"

namespace doppel::memdiff {

namespace {

// xxHash64's primes.
constexpr uint64_t kPrime1 = 0x9e3779b185ebca87ull;
constexpr uint64_t kPrime2 = 0xc2b2ae3d27d4eb4full;
constexpr uint64_t kPrime3 = 0x165667b19e3779f9ull;
constexpr uint64_t kPrime4 = 0x85ebca77c2b2ae63ull;

constexpr size_t kRecordsPerRead = 64;  // 256 KiB of pages per read

Result<void> pread_all(int fd, std::span<uint8_t> out, uint64_t offset, const std::string& path) {
  size_t done = 0;
  while (done < out.size()) {
    const ssize_t n = ::pread(fd, out.data() + done, out.size() - done,
                              static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Error::from_errno(fmt::format("memory diff {}: read", path));
    if (n == 0)
      return Error::format("memory diff {}: truncated: ends at byte {} while reading", path,
                           offset + done);
    done += static_cast<size_t>(n);
  }
  return ok();
}

}  // namespace

void Checksum::update(std::span<const uint8_t> bytes) {
  uint64_t h = m_state;
  size_t i = 0;
  for (; i + 8 <= bytes.size(); i += 8) {
    const uint64_t w = load_le<uint64_t>(bytes.data() + i);
    h ^= std::rotl(w * kPrime2, 31) * kPrime1;
    h = std::rotl(h, 27) * kPrime1 + kPrime4;
  }
  if (i < bytes.size()) {  // a tail, zero-padded (our callers feed whole words)
    uint64_t w = 0;
    std::memcpy(&w, bytes.data() + i, bytes.size() - i);
    h ^= std::rotl(w * kPrime2, 31) * kPrime1;
    h = std::rotl(h, 27) * kPrime1 + kPrime4;
  }
  m_state = h;
  m_length += bytes.size();
}

uint64_t Checksum::finish() const {
  uint64_t h = m_state ^ m_length;
  h ^= h >> 33;
  h *= kPrime2;
  h ^= h >> 29;
  h *= kPrime3;
  h ^= h >> 32;
  return h;
}

std::vector<uint8_t> encode_header(const Header& header) {
  std::vector<uint8_t> out(kHeaderSize + kRegionEntrySize * header.regions.size());
  uint8_t* p = out.data();
  std::memcpy(p, kMagic, sizeof kMagic);
  store_le<uint32_t>(p + 8, kVersion);
  store_le<uint32_t>(p + 12, static_cast<uint32_t>(kPageSize));
  store_le<uint64_t>(p + 16, header.ram_size);
  store_le<uint64_t>(p + 24, header.page_count);
  store_le<uint32_t>(p + 32, static_cast<uint32_t>(header.regions.size()));
  store_le<uint32_t>(p + 36, 0);
  store_le<uint64_t>(p + kChecksumOffset, header.checksum);
  for (size_t i = 0; i < header.regions.size(); ++i) {
    store_le<uint64_t>(p + kHeaderSize + kRegionEntrySize * i, header.regions[i].gpa);
    store_le<uint64_t>(p + kHeaderSize + kRegionEntrySize * i + 8, header.regions[i].size);
  }
  return out;
}

bool is_zero_page(const uint8_t* page) {
  // The first word is zero and every byte equals the one 8 further on: all zero.
  return load_le<uint64_t>(page) == 0 && std::memcmp(page, page + 8, kPageSize - 8) == 0;
}

Result<void> pwrite_all(int fd, std::span<const uint8_t> bytes, uint64_t offset,
                        const std::string& path) {
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::pwrite(fd, bytes.data() + done, bytes.size() - done,
                               static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Error::from_errno(fmt::format("{}: write at byte {}", path, offset + done));
    if (n == 0) return Error::format("{}: write at byte {} wrote nothing", path, offset + done);
    done += static_cast<size_t>(n);
  }
  return ok();
}

// ---- Reader ----

Result<Reader> Reader::open(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return Error::from_errno(fmt::format("memory diff {}", path));
  struct stat st {};
  if (fstat(fd.get(), &st) != 0) return Error::from_errno(fmt::format("memory diff {}: stat", path));
  if (!S_ISREG(st.st_mode)) return Error::format("memory diff {}: not a regular file", path);
  const auto file_size = static_cast<uint64_t>(st.st_size);
  if (file_size < kHeaderSize)
    return Error::format("memory diff {}: truncated: {} bytes, shorter than the {}-byte header",
                         path, file_size, kHeaderSize);

  std::vector<uint8_t> raw(kHeaderSize);
  TRY(pread_all(fd.get(), raw, 0, path));
  const uint8_t* p = raw.data();
  if (std::memcmp(p, kMagic, sizeof kMagic) != 0)
    return Error::format("memory diff {}: not a doppel memory diff (no \"DPLMDIFF\" magic)", path);
  const auto version = load_le<uint32_t>(p + 8);
  if (version != kVersion)
    return Error::format("memory diff {}: format version {} unknown (this doppel reads {})", path,
                         version, kVersion);
  const auto page_size = load_le<uint32_t>(p + 12);
  if (page_size != kPageSize)
    return Error::format("memory diff {}: page size {} (expected {})", path, page_size, kPageSize);
  Header h;
  h.ram_size = load_le<uint64_t>(p + 16);
  h.page_count = load_le<uint64_t>(p + 24);
  const auto region_count = load_le<uint32_t>(p + 32);
  const auto flags = load_le<uint32_t>(p + 36);
  h.checksum = load_le<uint64_t>(p + kChecksumOffset);
  if (flags != 0) return Error::format("memory diff {}: unknown flags {:#x}", path, flags);
  if (region_count == 0 || region_count > kMaxRegions)
    return Error::format("memory diff {}: {} memory regions (1 to {} allowed)", path, region_count,
                         kMaxRegions);
  const uint64_t table_end = kHeaderSize + kRegionEntrySize * region_count;
  if (file_size < table_end)
    return Error::format("memory diff {}: truncated: {} bytes, shorter than its header and "
                         "region table ({} bytes)", path, file_size, table_end);
  raw.resize(table_end);
  TRY(pread_all(fd.get(), std::span(raw).subspan(kHeaderSize), kHeaderSize, path));

  uint64_t sum = 0;
  for (uint32_t i = 0; i < region_count; ++i) {
    const uint8_t* e = raw.data() + kHeaderSize + kRegionEntrySize * i;
    const Region r{load_le<uint64_t>(e), load_le<uint64_t>(e + 8)};
    if (r.size == 0 || r.gpa % kPageSize || r.size % kPageSize || r.gpa + r.size < r.gpa)
      return Error::format("memory diff {}: region {} ({:#x}+{:#x}) is empty, unaligned or wraps",
                           path, i, r.gpa, r.size);
    if (!h.regions.empty() && h.regions.back().gpa + h.regions.back().size > r.gpa)
      return Error::format("memory diff {}: region {} ({:#x}) overlaps or precedes the one before",
                           path, i, r.gpa);
    if (sum + r.size < sum)
      return Error::format("memory diff {}: regions add up to more than 2^64 bytes", path);
    sum += r.size;
    h.regions.push_back(r);
  }
  if (sum != h.ram_size)
    return Error::format("memory diff {}: RAM size {} but its regions add up to {}", path,
                         h.ram_size, sum);
  if (h.page_count > h.ram_size / kPageSize)
    return Error::format("memory diff {}: {} pages, more than the {} pages of RAM", path,
                         h.page_count, h.ram_size / kPageSize);
  uint64_t expected = 0;
  if (__builtin_mul_overflow(h.page_count, kRecordSize, &expected) ||
      __builtin_add_overflow(expected, table_end, &expected))
    return Error::format("memory diff {}: {} pages cannot fit in a file", path, h.page_count);
  if (file_size < expected)
    return Error::format("memory diff {}: truncated: {} bytes, its header announces {} pages "
                         "({} bytes)", path, file_size, h.page_count, expected);
  if (file_size > expected)
    return Error::format("memory diff {}: {} bytes of unexpected data after its {} pages", path,
                         file_size - expected, h.page_count);
  return Reader(path, std::move(fd), std::move(h), std::move(raw));
}

Result<void> Reader::pages(const PageFn& fn) const {
  Checksum sum;
  sum.update(std::span(m_raw_header).first(kChecksumOffset));
  sum.update(std::span(m_raw_header).subspan(kHeaderSize));
  std::vector<uint8_t> buf;
  uint64_t at = m_raw_header.size();
  uint64_t index = 0;
  uint64_t next_allowed = 0;  // the lowest offset the next record may have
  while (index < m_header.page_count) {
    const uint64_t n = std::min<uint64_t>(kRecordsPerRead, m_header.page_count - index);
    buf.resize(n * kRecordSize);
    TRY(pread_all(m_fd.get(), buf, at, m_path));
    sum.update(buf);
    for (uint64_t i = 0; i < n; ++i, ++index) {
      const uint8_t* rec = buf.data() + i * kRecordSize;
      const auto offset = load_le<uint64_t>(rec);
      if (offset % kPageSize != 0)
        return Error::format("memory diff {}: page {}: offset {:#x} is not page-aligned", m_path,
                             index, offset);
      if (offset >= m_header.ram_size)
        return Error::format("memory diff {}: page {}: offset {:#x} lies beyond the {} bytes of RAM",
                             m_path, index, offset, m_header.ram_size);
      if (offset < next_allowed)
        return Error::format("memory diff {}: page {}: offset {:#x} is not above the previous "
                             "page's (pages must be in ascending order)", m_path, index, offset);
      next_allowed = offset + kPageSize;
      if (fn) TRY(fn(offset, std::span<const uint8_t>(rec + 8, kPageSize)));
    }
    at += n * kRecordSize;
  }
  const uint64_t computed = sum.finish();
  if (computed != m_header.checksum)
    return Error::format("memory diff {}: checksum mismatch (the file is corrupt): stored {:#018x}, "
                         "computed {:#018x}", m_path, m_header.checksum, computed);
  return ok();
}

// ---- AtomicFile ----

Result<AtomicFile> AtomicFile::create(const std::string& path) {
  std::string tmp = path + ".tmp";
  UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (!fd.valid()) return Error::from_errno(fmt::format("{}: create", tmp));
  return AtomicFile(path, std::move(tmp), std::move(fd));
}

AtomicFile::AtomicFile(AtomicFile&& other) noexcept
    : m_path(std::move(other.m_path)), m_tmp(std::exchange(other.m_tmp, {})),
      m_fd(std::move(other.m_fd)) {}

AtomicFile::~AtomicFile() {
  if (!m_tmp.empty()) ::unlink(m_tmp.c_str());
}

Result<void> AtomicFile::pwrite_all(std::span<const uint8_t> bytes, uint64_t offset) {
  return memdiff::pwrite_all(m_fd.get(), bytes, offset, m_tmp);
}

Result<void> AtomicFile::truncate(uint64_t size) {
  if (::ftruncate(m_fd.get(), static_cast<off_t>(size)) != 0)
    return Error::from_errno(fmt::format("{}: set size to {} bytes", m_tmp, size));
  return ok();
}

Result<void> AtomicFile::commit() {
  if (::fsync(m_fd.get()) != 0) return Error::from_errno(fmt::format("{}: fsync", m_tmp));
  if (::rename(m_tmp.c_str(), m_path.c_str()) != 0)
    return Error::from_errno(fmt::format("rename {} to {}", m_tmp, m_path));
  m_tmp.clear();
  m_fd.reset();
  // The rename itself is durable once the directory is.
  const auto slash = m_path.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : m_path.substr(0, slash);
  UniqueFd dfd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dfd.valid() && ::fsync(dfd.get()) != 0 && errno != EINVAL)
    return Error::from_errno(fmt::format("{}: fsync of the directory", dir));
  return ok();
}

// ---- Writer ----

Result<Writer> Writer::create(const std::string& path, Header header) {
  if (header.regions.empty() || header.regions.size() > kMaxRegions)
    return Error::format("memory diff {}: {} memory regions (1 to {} allowed)", path,
                         header.regions.size(), kMaxRegions);
  AtomicFile file = TRY(AtomicFile::create(path));
  header.checksum = 0;
  const std::vector<uint8_t> raw = encode_header(header);
  TRY(file.pwrite_all(raw, 0));
  Writer w(std::move(file), std::move(header));
  w.m_checksum.update(std::span(raw).first(kChecksumOffset));
  w.m_checksum.update(std::span(raw).subspan(kHeaderSize));
  w.m_at = raw.size();
  return w;
}

Result<void> Writer::add_page(uint64_t offset, std::span<const uint8_t> page) {
  if (page.size() != kPageSize || m_pages >= m_header.page_count)
    return Error::format("memory diff {}: page {} at {:#x} does not fit the header", m_file.path(),
                         m_pages, offset);
  const size_t at = m_buffer.size();
  m_buffer.resize(at + kRecordSize);
  store_le<uint64_t>(m_buffer.data() + at, offset);
  std::memcpy(m_buffer.data() + at + 8, page.data(), kPageSize);
  ++m_pages;
  if (m_buffer.size() >= kRecordsPerRead * kRecordSize) TRY(flush());
  return ok();
}

Result<void> Writer::flush() {
  m_checksum.update(m_buffer);
  TRY(m_file.pwrite_all(m_buffer, m_at));
  m_at += m_buffer.size();
  m_buffer.clear();
  return ok();
}

Result<void> Writer::finish() {
  TRY(flush());
  if (m_pages != m_header.page_count)
    return Error::format("memory diff {}: {} pages written, the header announces {}", m_file.path(),
                         m_pages, m_header.page_count);
  uint8_t sum[8];
  store_le<uint64_t>(sum, m_checksum.finish());
  TRY(m_file.pwrite_all(sum, kChecksumOffset));
  return m_file.commit();
}

}  // namespace doppel::memdiff
