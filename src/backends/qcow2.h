// A qcow2 image (QEMU's docs/interop/qcow2.txt): version 3 read/write, version 2 read-only.
//
// Supported: cluster sizes 512 B..2 MiB, refcount widths 1..64 bits, zero clusters, discard,
// compressed clusters (read: deflate, zstd), a backing file of either format (opened
// read-only, its name resolved against this image's directory as qemu-img does).
// Refused at open, with the reason: encryption, external data files, extended L2 entries,
// unknown incompatible features; and, for writing, version 2 and images marked dirty (lazy
// refcounts, needs `qemu-img check -r all`) or corrupt. doppel never sets the dirty bit: it
// keeps refcounts exact.
//
// Internal snapshots (`qemu-img snapshot -c`) are kept intact: doppel never reads or changes
// the snapshot table, and a cluster or L2 table whose refcount is above 1 (shared with a
// snapshot; its L1/L2 entry lacks the "copied" flag) is copied on write, the copy getting
// the flag and the shared one losing our reference.
//
// Crash consistency (kill -9 at any moment, or a host crash losing what was not flushed,
// leaves an image `qemu-img check` finds without corruption; leaked clusters are allowed):
//   - refcounts are written through at once, before the cluster is used ("refcount
//     before use"); a new refcount block is fdatasync'd before the table points at it;
//   - guest data goes to its (new) cluster at once; the L2 and L1 tables that point at it
//     are cached and written back only by flush(), in three steps:
//       fdatasync (data, refcounts) -> L2 tables -> fdatasync -> L1 table -> fdatasync,
//     so no table on disk ever points at data or tables not yet durable ("data before L2,
//     L2 before L1");
//   - clusters a discard or overwrite frees keep their refcount until the flush that made
//     the tables no longer pointing at them durable; only then are they decremented and
//     reused.
// A crash loses only writes since the guest's last flush (virtio-blk's volatile write
// cache, which the guest knows of: VIRTIO_BLK_F_FLUSH); they leak at most a few clusters.
//
// Hostile images: every header field, table entry and offset is checked before use. A bad
// header is an error at open naming the file and field; a bad table entry fails only the
// guest request that reaches it (-EIO, logged rate-limited).
//
// Threads: one mutex (m_lock) serializes every request, data I/O included; the backing
// image has its own lock, always taken after this one.
#pragma once

#include <mutex>
#include <unordered_map>

#include "backends/disk_backend.h"
#include "backends/qcow2_format.h"
#include "base/log.h"
#include "backends/image_lock.h"
#include "base/unique_fd.h"

namespace doppel {

// Test hook (a crash simulator, qcow2_crash_test.cpp): told of every write to the image
// file, with its bytes, and of every fdatasync that returned, in the order they happen.
// Called under the disk's lock.
class Qcow2FileObserver {
 public:
  virtual ~Qcow2FileObserver() = default;
  virtual void wrote(uint64_t offset, std::span<const uint8_t> bytes) = 0;
  virtual void synced() = 0;
};

class Qcow2Disk final : public DiskBackend {
 public:
  static Result<std::unique_ptr<Qcow2Disk>> open(const std::string& path, const DiskOpenOptions& options);
  ~Qcow2Disk() override;

  DiskFormat format() const override { return DiskFormat::kQcow2; }
  const std::string& path() const override { return m_path; }
  uint64_t size() const override { return m_h.size; }
  bool read_only() const override { return m_read_only; }
  const std::string& serial() const override { return m_serial; }
  bool supports_discard() const override { return !m_read_only; }
  bool supports_write_zeroes() const override { return !m_read_only; }
  uint64_t discard_alignment() const override { return m_cs; }
  const DiskBackend* backing() const override { return m_backing.get(); }
  std::string details() const override;
  const qcow2::Header& header() const { return m_h; }
  // Tests only: observes the file from now on (nullptr: stops). Not owned.
  void set_observer(Qcow2FileObserver* observer) {
    std::lock_guard lock(m_lock);
    m_observer = observer;
  }

  int read(std::span<const iovec> iov, uint64_t offset) override;
  int write(std::span<const iovec> iov, uint64_t offset) override;
  int flush() override;
  int discard(uint64_t offset, uint64_t len) override;
  int write_zeroes(uint64_t offset, uint64_t len, bool unmap) override;
  int settle() override;
  // Takes the image locks (backing chain first); an image opened inactive (an incoming
  // migration's) reads its metadata again: the source wrote to it until the switch-over.
  Result<void> activate() override;
  // Drops the locks; nothing is written to the image after this (not even by the destructor)
  // until activate(). The caller flushed it first.
  void inactivate() override;

 private:
  // One cached L2 table, entries in host byte order. A dirty table is never evicted: its
  // [dirty_lo, dirty_hi] entries are written back by flush().
  struct L2Table {
    uint64_t offset = 0;
    std::vector<uint64_t> entries;
    bool dirty = false;
    uint32_t dirty_lo = 0, dirty_hi = 0;
    uint64_t last_use = 0;
  };
  // What one L2 entry says about a guest cluster.
  struct Mapping {
    enum class Kind { kUnallocated, kZero, kData, kCompressed } kind = Kind::kUnallocated;
    uint64_t host = 0;        // kData, kZero (preallocated, or 0), kCompressed: byte offset
    uint64_t compressed = 0;  // kCompressed: bytes from host that may hold the data
  };

  Qcow2Disk() = default;
  Result<void> load(const DiskOpenOptions& options);

  // Per guest cluster; `pos` is the offset in iov of guest byte g.
  Result<std::pair<uint64_t, Mapping>> lookup(uint64_t g);  // the L2 entry for g, decoded
  Result<uint64_t> read_run(std::span<const iovec> iov, uint64_t pos, uint64_t g, uint64_t n, uint64_t total);
  Result<uint64_t> write_run(std::span<const iovec> iov, uint64_t pos, uint64_t g, uint64_t n, uint64_t total);
  Result<void> write_cluster(std::span<const iovec> iov, uint64_t pos, uint64_t g, uint64_t n);
  Result<void> zero_cluster(uint64_t g, bool unmap, bool discard);
  Result<void> read_backing(std::span<const iovec> iov, uint64_t pos, uint64_t g, uint64_t n);
  // The whole guest cluster at g as it reads now (for copy-on-write of a partial write).
  Result<void> read_old(const Mapping& m, uint64_t g, std::span<uint8_t> out);
  Result<void> decompress(const Mapping& m, std::span<uint8_t> out);

  Result<Mapping> decode(uint64_t entry, uint64_t g) const;
  // The L2 table mapping guest offset g, or nullptr if none (reading).
  Result<L2Table*> l2_for_read(uint64_t g);
  // The L2 table mapping g, allocated if needed, or copied if shared with a snapshot.
  Result<L2Table*> l2_for_write(uint64_t g);
  Result<L2Table*> load_l2(uint64_t offset);
  Result<void> make_room();
  void mark_dirty(L2Table& t, uint32_t index);

  Result<uint64_t> get_refcount(uint64_t cluster);
  Result<void> set_refcount(uint64_t cluster, uint64_t value);
  Result<std::vector<uint8_t>*> load_refblock(uint64_t index);
  Result<void> ensure_refblock(uint64_t index);
  Result<void> grow_reftable(uint64_t min_index);
  Result<uint64_t> alloc_cluster();   // returns a byte offset; refcount already 1
  uint64_t take_end(uint64_t clusters);
  void release(const Mapping& m);     // queues the clusters m holds for the next flush

  Result<void> flush_locked();
  bool dirty() const;
  Result<void> sync();
  Result<void> pwrite_all(const void* data, uint64_t len, uint64_t offset);
  Result<void> pread_all(void* data, uint64_t len, uint64_t offset) const;
  Result<void> transfer(bool write, std::vector<iovec> iov, uint64_t offset);
  int io_error(const Error& e);
  // The header, L1 and refcount tables, from the file (load() and activate()).
  Result<void> read_metadata(bool backing);
  // 3.2.1: clears unknown auto-clear bits before the first write.
  Result<void> clear_autoclear();

  std::string m_path;
  std::string m_serial;
  UniqueFd m_fd;
  bool m_read_only = true;
  qcow2::Header m_h;
  uint64_t m_cs = 0;         // cluster size
  uint32_t m_cb = 0;         // cluster bits
  uint64_t m_l2_entries = 0;
  std::unique_ptr<DiskBackend> m_backing;
  log::RateLimit m_log_limit;
  ImageLock m_image_lock;
  bool m_is_backing = false;
  bool m_inactive = false;  // opened inactive or inactivated: the file is another VM's

  std::mutex m_lock;  // guards everything below
  std::vector<uint64_t> m_l1;
  bool m_l1_dirty = false;
  uint32_t m_l1_dirty_lo = 0, m_l1_dirty_hi = 0;
  std::unordered_map<uint64_t, L2Table> m_l2;  // by table offset
  size_t m_l2_capacity = 0;
  uint64_t m_clock = 0;
  std::vector<uint64_t> m_reftable;
  uint64_t m_reftable_offset = 0;
  bool m_reftable_moving = false;  // grow_reftable() in progress: the new table is not on disk yet
  std::unordered_map<uint64_t, std::vector<uint8_t>> m_refblocks;  // by table index
  uint64_t m_file_end = 0;    // bytes: everything below is in use or free; above, nothing
  uint64_t m_free_hint = 0;   // cluster index: no free cluster below it (maybe)
  std::vector<uint64_t> m_pending_free;  // clusters to decrement after the next flush
  bool m_broken = false;      // a metadata write failed: no more writes
  uint64_t m_zcache_entry = 0;  // the compressed L2 entry m_zcache holds
  std::vector<uint8_t> m_zcache;
  Qcow2FileObserver* m_observer = nullptr;
};

}  // namespace doppel
