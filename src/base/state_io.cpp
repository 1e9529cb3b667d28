#include "base/state_io.h"

#include <algorithm>
#include <limits>

#include <zlib.h>

namespace doppel {

// zlib's: the same polynomial, and several times the speed of a byte-wise table (a live
// migration checks every page it sends).
uint32_t crc32(std::span<const uint8_t> data, uint32_t crc) {
  uLong c = crc;
  while (!data.empty()) {
    const auto n = static_cast<uInt>(std::min<size_t>(data.size(), std::numeric_limits<uInt>::max()));
    c = ::crc32(c, data.data(), n);
    data = data.subspan(n);
  }
  return static_cast<uint32_t>(c);
}

Error StateReader::truncated(std::string_view what, size_t needed) const {
  return Error::format("{}: truncated at byte {} ({} bytes needed, {} left)", what, m_offset,
                       needed, remaining());
}

Result<int64_t> StateReader::read_i64(std::string_view what) {
  return static_cast<int64_t>(TRY(read_u64(what)));
}

Result<bool> StateReader::read_bool(std::string_view what) {
  const size_t at = m_offset;
  const uint8_t v = TRY(read_u8(what));
  if (v > 1) return Error::format("{}: {} at byte {} is not a boolean (0 or 1)", what, v, at);
  return v == 1;
}

Result<std::span<const uint8_t>> StateReader::read_bytes(size_t n, std::string_view what) {
  if (remaining() < n) return truncated(what, n);
  const auto bytes = m_data.subspan(m_offset, n);
  m_offset += n;
  return bytes;
}

Result<std::string> StateReader::read_string(std::string_view what, size_t max_size) {
  const size_t at = m_offset;
  const uint32_t n = TRY(read_u32(what));
  if (n > max_size)
    return Error::format("{}: length {} at byte {} exceeds the limit of {}", what, n, at, max_size);
  const auto bytes = TRY(read_bytes(n, what));
  return std::string(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

Result<std::vector<uint8_t>> StateReader::read_blob(std::string_view what, uint64_t max_size) {
  const size_t at = m_offset;
  const uint64_t n = TRY(read_u64(what));
  if (n > max_size)
    return Error::format("{}: length {} at byte {} exceeds the limit of {}", what, n, at, max_size);
  if (n > remaining())
    return Error::format("{}: length {} at byte {} but only {} bytes follow", what, n, at,
                         remaining());
  const auto bytes = TRY(read_bytes(static_cast<size_t>(n), what));
  return std::vector<uint8_t>(bytes.begin(), bytes.end());
}

Result<size_t> StateReader::read_count(std::string_view what, size_t max_count,
                                       size_t min_element_size) {
  const size_t at = m_offset;
  const uint32_t n = TRY(read_u32(what));
  if (n > max_count)
    return Error::format("{}: {} entries at byte {} exceed the limit of {}", what, n, at,
                         max_count);
  if (min_element_size > 0 && n > remaining() / min_element_size)
    return Error::format("{}: {} entries at byte {} need at least {} bytes, {} follow", what, n,
                         at, uint64_t{n} * min_element_size, remaining());
  return static_cast<size_t>(n);
}

Result<void> StateReader::expect_end(std::string_view what) const {
  if (at_end()) return ok();
  return Error::format("{}: {} bytes left over at byte {}", what, remaining(), m_offset);
}

}  // namespace doppel
