// A fixed array of T on fresh anonymous pages. The kernel zeroes a page on its first touch,
// so a big table whose all-zero bytes mean "empty" costs nothing until it is used: no page
// faults when it is created. (A hart's TLB and block cache: creating harts is on the path of
// every snapshot restore.) kHuge asks for transparent huge pages (MADV_HUGEPAGE): a first
// touch then commits and zeroes 2 MiB at once, for a table that fills fast (the decode
// arena: one 4 KiB fault per 128 decoded instructions cost a tenth of a Linux boot).
#pragma once

#include <cstddef>
#include <new>
#include <type_traits>

#include <sys/mman.h>

namespace doppel {

enum class PageSize { kSmall, kHuge };

template <typename T>
class ZeroPages {
 public:
  explicit ZeroPages(size_t count, PageSize pages = PageSize::kSmall) : m_count(count) {
    // Objects start to exist in the zeroed bytes without a constructor running (C++20
    // implicit object creation), which needs an implicit-lifetime type. (Checked here, not
    // at class scope, so that T may be a nested class of the class that holds the table.)
    static_assert(std::is_trivially_destructible_v<T> &&
                  (std::is_aggregate_v<T> || std::is_trivially_default_constructible_v<T>));
    void* p = ::mmap(nullptr, bytes(), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::bad_alloc();
    m_data = static_cast<T*>(p);
    if (pages == PageSize::kHuge) ::madvise(p, bytes(), MADV_HUGEPAGE);  // (advice only)
  }
  ~ZeroPages() { ::munmap(m_data, bytes()); }
  ZeroPages(const ZeroPages&) = delete;
  ZeroPages& operator=(const ZeroPages&) = delete;

  T* get() const { return m_data; }
  size_t size() const { return m_count; }
  T& operator[](size_t i) const { return m_data[i]; }

 private:
  size_t bytes() const { return m_count * sizeof(T); }
  T* m_data;
  size_t m_count;
};

}  // namespace doppel
