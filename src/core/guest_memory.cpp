#include "core/guest_memory.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cstring>

#include "core/memory_diff.h"

namespace doppel {

namespace {

// Sorted by gpa and checked: page-aligned, non-empty, no wrap, no overlap.
Result<std::vector<GuestMemory::RegionSpec>> check_layout(std::vector<GuestMemory::RegionSpec> specs) {
  using RegionSpec = GuestMemory::RegionSpec;
  const auto page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  std::sort(specs.begin(), specs.end(),
            [](const RegionSpec& a, const RegionSpec& b) { return a.gpa < b.gpa; });
  for (size_t i = 0; i < specs.size(); ++i) {
    const auto& s = specs[i];
    if (s.size == 0) return Error::format("memory region at {:#x}: size is zero", s.gpa);
    if (s.gpa % page || s.size % page || s.size % GuestMemory::kDirtyPageSize)
      return Error::format("memory region {:#x}+{:#x}: not page-aligned", s.gpa, s.size);
    if (s.gpa + s.size < s.gpa)
      return Error::format("memory region {:#x}+{:#x}: wraps the address space", s.gpa, s.size);
    if (i > 0 && specs[i - 1].gpa + specs[i - 1].size > s.gpa)
      return Error::format("memory region {:#x}+{:#x} overlaps the one at {:#x}", s.gpa, s.size,
                           specs[i - 1].gpa);
  }
  return specs;
}

std::string describe(const std::vector<memdiff::Region>& regions) {
  std::string s;
  for (const auto& r : regions)
    s += fmt::format("{}{:#x}+{:#x}", s.empty() ? "" : ", ", r.gpa, r.size);
  return s;
}

}  // namespace

Result<std::unique_ptr<GuestMemory>> GuestMemory::create(std::vector<RegionSpec> regions, bool shared) {
  const std::vector<RegionSpec> specs = TRY(check_layout(std::move(regions)));
  UniqueFd file;
  if (shared) {
    uint64_t total = 0;
    for (const auto& s : specs) total += s.size;
    file = UniqueFd(::memfd_create("doppel-guest-ram", MFD_CLOEXEC));
    if (!file.valid()) return Error::from_errno("guest memory: memfd_create");
    if (::ftruncate(file.get(), static_cast<off_t>(total)) != 0)
      return Error::from_errno(fmt::format("guest memory: sizing the memory file to {} MiB", total >> 20));
  }
  std::vector<MemoryRegion> mapped;
  auto unmap_all = [&] {
    for (auto& r : mapped) munmap(r.host, r.size);
  };
  uint64_t offset = 0;
  for (const auto& s : specs) {
    // Host addresses congruent with guest addresses modulo 2 MiB, and transparent huge
    // pages asked for: KVM can then map guest RAM with 2 MiB pages (fewer nested page
    // faults and TLB misses), and the emulator's accesses miss the host TLB less often.
    constexpr uint64_t kHuge = 2 * MiB;
    const uint64_t slack = s.size >= kHuge ? kHuge : 0;
    void* p = mmap(nullptr, s.size + slack, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) {
      const int e = errno;
      unmap_all();
      return Error::from_errno(fmt::format("guest memory: mmap of {} MiB", s.size >> 20), e);
    }
    auto* host = static_cast<uint8_t*>(p);
    if (slack) {
      const auto at = reinterpret_cast<uint64_t>(p);
      const uint64_t want = (s.gpa % kHuge);
      const uint64_t skip = (want - at % kHuge + kHuge) % kHuge;
      if (skip) munmap(host, skip);
      if (slack - skip) munmap(host + skip + s.size, slack - skip);
      host += skip;
    }
    if (file.valid() && mmap(host, s.size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED | MAP_NORESERVE,
                             file.get(), static_cast<off_t>(offset)) == MAP_FAILED) {
      const int e = errno;
      munmap(host, s.size);
      unmap_all();
      return Error::from_errno(fmt::format("guest memory: mapping {} MiB of the memory file", s.size >> 20), e);
    }
    if (slack) madvise(host, s.size, MADV_HUGEPAGE);
    mapped.push_back({s.gpa, s.size, host});
    offset += s.size;
  }
  std::unique_ptr<GuestMemory> memory(new GuestMemory(std::move(mapped), std::move(file)));
  memory->m_shared = shared;
  return memory;
}

Result<void> GuestMemory::adopt_shared(UniqueFd file) {
  struct stat st {};
  if (fstat(file.get(), &st) != 0) return Error::from_errno("guest memory file: stat");
  if (!S_ISREG(st.st_mode)) return Error::format("guest memory file: not a regular file");
  if (static_cast<uint64_t>(st.st_size) != total_size())
    return Error::format("guest memory file: {} bytes, but the VM's RAM is {} bytes", st.st_size,
                         total_size());
  uint64_t offset = 0;
  for (const auto& r : m_regions) {
    // MAP_FIXED replaces the old pages in one step: the range is never unmapped.
    if (mmap(r.host, r.size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED | MAP_NORESERVE,
             file.get(), static_cast<off_t>(offset)) == MAP_FAILED)
      return Error::from_errno(fmt::format("guest memory file: mapping {} MiB at byte {}", r.size >> 20, offset));
    offset += r.size;
  }
  m_backing = std::move(file);
  m_shared = true;
  return ok();
}

Result<std::unique_ptr<GuestMemory>> GuestMemory::create_from_file(std::vector<RegionSpec> regions,
                                                                   const std::string& path) {
  const std::vector<RegionSpec> specs = TRY(check_layout(std::move(regions)));
  uint64_t expected = 0;
  for (const auto& s : specs) expected += s.size;
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return Error::from_errno(fmt::format("memory file {}", path));
  struct stat st {};
  if (fstat(fd.get(), &st) != 0) return Error::from_errno(fmt::format("memory file {}: stat", path));
  if (!S_ISREG(st.st_mode)) return Error::format("memory file {}: not a regular file", path);
  if (static_cast<uint64_t>(st.st_size) != expected)
    return Error::format("memory file {}: {} bytes, but the VM's RAM needs exactly {} bytes", path,
                         st.st_size, expected);
  // Shared with other VMs restoring the same file; excludes merge_diff_into().
  if (flock(fd.get(), LOCK_SH | LOCK_NB) != 0)
    return Error::from_errno(fmt::format("memory file {}: locked (a snapshot merge into it is "
                                         "running?)", path));
  // No 2 MiB alignment or huge pages here: the page cache of a regular file is in 4 KiB
  // pages, which is also what makes first touches cheap.
  std::vector<MemoryRegion> mapped;
  uint64_t offset = 0;
  for (const auto& s : specs) {
    void* p = mmap(nullptr, s.size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_NORESERVE, fd.get(),
                   static_cast<off_t>(offset));
    if (p == MAP_FAILED) {
      const int e = errno;
      for (auto& r : mapped) munmap(r.host, r.size);
      return Error::from_errno(fmt::format("memory file {}: mmap of {} MiB at byte {}", path,
                                           s.size >> 20, offset), e);
    }
    mapped.push_back({s.gpa, s.size, static_cast<uint8_t*>(p)});
    offset += s.size;
  }
  return std::unique_ptr<GuestMemory>(new GuestMemory(std::move(mapped), std::move(fd)));
}

GuestMemory::GuestMemory(std::vector<MemoryRegion> regions, UniqueFd backing)
    : m_regions(std::move(regions)), m_backing(std::move(backing)) {
  uint64_t pages = 0;
  for (const auto& r : m_regions) {
    m_first_page.push_back(pages);
    pages += r.size / kDirtyPageSize;
  }
  m_dirty_words = static_cast<size_t>((pages + 63) / 64);
  m_dirty.reset(new std::atomic<uint64_t>[m_dirty_words]());
  m_written.reset(new std::atomic<uint64_t>[m_dirty_words]());
}

GuestMemory::~GuestMemory() {
  for (auto& r : m_regions) munmap(r.host, r.size);
}

uint64_t GuestMemory::total_size() const {
  uint64_t total = 0;
  for (const auto& r : m_regions) total += r.size;
  return total;
}

bool GuestMemory::read(uint64_t gpa, std::span<uint8_t> out) const {
  const uint8_t* p = host_ptr(gpa, out.size());
  if (!p) return false;
  std::memcpy(out.data(), p, out.size());
  return true;
}

bool GuestMemory::write(uint64_t gpa, std::span<const uint8_t> in) {
  uint8_t* p = host_ptr_for_write(gpa, in.size());
  if (!p) return false;
  std::memcpy(p, in.data(), in.size());
  return true;
}

std::optional<uint16_t> GuestMemory::load_u16_acquire(uint64_t gpa) const {
  if (gpa % 2) return std::nullopt;
  uint8_t* p = host_ptr(gpa, 2);
  if (!p) return std::nullopt;
  return std::atomic_ref<uint16_t>(*reinterpret_cast<uint16_t*>(p))
      .load(std::memory_order_acquire);
}

bool GuestMemory::store_u16_release(uint64_t gpa, uint16_t value) {
  if (gpa % 2) return false;
  uint8_t* p = host_ptr_for_write(gpa, 2);
  if (!p) return false;
  std::atomic_ref<uint16_t>(*reinterpret_cast<uint16_t*>(p))
      .store(value, std::memory_order_release);
  return true;
}

// ---- dirty pages ----

void GuestMemory::set_dirty_range(uint64_t first, uint64_t last) {
  for (uint64_t w = first / 64; w <= last / 64; ++w) {
    const unsigned lo = w == first / 64 ? static_cast<unsigned>(first % 64) : 0;
    const unsigned hi = w == last / 64 ? static_cast<unsigned>(last % 64) : 63;
    const uint64_t mask = (hi - lo == 63 ? ~0ull : ((1ull << (hi - lo + 1)) - 1)) << lo;
    for (std::atomic<uint64_t>* word : {&m_dirty[w], &m_written[w]})
      if ((word->load(std::memory_order_relaxed) & mask) != mask)
        word->fetch_or(mask, std::memory_order_relaxed);
  }
}

bool GuestMemory::take_written(uint64_t gpa) {
  for (size_t i = 0; i < m_regions.size(); ++i) {
    const uint64_t off = gpa - m_regions[i].gpa;
    if (off < m_regions[i].size) {
      const uint64_t page = m_first_page[i] + off / kDirtyPageSize;
      const uint64_t bit = 1ull << (page % 64);
      std::atomic<uint64_t>& word = m_written[page / 64];
      if (!(word.load(std::memory_order_relaxed) & bit)) return false;
      return (word.fetch_and(~bit, std::memory_order_relaxed) & bit) != 0;
    }
  }
  return false;
}

bool GuestMemory::is_dirty(uint64_t gpa) const {
  for (size_t i = 0; i < m_regions.size(); ++i) {
    const uint64_t off = gpa - m_regions[i].gpa;
    if (off < m_regions[i].size) {
      const uint64_t page = m_first_page[i] + off / kDirtyPageSize;
      return (m_dirty[page / 64].load(std::memory_order_relaxed) >> (page % 64)) & 1;
    }
  }
  return false;
}

template <typename Fn>
void GuestMemory::for_each_dirty(Fn&& fn) const {
  uint64_t file_offset = 0;
  for (size_t i = 0; i < m_regions.size(); ++i) {
    const MemoryRegion& r = m_regions[i];
    const uint64_t pages = r.size / kDirtyPageSize;
    for (uint64_t p = 0; p < pages;) {
      const uint64_t bit = m_first_page[i] + p;
      uint64_t word = m_dirty[bit / 64].load(std::memory_order_relaxed) >> (bit % 64);
      if (word == 0) {  // skip to the next word
        p += 64 - bit % 64;
        continue;
      }
      p += static_cast<uint64_t>(std::countr_zero(word));
      if (p >= pages) break;
      fn(r, p * kDirtyPageSize, file_offset + p * kDirtyPageSize);
      ++p;
    }
    file_offset += r.size;
  }
}

std::vector<uint64_t> GuestMemory::dirty_pages() const {
  std::vector<uint64_t> out;
  for_each_dirty([&](const MemoryRegion& r, uint64_t off, uint64_t) { out.push_back(r.gpa + off); });
  return out;
}

size_t GuestMemory::dirty_page_count() const {
  size_t n = 0;
  for (size_t w = 0; w < m_dirty_words; ++w)
    n += static_cast<size_t>(std::popcount(m_dirty[w].load(std::memory_order_relaxed)));
  return n;
}

void GuestMemory::clear_dirty() {
  for (size_t w = 0; w < m_dirty_words; ++w) m_dirty[w].store(0, std::memory_order_relaxed);
  m_dirty_generation.fetch_add(1, std::memory_order_release);
}

// ---- files ----

Result<void> GuestMemory::save_to_file(const std::string& path) const {
  constexpr uint64_t kPage = kDirtyPageSize;
  constexpr uint64_t kMaxRun = 1 * MiB;  // bytes per write
  memdiff::AtomicFile file = TRY(memdiff::AtomicFile::create(path));
  TRY(file.truncate(total_size()));  // holes wherever nothing is written
  uint64_t file_offset = 0;
  for (const auto& r : m_regions) {
    uint64_t off = 0;
    while (off < r.size) {
      if (memdiff::is_zero_page(r.host + off)) {
        off += kPage;
        continue;
      }
      uint64_t end = off + kPage;
      while (end < r.size && end - off < kMaxRun && !memdiff::is_zero_page(r.host + end))
        end += kPage;
      TRY(file.pwrite_all(std::span<const uint8_t>(r.host + off, end - off), file_offset + off));
      off = end;
    }
    file_offset += r.size;
  }
  return file.commit();
}

Result<size_t> GuestMemory::save_dirty_to_file(const std::string& path) const {
  struct Page {
    const uint8_t* host;
    uint64_t file_offset;
  };
  std::vector<Page> pages;
  for_each_dirty([&](const MemoryRegion& r, uint64_t off, uint64_t file_offset) {
    pages.push_back({r.host + off, file_offset});
  });
  memdiff::Header header;
  header.ram_size = total_size();
  header.page_count = pages.size();
  for (const auto& r : m_regions) header.regions.push_back({r.gpa, r.size});
  memdiff::Writer writer = TRY(memdiff::Writer::create(path, std::move(header)));
  for (const auto& p : pages)
    TRY(writer.add_page(p.file_offset, std::span<const uint8_t>(p.host, kDirtyPageSize)));
  TRY(writer.finish());
  return pages.size();
}

Result<void> GuestMemory::apply_diff_file(const std::string& path) {
  const memdiff::Reader reader = TRY(memdiff::Reader::open(path));
  std::vector<memdiff::Region> ours;
  for (const auto& r : m_regions) ours.push_back({r.gpa, r.size});
  if (reader.header().regions != ours)
    return Error::format("memory diff {}: made for guest RAM at {}, this VM's is at {}", path,
                         describe(reader.header().regions), describe(ours));
  TRY(reader.pages());  // all of it checked before anything is written
  size_t region = 0;
  uint64_t region_start = 0;  // file offset of m_regions[region]
  return reader.pages([&](uint64_t offset, std::span<const uint8_t> page) -> Result<void> {
    while (offset - region_start >= m_regions[region].size) {  // ascending offsets
      region_start += m_regions[region].size;
      ++region;
    }
    if (!write(m_regions[region].gpa + (offset - region_start), page))
      return Error::format("memory diff {}: page at offset {:#x} outside guest RAM", path, offset);
    return ok();
  });
}

Result<void> merge_diff_into(const std::string& base_mem_path, const std::string& diff_path) {
  const memdiff::Reader reader = TRY(memdiff::Reader::open(diff_path));
  UniqueFd fd(::open(base_mem_path.c_str(), O_RDWR | O_CLOEXEC));
  if (!fd.valid()) return Error::from_errno(fmt::format("memory file {}", base_mem_path));
  struct stat st {};
  if (fstat(fd.get(), &st) != 0)
    return Error::from_errno(fmt::format("memory file {}: stat", base_mem_path));
  if (!S_ISREG(st.st_mode)) return Error::format("memory file {}: not a regular file", base_mem_path);
  if (static_cast<uint64_t>(st.st_size) != reader.header().ram_size)
    return Error::format("memory diff {}: made for {} bytes of RAM, but memory file {} has {} bytes",
                         diff_path, reader.header().ram_size, base_mem_path, st.st_size);
  if (flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
    if (errno == EWOULDBLOCK)
      return Error::format("memory file {}: a running VM was restored from it (it holds the "
                           "file's lock); stop it before merging into the file", base_mem_path);
    return Error::from_errno(fmt::format("memory file {}: lock", base_mem_path));
  }
  TRY(reader.pages());  // all of it checked before the base is touched
  TRY(reader.pages([&](uint64_t offset, std::span<const uint8_t> page) -> Result<void> {
    // A zeroed page becomes a hole again, keeping the base sparse where the file system
    // can; else it is written.
    if (memdiff::is_zero_page(page.data()) &&
        fallocate(fd.get(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(offset),
                  static_cast<off_t>(page.size())) == 0)
      return ok();
    return memdiff::pwrite_all(fd.get(), page, offset, base_mem_path);
  }));
  if (fsync(fd.get()) != 0) return Error::from_errno(fmt::format("memory file {}: fsync", base_mem_path));
  return ok();
}

}  // namespace doppel
