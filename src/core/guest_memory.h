// Guest physical memory: a set of host-mmapped RAM regions, bounds-checked access to them,
// the page-granular dirty bitmap, and guest RAM as files (snapshots).
//
// Threads: the layout is fixed at creation, so any thread (vCPUs, device workers) may read
// and write concurrently without locks, as on real hardware. Ordering between guest and
// device is the guest driver's business (memory barriers it issues); devices that publish
// data to the guest use the *_release / *_acquire helpers where the virtio spec asks.
//
// Dirty tracking: one bit per 4 KiB page (kDirtyPageSize) of RAM. Every host-side write
// path below sets it (write, write_le, store_u16_release, host_ptr_for_write); code that
// writes guest RAM through host_ptr() must call mark_dirty() itself or use
// host_ptr_for_write(). The emulator marks on the slow path of a store before it caches the
// page for writing (QEMU's TLB_NOTDIRTY); KVM's own log is folded in by
// KvmVm::fetch_dirty_log(). mark_dirty() may be called from any thread, lock-free.
// clear_dirty() and reading the bitmap (dirty_pages(), save_dirty_to_file()) are for a
// paused VM only: no vCPU running and every device quiesced (VirtioDevice::quiesce()), so
// that no write in flight can be marked before the clear and land after it. The pause
// handshake orders the marks before the read; the bits themselves are relaxed atomics.
// clear_dirty() bumps dirty_generation(), which each emulated hart compares when it resumes
// to drop the pages it had cached for writing.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "base/bits.h"
#include "base/result.h"
#include "base/unique_fd.h"

namespace doppel {

struct MemoryRegion {
  uint64_t gpa;     // guest physical base
  uint64_t size;    // bytes, page-aligned
  uint8_t* host;    // host mapping of gpa
};

class GuestMemory {
 public:
  struct RegionSpec {
    uint64_t gpa;
    uint64_t size;
  };
  static constexpr uint64_t kDirtyPageSize = 4096;

  // Maps anonymous, private, zeroed memory for each region. Regions must be page-aligned,
  // non-empty and must not overlap. shared: the regions are instead MAP_SHARED views of one
  // memory file (memfd), the regions' bytes in ascending gpa order, which shared_fd() hands
  // to another process (a local live update passes guest RAM over instead of copying it).
  static Result<std::unique_ptr<GuestMemory>> create(std::vector<RegionSpec> regions,
                                                     bool shared = false);
  // Maps the memory file `path` (the regions' bytes concatenated in ascending gpa order, as
  // save_to_file() writes it) MAP_PRIVATE at each region: pages are read from the file on
  // first touch and copied on first write, so restoring reads nothing up front, the file
  // never changes, and processes restoring the same file share its page cache. The file
  // must be exactly as big as the regions. While the memory exists it holds a shared
  // flock() on the file, which merge_diff_into() respects. The dirty bitmap starts clear.
  static Result<std::unique_ptr<GuestMemory>> create_from_file(std::vector<RegionSpec> regions,
                                                               const std::string& path);
  ~GuestMemory();
  GuestMemory(const GuestMemory&) = delete;
  GuestMemory& operator=(const GuestMemory&) = delete;

  const std::vector<MemoryRegion>& regions() const { return m_regions; }
  uint64_t total_size() const;

  // The memory file guest RAM is a shared view of (create(..., shared), adopt_shared()),
  // or -1.
  int shared_fd() const { return m_shared ? m_backing.get() : -1; }
  // Makes guest RAM a shared view of `file` (another process's shared_fd(), as big as
  // total_size()): each region is mapped over its current host address, so host pointers
  // taken before stay valid and what was in RAM before is gone. For a VM whose vCPUs have
  // not run yet (the destination of a local live update).
  Result<void> adopt_shared(UniqueFd file);

  // Host pointer for [gpa, gpa+len) if the whole range lies inside one region, else nullptr.
  // len == 0 is valid and returns a pointer if gpa is inside (or at the end of) a region.
  // For reading: whoever writes through it marks the range dirty (host_ptr_for_write()).
  uint8_t* host_ptr(uint64_t gpa, uint64_t len) const {
    for (const auto& r : m_regions) {
      // Written so that no addition can overflow: gpa and len are guest-controlled.
      if (gpa >= r.gpa && gpa - r.gpa <= r.size && len <= r.size - (gpa - r.gpa))
        return r.host + (gpa - r.gpa);
    }
    return nullptr;
  }
  // host_ptr() for a caller about to write [gpa, gpa+len) (DMA into a guest buffer): marks
  // the range dirty first.
  uint8_t* host_ptr_for_write(uint64_t gpa, uint64_t len) {
    uint8_t* p = host_ptr(gpa, len);
    if (p) mark_dirty(gpa, len);
    return p;
  }
  bool contains(uint64_t gpa, uint64_t len) const { return host_ptr(gpa, len) != nullptr; }

  // Copy in/out; false (and nothing copied) if any byte is outside guest RAM.
  [[nodiscard]] bool read(uint64_t gpa, std::span<uint8_t> out) const;
  [[nodiscard]] bool write(uint64_t gpa, std::span<const uint8_t> in);

  template <typename T>
  std::optional<T> read_le(uint64_t gpa) const {
    const uint8_t* p = host_ptr(gpa, sizeof(T));
    if (!p) return std::nullopt;
    return load_le<T>(p);
  }
  template <typename T>
  [[nodiscard]] bool write_le(uint64_t gpa, T value) {
    uint8_t* p = host_ptr_for_write(gpa, sizeof(T));
    if (!p) return false;
    store_le<T>(p, value);
    return true;
  }

  // Aligned atomic accesses for fields shared with a running guest (virtqueue indices).
  // Return nullopt/false if out of range or misaligned.
  std::optional<uint16_t> load_u16_acquire(uint64_t gpa) const;
  [[nodiscard]] bool store_u16_release(uint64_t gpa, uint16_t value);

  // ---- dirty pages (threads: see the top of this file) ----
  // Marks every page of [gpa, gpa+len) that lies in RAM; len == 0 marks nothing. Any
  // thread; lock-free; a page already marked costs a load, no atomic read-modify-write.
  void mark_dirty(uint64_t gpa, uint64_t len) {
    if (len == 0) return;
    for (size_t i = 0; i < m_regions.size(); ++i) {
      const MemoryRegion& r = m_regions[i];
      const uint64_t off = gpa - r.gpa;  // wraps (and so fails the test) below the region
      if (off < r.size) {
        const uint64_t last = off + (len - 1 < r.size - off ? len - 1 : r.size - off - 1);
        set_dirty_bits(m_first_page[i] + off / kDirtyPageSize,
                       m_first_page[i] + last / kDirtyPageSize);
        return;
      }
    }
  }
  bool is_dirty(uint64_t gpa) const;
  // The guest physical address of every dirty page, ascending.
  std::vector<uint64_t> dirty_pages() const;
  size_t dirty_page_count() const;
  void clear_dirty();
  // Whether the page at gpa was marked (mark_dirty()) since the last take_written() of it,
  // which clears it (any thread; clear_dirty() leaves these bits alone). A hart asks at
  // fence.i which of the pages it decoded code from were written since (hart.cpp).
  bool take_written(uint64_t gpa);
  // Bumped by every clear_dirty(): a hart that saw another value must forget its
  // writable-page cache before its next store (engines/emu/riscv64/mmu.cpp).
  uint64_t dirty_generation() const { return m_dirty_generation.load(std::memory_order_acquire); }

  // ---- files (threads: a paused VM, as for clear_dirty()) ----
  // The whole RAM as a memory file for create_from_file(): the regions' bytes in ascending
  // gpa order, all-zero pages left as holes (a sparse file). Written to path + ".tmp", then
  // fsync()ed and renamed over `path`: a failure leaves `path` as it was and no temporary.
  Result<void> save_to_file(const std::string& path) const;
  // The dirty pages only, as a diff file (format: core/memory_diff.h), written as
  // atomically as save_to_file(). Returns the number of pages written. Does not clear the
  // bitmap: call clear_dirty() once the snapshot the diff belongs to is complete.
  Result<size_t> save_dirty_to_file(const std::string& path) const;
  // Writes the pages of diff file `path` into this memory (restore: the base memory file
  // mapped by create_from_file(), then each diff on top, oldest first). The whole file is
  // checked (layout, bounds, checksum) before the first page is written. The pages written
  // are marked dirty, so that the next diff also holds them and applies on the base alone.
  Result<void> apply_diff_file(const std::string& path);

 private:
  GuestMemory(std::vector<MemoryRegion> regions, UniqueFd backing);
  void set_dirty_bits(uint64_t first, uint64_t last) {
    if (first == last) [[likely]] {
      const uint64_t bit = 1ull << (first % 64);
      for (std::atomic<uint64_t>* word : {&m_dirty[first / 64], &m_written[first / 64]})
        if (!(word->load(std::memory_order_relaxed) & bit))
          word->fetch_or(bit, std::memory_order_relaxed);
      return;
    }
    set_dirty_range(first, last);
  }
  void set_dirty_range(uint64_t first, uint64_t last);
  // Calls fn(gpa, offset in the memory file) for each dirty page, ascending.
  template <typename Fn>
  void for_each_dirty(Fn&& fn) const;

  std::vector<MemoryRegion> m_regions;
  std::vector<uint64_t> m_first_page;  // per region: its first page's index in the bitmap
  std::unique_ptr<std::atomic<uint64_t>[]> m_dirty;  // one bit per kDirtyPageSize page
  std::unique_ptr<std::atomic<uint64_t>[]> m_written;  // the same, for take_written()
  size_t m_dirty_words = 0;
  std::atomic<uint64_t> m_dirty_generation{0};
  UniqueFd m_backing;  // create_from_file(): the file, holding its shared flock(); or the memfd
  bool m_shared = false;  // m_backing is a memory file the regions map MAP_SHARED
};

// Folds diff file `diff_path` into the memory file `base_mem_path` in place (pwrite of each
// page; `doppel snapshot merge`). The diff is checked completely before the base is touched,
// and its RAM size must be the base's size. Refused while a VM maps the base
// (create_from_file()'s shared lock): its untouched pages would change under it. A merge cut
// short (power loss) leaves some pages merged; running it again completes it.
Result<void> merge_diff_into(const std::string& base_mem_path, const std::string& diff_path);

}  // namespace doppel
