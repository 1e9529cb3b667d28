// Bit-field and endian helpers.
#pragma once

#include <bit>
#include <cstdint>
#include <cstring>
#include <type_traits>

namespace doppel {

static_assert(std::endian::native == std::endian::little, "doppel assumes a little-endian host");

// Bits [hi:lo] of v, as in the specs' notation.
constexpr uint64_t bits(uint64_t v, unsigned hi, unsigned lo) {
  return (v >> lo) & ((hi - lo >= 63) ? ~0ull : ((1ull << (hi - lo + 1)) - 1));
}
constexpr uint64_t bit(uint64_t v, unsigned n) { return (v >> n) & 1; }

// Sign-extends the low `width` bits of v.
constexpr int64_t sign_extend(uint64_t v, unsigned width) {
  const unsigned shift = 64 - width;
  return static_cast<int64_t>(v << shift) >> shift;
}

template <typename T>
  requires std::is_trivially_copyable_v<T>
inline T load_le(const void* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

template <typename T>
  requires std::is_trivially_copyable_v<T>
inline void store_le(void* p, T v) {
  std::memcpy(p, &v, sizeof v);
}

// Big-endian fields (on-disk formats such as qcow2).
template <typename T>
  requires std::is_unsigned_v<T>
inline T load_be(const void* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  if constexpr (sizeof(T) == 8) return static_cast<T>(__builtin_bswap64(v));
  else if constexpr (sizeof(T) == 4) return static_cast<T>(__builtin_bswap32(v));
  else if constexpr (sizeof(T) == 2) return static_cast<T>(__builtin_bswap16(v));
  else return v;
}

template <typename T>
  requires std::is_unsigned_v<T>
inline void store_be(void* p, T v) {
  if constexpr (sizeof(T) == 8) v = static_cast<T>(__builtin_bswap64(v));
  else if constexpr (sizeof(T) == 4) v = static_cast<T>(__builtin_bswap32(v));
  else if constexpr (sizeof(T) == 2) v = static_cast<T>(__builtin_bswap16(v));
  std::memcpy(p, &v, sizeof v);
}

constexpr bool is_power_of_two(uint64_t v) { return v != 0 && (v & (v - 1)) == 0; }
constexpr uint64_t align_up(uint64_t v, uint64_t a) { return (v + a - 1) & ~(a - 1); }
constexpr uint64_t align_down(uint64_t v, uint64_t a) { return v & ~(a - 1); }

constexpr uint64_t KiB = 1024;
constexpr uint64_t MiB = 1024 * KiB;
constexpr uint64_t GiB = 1024 * MiB;

}  // namespace doppel
