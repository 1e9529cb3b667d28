// The byte encoding of saved state (snapshot and migration files): StateWriter appends
// little-endian fields to a buffer, StateReader takes them back out of one.
//
// A state file comes from disk or from another host, so the reader trusts nothing: every
// read is bounds-checked and returns a Result whose error names the field and the offset
// ("pc: truncated at byte 84 (8 bytes needed, 3 left)"), and every length read from the
// input is checked against the bytes that remain before anything is allocated for it, so
// a hostile file can neither crash the reader nor make it allocate more than the file's
// own size.
//
// Encoding: integers little-endian at their width, bool as one byte 0 or 1, strings and
// blobs as a u32 / u64 byte count then the bytes, vectors as a u32 element count then the
// elements. Plain structs (KVM's) as a u32 size then their bytes; the reader requires the
// size to be sizeof the struct.
//
// Threads: a writer or reader belongs to one thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "base/result.h"

namespace doppel {

// CRC-32 as zlib's crc32() and IEEE 802.3 define it (reflected polynomial 0xedb88320).
// Pass the previous result as `crc` to continue a running checksum.
uint32_t crc32(std::span<const uint8_t> data, uint32_t crc = 0);

class StateWriter {
 public:
  void write_u8(uint8_t v) { m_data.push_back(v); }
  void write_u16(uint16_t v) { append_le(v); }
  void write_u32(uint32_t v) { append_le(v); }
  void write_u64(uint64_t v) { append_le(v); }
  void write_i64(int64_t v) { append_le(static_cast<uint64_t>(v)); }
  void write_bool(bool v) { write_u8(v ? 1 : 0); }
  // Raw bytes, no length: the reader knows how many (read_bytes).
  void write_bytes(std::span<const uint8_t> bytes) {
    m_data.insert(m_data.end(), bytes.begin(), bytes.end());
  }
  // u32 byte count, then the bytes. Strings longer than 4 GiB do not occur in state.
  void write_string(std::string_view s) {
    write_u32(static_cast<uint32_t>(s.size()));
    write_bytes({reinterpret_cast<const uint8_t*>(s.data()), s.size()});
  }
  // u64 byte count, then the bytes.
  void write_blob(std::span<const uint8_t> bytes) {
    write_u64(bytes.size());
    write_bytes(bytes);
  }
  // u32 element count, then each element as `write_element(*this, element)` writes it.
  template <typename T, typename F>
  void write_vector(const std::vector<T>& v, F&& write_element) {
    write_u32(static_cast<uint32_t>(v.size()));
    for (const T& e : v) write_element(*this, e);
  }
  // A vector of integers, each at its width.
  template <typename T>
    requires std::is_integral_v<T>
  void write_int_vector(const std::vector<T>& v) {
    write_vector(v, [](StateWriter& w, T e) { w.append_le(e); });
  }
  // A plain struct as its bytes (u32 size first). For ABI structs with a fixed layout
  // (KVM's), read back on the same architecture only.
  template <typename T>
    requires std::is_trivially_copyable_v<T>
  void write_raw(const T& v) {
    write_u32(static_cast<uint32_t>(sizeof(T)));
    write_bytes({reinterpret_cast<const uint8_t*>(&v), sizeof(T)});
  }

  size_t size() const { return m_data.size(); }
  const std::vector<uint8_t>& data() const { return m_data; }
  std::vector<uint8_t> take() { return std::move(m_data); }

 private:
  template <typename T>
  void append_le(T v) {  // the host is little-endian (base/bits.h)
    uint8_t b[sizeof(T)];
    std::memcpy(b, &v, sizeof(T));
    m_data.insert(m_data.end(), b, b + sizeof(T));
  }

  std::vector<uint8_t> m_data;
};

class StateReader {
 public:
  explicit StateReader(std::span<const uint8_t> data) : m_data(data) {}

  // `what` names the field in errors.
  Result<uint8_t> read_u8(std::string_view what) { return read_le<uint8_t>(what); }
  Result<uint16_t> read_u16(std::string_view what) { return read_le<uint16_t>(what); }
  Result<uint32_t> read_u32(std::string_view what) { return read_le<uint32_t>(what); }
  Result<uint64_t> read_u64(std::string_view what) { return read_le<uint64_t>(what); }
  Result<int64_t> read_i64(std::string_view what);
  // Refuses any byte but 0 and 1.
  Result<bool> read_bool(std::string_view what);
  // `n` bytes, as a view into the input (valid while the input is).
  Result<std::span<const uint8_t>> read_bytes(size_t n, std::string_view what);
  // A string of at most max_size bytes.
  Result<std::string> read_string(std::string_view what, size_t max_size);
  // A blob of at most max_size bytes.
  Result<std::vector<uint8_t>> read_blob(std::string_view what, uint64_t max_size);
  // A u32 element count for a vector whose elements take at least min_element_size bytes
  // each: refused if above max_count, or if that many elements cannot fit in what is left.
  Result<size_t> read_count(std::string_view what, size_t max_count, size_t min_element_size);

  template <typename T, typename F>
  Result<std::vector<T>> read_vector(std::string_view what, size_t max_count,
                                     size_t min_element_size, F&& read_element) {
    const size_t n = TRY(read_count(what, max_count, min_element_size));
    std::vector<T> v;
    v.reserve(n);  // bounded by the input's size (read_count)
    for (size_t i = 0; i < n; ++i) {
      auto e = read_element(*this, i);
      if (!e.ok()) return e.release_error();
      v.push_back(e.release_value());
    }
    return v;
  }
  template <typename T>
    requires std::is_integral_v<T>
  Result<std::vector<T>> read_int_vector(std::string_view what, size_t max_count) {
    const size_t n = TRY(read_count(what, max_count, sizeof(T)));
    const auto bytes = TRY(read_bytes(n * sizeof(T), what));
    std::vector<T> v(n);
    if (n > 0) std::memcpy(v.data(), bytes.data(), n * sizeof(T));
    return v;
  }
  // A plain struct written by write_raw(): its recorded size must be sizeof(T).
  template <typename T>
    requires std::is_trivially_copyable_v<T>
  Result<void> read_raw(T& out, std::string_view what) {
    const size_t at = m_offset;
    const uint32_t size = TRY(read_u32(what));
    if (size != sizeof(T))
      return Error::format("{}: {} bytes at byte {}, expected {}", what, size, at, sizeof(T));
    const auto bytes = TRY(read_bytes(sizeof(T), what));
    std::memcpy(&out, bytes.data(), sizeof(T));
    return ok();
  }

  // Fails unless every byte was read: "<what>: 5 bytes left over at byte 120".
  Result<void> expect_end(std::string_view what) const;

  size_t offset() const { return m_offset; }
  size_t remaining() const { return m_data.size() - m_offset; }
  bool at_end() const { return m_offset == m_data.size(); }

 private:
  Error truncated(std::string_view what, size_t needed) const;
  template <typename T>
  Result<T> read_le(std::string_view what) {
    if (remaining() < sizeof(T)) return truncated(what, sizeof(T));
    T v;
    std::memcpy(&v, m_data.data() + m_offset, sizeof(T));
    m_offset += sizeof(T);
    return v;
  }

  std::span<const uint8_t> m_data;
  size_t m_offset = 0;
};

}  // namespace doppel
