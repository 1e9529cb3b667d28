#include "backends/qcow2.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "base/bits.h"

namespace doppel {

using namespace qcow2;

namespace {

constexpr unsigned kMaxChainDepth = 16;
constexpr uint64_t kL2CacheBytes = 4 * MiB;

// ---- iovec helpers: byte ranges of a request's scatter list ----

uint64_t iov_bytes(std::span<const iovec> iov) {
  uint64_t n = 0;
  for (const auto& v : iov) n += v.iov_len;
  return n;
}

// The iovecs covering [off, off+len) of iov (which must hold that many bytes).
std::vector<iovec> iov_slice(std::span<const iovec> iov, uint64_t off, uint64_t len) {
  std::vector<iovec> out;
  for (const auto& v : iov) {
    if (len == 0) break;
    if (off >= v.iov_len) {
      off -= v.iov_len;
      continue;
    }
    const uint64_t n = std::min<uint64_t>(v.iov_len - off, len);
    out.push_back({static_cast<uint8_t*>(v.iov_base) + off, static_cast<size_t>(n)});
    len -= n;
    off = 0;
  }
  return out;
}

// Copies between a flat buffer and [off, off+len) of iov.
template <bool kToIov>
void iov_copy(std::span<const iovec> iov, uint64_t off, uint8_t* buf, uint64_t len) {
  for (const auto& v : iov_slice(iov, off, len)) {
    if constexpr (kToIov) std::memcpy(v.iov_base, buf, v.iov_len);
    else std::memcpy(buf, v.iov_base, v.iov_len);
    buf += v.iov_len;
  }
}

void iov_zero(std::span<const iovec> iov, uint64_t off, uint64_t len) {
  for (const auto& v : iov_slice(iov, off, len)) std::memset(v.iov_base, 0, v.iov_len);
}

bool inside(uint64_t offset, uint64_t len, uint64_t limit) {
  return offset <= limit && len <= limit - offset;
}

}  // namespace

// ---- open ----

Result<std::unique_ptr<Qcow2Disk>> Qcow2Disk::open(const std::string& path, const DiskOpenOptions& options) {
  auto disk = std::unique_ptr<Qcow2Disk>(new Qcow2Disk());
  disk->m_path = path;
  disk->m_read_only = options.read_only;
  TRY(disk->load(options));
  return disk;
}

Result<void> Qcow2Disk::load(const DiskOpenOptions& options) {
  m_fd.reset(::open(m_path.c_str(), (m_read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC));
  if (!m_fd.valid()) return Error::from_errno(m_path);
  // Locked before the first read: another VM's writes could be half-way.
  m_image_lock = ImageLock(m_fd.get(), m_path,
                           m_read_only ? ImageLockMode::kShared : ImageLockMode::kExclusive, options.lock);
  m_inactive = options.inactive;
  m_is_backing = options.backing;
  if (!m_inactive) TRY(m_image_lock.acquire());
  struct stat st {};
  if (fstat(m_fd.get(), &st) != 0) return Error::from_errno(fmt::format("{}: stat", m_path));
  if (!S_ISREG(st.st_mode)) return Error::format("{}: not a regular file", m_path);
  m_serial = disk_serial(m_fd.get());
  TRY(read_metadata(options.backing));

  if (!m_h.backing_file.empty()) {
    if (options.chain_depth + 1 >= kMaxChainDepth)
      return Error::format("{}: the backing chain is deeper than {} images (a loop?)", m_path, kMaxChainDepth);
    std::filesystem::path name(m_h.backing_file);
    if (name.is_relative()) name = std::filesystem::path(m_path).parent_path() / name;
    DiskOpenOptions o;
    o.read_only = true;
    o.backing = true;
    o.chain_depth = options.chain_depth + 1;
    o.lock = options.lock;
    o.inactive = options.inactive;
    if (m_h.backing_format == "raw") o.format = DiskFormat::kRaw;
    else if (m_h.backing_format == "qcow2") o.format = DiskFormat::kQcow2;
    else if (!m_h.backing_format.empty())
      return Error::format("{}: backing file format '{}' is not supported (raw, qcow2)", m_path,
                           m_h.backing_format);
    auto backing = open_disk(name.string(), o);
    if (!backing) return backing.error().context(fmt::format("{}: backing file", m_path));
    m_backing = backing.release_value();
  }
  if (!m_inactive) TRY(clear_autoclear());
  return {};
}

Result<void> Qcow2Disk::read_metadata(bool backing) {
  struct stat st {};
  if (fstat(m_fd.get(), &st) != 0) return Error::from_errno(fmt::format("{}: stat", m_path));
  const auto file_size = static_cast<uint64_t>(st.st_size);

  // The header and its extensions live in the first cluster (at most 2 MiB).
  std::vector<uint8_t> first(std::min<uint64_t>(file_size, 1ull << kMaxClusterBits));
  TRY(pread_all(first.data(), first.size(), 0));
  m_h = TRY(parse_header(first, file_size, m_path));
  m_cb = m_h.cluster_bits;
  m_cs = m_h.cluster_size();
  m_l2_entries = m_cs / 8;

  if (!m_read_only) {
    auto refuse = [&](std::string_view why) {
      return Error::format("{}: {}; open it read-only (,ro) or repair it with qemu-img", m_path, why);
    };
    if (m_h.version == 2)
      return Error::format("{}: version 2 images are read-only in doppel; `qemu-img amend -o compat=1.1` "
                           "upgrades it, or open it read-only (,ro)", m_path);
    if (m_h.incompatible_features & kIncompatDirty)
      return refuse("is marked dirty (lazy refcounts were not written back): `qemu-img check -r all` fixes it");
    if (m_h.incompatible_features & kIncompatCorrupt) return refuse("is marked corrupt");
  }
  if (!backing && m_h.size % kSectorSize != 0)
    return Error::format("{}: virtual size {} bytes is not a multiple of {}-byte sectors", m_path, m_h.size,
                         kSectorSize);

  m_file_end = align_up(file_size, m_cs);
  m_l1.assign(m_h.l1_size, 0);
  if (!m_l1.empty()) {
    std::vector<uint8_t> raw(m_l1.size() * 8);
    TRY(pread_all(raw.data(), raw.size(), m_h.l1_table_offset));
    for (size_t i = 0; i < m_l1.size(); i++) m_l1[i] = load_be<uint64_t>(&raw[i * 8]);
  }
  m_reftable_offset = m_h.refcount_table_offset;
  m_reftable.assign(uint64_t{m_h.refcount_table_clusters} * m_cs / 8, 0);
  {
    std::vector<uint8_t> raw(m_reftable.size() * 8);
    TRY(pread_all(raw.data(), raw.size(), m_reftable_offset));
    for (size_t i = 0; i < m_reftable.size(); i++) m_reftable[i] = load_be<uint64_t>(&raw[i * 8]);
  }
  m_l2_capacity = std::max<uint64_t>(4, kL2CacheBytes / m_cs);
  return {};
}

Result<void> Qcow2Disk::clear_autoclear() {
  // 3.2.1: unknown auto-clear bits must be cleared before writing; doppel knows none it
  // keeps up to date (bitmaps are not maintained).
  if (!m_read_only && m_h.autoclear_features != 0) {
    uint8_t zero[8] = {};
    TRY(pwrite_all(zero, sizeof zero, 88));
    TRY(sync());
    m_h.autoclear_features = 0;
  }
  return {};
}

Result<void> Qcow2Disk::activate() {
  if (m_backing) TRY(m_backing->activate());
  TRY(m_image_lock.acquire());
  std::lock_guard lock(m_lock);
  if (!m_inactive) return {};
  // What this process cached may be stale: the other VM wrote until it let go.
  m_l1_dirty = false;
  m_l2.clear();
  m_refblocks.clear();
  m_pending_free.clear();
  m_reftable_moving = false;
  m_free_hint = 0;
  m_zcache_entry = 0;
  m_zcache.clear();
  if (auto r = read_metadata(m_is_backing); !r) {
    m_image_lock.release();
    return r.error();
  }
  TRY(clear_autoclear());
  m_inactive = false;
  return {};
}

void Qcow2Disk::inactivate() {
  {
    std::lock_guard lock(m_lock);
    m_inactive = true;
  }
  m_image_lock.release();
  if (m_backing) m_backing->inactivate();
}

Qcow2Disk::~Qcow2Disk() {
  if (m_read_only || m_inactive) return;
  std::lock_guard lock(m_lock);
  if (auto r = flush_locked(); !r) spdlog::error("{}", r.error().message());
}

std::string Qcow2Disk::details() const {
  std::string s = fmt::format("version {}, cluster size {}, refcount bits {}", m_h.version, m_cs,
                              m_h.refcount_bits());
  if (m_h.compression == Compression::kZstd) s += ", compression zstd";
  if (m_h.nb_snapshots) s += fmt::format(", {} internal snapshots", m_h.nb_snapshots);
  if (m_h.compatible_features & kCompatLazyRefcounts) s += ", lazy refcounts";
  if (m_h.incompatible_features & kIncompatDirty) s += ", dirty";
  if (m_h.incompatible_features & kIncompatCorrupt) s += ", corrupt";
  if (!m_h.backing_file.empty())
    s += fmt::format(", backing file '{}'{}", m_h.backing_file,
                     m_h.backing_format.empty() ? "" : fmt::format(" ({})", m_h.backing_format));
  return s;
}

// ---- low-level I/O ----

Result<void> Qcow2Disk::pread_all(void* data, uint64_t len, uint64_t offset) const {
  auto* p = static_cast<uint8_t*>(data);
  while (len > 0) {
    const ssize_t n = ::pread(m_fd.get(), p, len, static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      return Error::from_errno(fmt::format("{}: read at {:#x}", m_path, offset));
    }
    if (n == 0) {  // past the end of the file: reads as zeroes (a file cut short by a crash)
      std::memset(p, 0, len);
      return {};
    }
    p += n;
    offset += static_cast<uint64_t>(n);
    len -= static_cast<uint64_t>(n);
  }
  return {};
}

Result<void> Qcow2Disk::pwrite_all(const void* data, uint64_t len, uint64_t offset) {
  const auto* p = static_cast<const uint8_t*>(data);
  while (len > 0) {
    const ssize_t n = ::pwrite(m_fd.get(), p, len, static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      return Error::from_errno(fmt::format("{}: write at {:#x}", m_path, offset));
    }
    if (m_observer) m_observer->wrote(offset, {p, static_cast<size_t>(n)});
    p += n;
    offset += static_cast<uint64_t>(n);
    len -= static_cast<uint64_t>(n);
  }
  return {};
}

Result<void> Qcow2Disk::transfer(bool write, std::vector<iovec> iov, uint64_t offset) {
  // One preadv/pwritev per IOV_MAX segments, resuming after short transfers; a read past
  // the end of the file reads zeroes.
  size_t first = 0;
  while (first < iov.size()) {
    const int count = static_cast<int>(std::min<size_t>(iov.size() - first, IOV_MAX));
    const ssize_t n = write ? ::pwritev(m_fd.get(), iov.data() + first, count, static_cast<off_t>(offset))
                            : ::preadv(m_fd.get(), iov.data() + first, count, static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      return Error::from_errno(fmt::format("{}: {} at {:#x}", m_path, write ? "write" : "read", offset));
    }
    if (n == 0 && !write) {
      for (size_t i = first; i < iov.size(); i++) std::memset(iov[i].iov_base, 0, iov[i].iov_len);
      return {};
    }
    if (write && m_observer) {
      uint64_t left = static_cast<uint64_t>(n), at = offset;
      for (size_t i = first; i < iov.size() && left > 0; i++) {
        const uint64_t len = std::min<uint64_t>(left, iov[i].iov_len);
        m_observer->wrote(at, {static_cast<const uint8_t*>(iov[i].iov_base), static_cast<size_t>(len)});
        at += len;
        left -= len;
      }
    }
    offset += static_cast<uint64_t>(n);
    skip_transferred(iov, first, static_cast<size_t>(n));
  }
  return {};
}

Result<void> Qcow2Disk::sync() {
  if (::fdatasync(m_fd.get()) != 0) return Error::from_errno(fmt::format("{}: fdatasync", m_path));
  if (m_observer) m_observer->synced();
  return {};
}

int Qcow2Disk::io_error(const Error& e) {
  if (m_log_limit.allow()) spdlog::error("{}", e.message());
  return e.errno_value() > 0 ? -e.errno_value() : -EIO;
}

// ---- mapping ----

Result<Qcow2Disk::Mapping> Qcow2Disk::decode(uint64_t entry, uint64_t g) const {
  Mapping m;
  if (entry & kEntryCompressed) {
    // 3.4.2: offset in bits 0..x-1, additional 512-byte sectors in bits x..61.
    const uint32_t x = 62 - (m_cb - 8);
    m.kind = Mapping::Kind::kCompressed;
    m.host = entry & ((1ull << x) - 1);
    const uint64_t sectors = ((entry >> x) & ((1ull << (m_cb - 8)) - 1)) + 1;
    m.compressed = sectors * 512 - (m.host & 511);
    if ((entry & kEntryCopied) || m.host == 0 || m.host >= m_file_end)
      return Error::format("{}: bad compressed L2 entry {:#x} for guest offset {:#x}", m_path, entry, g);
    return m;
  }
  if (entry & kL2ReservedMask)
    return Error::format("{}: L2 entry {:#x} for guest offset {:#x} has reserved bits set", m_path, entry, g);
  m.host = entry & kL2OffsetMask;
  if (m.host % m_cs != 0)
    return Error::format("{}: L2 entry {:#x} for guest offset {:#x} is not cluster-aligned", m_path, entry, g);
  if (m.host != 0 && !inside(m.host, m_cs, m_file_end))
    return Error::format("{}: L2 entry {:#x} for guest offset {:#x} points past the end of the file", m_path,
                         entry, g);
  if (entry & kL2Zero) {
    if (m_h.version < 3)
      return Error::format("{}: L2 entry {:#x} has the zero flag in a version 2 image", m_path, entry);
    m.kind = Mapping::Kind::kZero;
  } else {
    m.kind = m.host ? Mapping::Kind::kData : Mapping::Kind::kUnallocated;
  }
  return m;
}

Result<Qcow2Disk::L2Table*> Qcow2Disk::load_l2(uint64_t offset) {
  if (auto it = m_l2.find(offset); it != m_l2.end()) {
    it->second.last_use = ++m_clock;
    return &it->second;
  }
  if (offset % m_cs != 0 || !inside(offset, m_cs, m_file_end))
    return Error::format("{}: L2 table offset {:#x} is not a cluster inside the file", m_path, offset);
  TRY(make_room());
  std::vector<uint8_t> raw(m_cs);
  TRY(pread_all(raw.data(), raw.size(), offset));
  L2Table t;
  t.offset = offset;
  t.entries.resize(m_l2_entries);
  for (size_t i = 0; i < t.entries.size(); i++) t.entries[i] = load_be<uint64_t>(&raw[i * 8]);
  t.last_use = ++m_clock;
  return &(m_l2[offset] = std::move(t));
}

Result<void> Qcow2Disk::make_room() {
  if (m_l2.size() < m_l2_capacity) return {};
  auto victim = m_l2.end();
  for (auto it = m_l2.begin(); it != m_l2.end(); ++it)
    if (!it->second.dirty && (victim == m_l2.end() || it->second.last_use < victim->second.last_use))
      victim = it;
  if (victim == m_l2.end()) {
    // Every cached table is dirty: write them all back (in crash-safe order) first.
    TRY(flush_locked());
    return make_room();
  }
  m_l2.erase(victim);
  return {};
}

void Qcow2Disk::mark_dirty(L2Table& t, uint32_t index) {
  if (!t.dirty) {
    t.dirty = true;
    t.dirty_lo = t.dirty_hi = index;
  } else {
    t.dirty_lo = std::min(t.dirty_lo, index);
    t.dirty_hi = std::max(t.dirty_hi, index);
  }
}

Result<Qcow2Disk::L2Table*> Qcow2Disk::l2_for_read(uint64_t g) {
  const uint64_t l1i = g >> (m_cb + m_h.l2_bits());
  const uint64_t e = m_l1[l1i];
  if (e & kL1ReservedMask)
    return Error::format("{}: L1 entry {} ({:#x}) has reserved bits set", m_path, l1i, e);
  const uint64_t off = e & kL1OffsetMask;
  if (off == 0) return nullptr;
  return load_l2(off);
}

Result<Qcow2Disk::L2Table*> Qcow2Disk::l2_for_write(uint64_t g) {
  const uint64_t l1i = g >> (m_cb + m_h.l2_bits());
  const uint64_t e = m_l1[l1i];
  if (e & kL1ReservedMask)
    return Error::format("{}: L1 entry {} ({:#x}) has reserved bits set", m_path, l1i, e);
  const uint64_t off = e & kL1OffsetMask;
  auto set_l1 = [&](uint64_t value) {
    m_l1[l1i] = value;
    const auto i = static_cast<uint32_t>(l1i);
    m_l1_dirty_lo = m_l1_dirty ? std::min(m_l1_dirty_lo, i) : i;
    m_l1_dirty_hi = m_l1_dirty ? std::max(m_l1_dirty_hi, i) : i;
    m_l1_dirty = true;
  };
  if (off == 0) {
    TRY(make_room());
    const uint64_t table = TRY(alloc_cluster());
    L2Table t;
    t.offset = table;
    t.entries.assign(m_l2_entries, 0);
    t.dirty = true;  // the whole table: the cluster on disk holds nothing yet
    t.dirty_lo = 0;
    t.dirty_hi = static_cast<uint32_t>(m_l2_entries - 1);
    t.last_use = ++m_clock;
    L2Table* p = &(m_l2[table] = std::move(t));
    set_l1(table | kEntryCopied);
    return p;
  }
  if (!(e & kEntryCopied)) {
    // Without the "copied" flag the table may be shared with internal snapshots.
    const uint64_t rc = TRY(get_refcount(off >> m_cb));
    if (rc == 1) {
      set_l1(e | kEntryCopied);  // not shared after all: take it (and fix the flag)
    } else {
      // Copy on write of the table: a copy of our own, entries unchanged (the data clusters
      // keep their refcounts: each counts the L1 tables that reach it, not the L2 tables,
      // and the copy's entries lack "copied" like the original's, so writes copy them too).
      // The shared table loses our reference after the flush that makes the L1 entry
      // pointing at the copy durable, like any cluster we stop using.
      const std::vector<uint64_t> entries = TRY(load_l2(off))->entries;
      TRY(make_room());
      const uint64_t table = TRY(alloc_cluster());
      L2Table t;
      t.offset = table;
      t.entries = entries;
      t.dirty = true;
      t.dirty_lo = 0;
      t.dirty_hi = static_cast<uint32_t>(m_l2_entries - 1);
      t.last_use = ++m_clock;
      L2Table* p = &(m_l2[table] = std::move(t));
      set_l1(table | kEntryCopied);
      m_pending_free.push_back(off >> m_cb);
      return p;
    }
  }
  return load_l2(off);
}

// ---- refcounts ----

Result<std::vector<uint8_t>*> Qcow2Disk::load_refblock(uint64_t index) {
  if (auto it = m_refblocks.find(index); it != m_refblocks.end()) return &it->second;
  const uint64_t e = m_reftable[index];
  const uint64_t off = e & kReftableOffsetMask;
  if ((e & ~kReftableOffsetMask) != 0 || off % m_cs != 0 || !inside(off, m_cs, m_file_end))
    return Error::format("{}: refcount table entry {} ({:#x}) is not a cluster inside the file", m_path, index, e);
  std::vector<uint8_t> block(m_cs);
  TRY(pread_all(block.data(), block.size(), off));
  return &(m_refblocks[index] = std::move(block));
}

Result<uint64_t> Qcow2Disk::get_refcount(uint64_t cluster) {
  const uint64_t index = cluster >> m_h.refblock_bits();
  if (index >= m_reftable.size() || m_reftable[index] == 0) return 0;
  const auto* block = TRY(load_refblock(index));
  return refcount_get(*block, cluster & ((1ull << m_h.refblock_bits()) - 1), m_h.refcount_order);
}

Result<void> Qcow2Disk::set_refcount(uint64_t cluster, uint64_t value) {
  if (m_h.refcount_order < 6 && value >> m_h.refcount_bits())
    return Error::format("{}: refcount of cluster {:#x} would overflow {} bits", m_path, cluster,
                         m_h.refcount_bits());
  const uint64_t index = cluster >> m_h.refblock_bits();
  TRY(ensure_refblock(index));
  auto& block = m_refblocks.at(index);
  const auto [first, len] =
      refcount_set(block, cluster & ((1ull << m_h.refblock_bits()) - 1), m_h.refcount_order, value);
  return pwrite_all(block.data() + first, len, (m_reftable[index] & kReftableOffsetMask) + first);
}

uint64_t Qcow2Disk::take_end(uint64_t clusters) {
  const uint64_t c = m_file_end >> m_cb;
  m_file_end += clusters * m_cs;
  return c;
}

Result<void> Qcow2Disk::ensure_refblock(uint64_t index) {
  if (index < m_reftable.size() && m_reftable[index] != 0) {
    TRY(load_refblock(index));
    return {};
  }
  if (index >= m_reftable.size()) {
    if (m_reftable_moving)
      return Error::format("{}: refcount table growth did not leave room for block {}", m_path, index);
    TRY(grow_reftable(index));
    if (m_reftable[index] != 0) return {};
  }
  // A new block, at the end of the file. It counts itself if it falls in its own range;
  // otherwise the block that covers it does.
  const uint64_t c = take_end(1);
  std::vector<uint8_t> block(m_cs, 0);
  const uint64_t mask = (1ull << m_h.refblock_bits()) - 1;
  if ((c >> m_h.refblock_bits()) == index) refcount_set(block, c & mask, m_h.refcount_order, 1);
  else TRY(set_refcount(c, 1));
  TRY(pwrite_all(block.data(), block.size(), c << m_cb));
  // The table must never point at a block a power cut could lose.
  TRY(sync());
  m_refblocks[index] = std::move(block);
  m_reftable[index] = c << m_cb;
  if (!m_reftable_moving) {
    uint8_t be[8];
    store_be<uint64_t>(be, c << m_cb);
    TRY(pwrite_all(be, 8, m_reftable_offset + index * 8));
  }
  return {};
}

Result<void> Qcow2Disk::grow_reftable(uint64_t min_index) {
  // The new table goes at the end of the file, with room for the blocks that count it
  // and everything up to it. The old one stays in use until the header points at the
  // new one (one 12-byte write of offset and size, after both are durable).
  const uint64_t per_cluster = m_cs / 8;
  const uint64_t old_offset = m_reftable_offset;
  const uint64_t old_clusters = m_reftable.size() / per_cluster;
  uint64_t entries = std::max<uint64_t>(m_reftable.size() * 2, min_index + 1);
  uint64_t clusters = 0;
  for (int i = 0; i < 4; i++) {
    clusters = align_up(entries, per_cluster) / per_cluster;
    // The file's end after the table and a block per table cluster (more than enough).
    const uint64_t end = (m_file_end >> m_cb) + 2 * clusters + 2;
    entries = std::max(entries, (end >> m_h.refblock_bits()) + 1);
  }
  clusters = align_up(entries, per_cluster) / per_cluster;
  if (clusters * m_cs > std::max(kMaxRefcountTableBytes, m_cs))
    return Error::format("{}: the refcount table would exceed {} bytes", m_path, kMaxRefcountTableBytes);
  const uint64_t first = take_end(clusters);
  m_reftable.resize(clusters * per_cluster, 0);
  m_reftable_moving = true;
  auto done = [&](Result<void> r) {
    m_reftable_moving = false;
    if (!r) m_broken = true;
    return r;
  };
  for (uint64_t c = first; c < first + clusters; c++)
    if (auto r = set_refcount(c, 1); !r) return done(r);
  std::vector<uint8_t> raw(clusters * m_cs);
  for (size_t i = 0; i < m_reftable.size(); i++) store_be<uint64_t>(&raw[i * 8], m_reftable[i]);
  if (auto r = pwrite_all(raw.data(), raw.size(), first << m_cb); !r) return done(r);
  if (auto r = sync(); !r) return done(r);
  uint8_t hdr[12];
  store_be<uint64_t>(hdr, first << m_cb);
  store_be<uint32_t>(hdr + 8, static_cast<uint32_t>(clusters));
  if (auto r = pwrite_all(hdr, sizeof hdr, 48); !r) return done(r);
  if (auto r = sync(); !r) return done(r);
  m_reftable_offset = first << m_cb;
  m_h.refcount_table_offset = m_reftable_offset;
  m_h.refcount_table_clusters = static_cast<uint32_t>(clusters);
  m_reftable_moving = false;
  // The old table is garbage now: free it (a crash before this leaks it, no more).
  for (uint64_t c = old_offset >> m_cb; c < (old_offset >> m_cb) + old_clusters; c++) {
    const uint64_t rc = TRY(get_refcount(c));
    if (rc > 0) TRY(set_refcount(c, rc - 1));
    m_free_hint = std::min(m_free_hint, c);
  }
  return {};
}

Result<uint64_t> Qcow2Disk::alloc_cluster() {
  // First fit from the hint among clusters the file already has, else the end.
  const uint64_t limit = m_file_end >> m_cb;
  uint64_t c = m_free_hint;
  for (; c < limit; c++) {
    const uint64_t index = c >> m_h.refblock_bits();
    if (index >= m_reftable.size()) {
      c = limit;
      break;
    }
    if (m_reftable[index] == 0) continue;  // no block yet: free (allocating creates the block)
    if (TRY(get_refcount(c)) == 0) break;
  }
  if (c >= limit) c = take_end(1);
  m_free_hint = c + 1;
  TRY(set_refcount(c, 1));
  return c << m_cb;
}

void Qcow2Disk::release(const Mapping& m) {
  switch (m.kind) {
    case Mapping::Kind::kData:
    case Mapping::Kind::kZero:
      if (m.host) m_pending_free.push_back(m.host >> m_cb);
      break;
    case Mapping::Kind::kCompressed: {
      // Every cluster the compressed bytes touch holds one reference for them.
      const uint64_t start = align_down(m.host, 512);
      const uint64_t end = m.host + m.compressed;  // sector-aligned
      for (uint64_t c = start >> m_cb; c <= (end - 1) >> m_cb; c++) m_pending_free.push_back(c);
      break;
    }
    case Mapping::Kind::kUnallocated: break;
  }
}

// ---- flush ----

bool Qcow2Disk::dirty() const {
  if (m_l1_dirty || !m_pending_free.empty()) return true;
  for (const auto& [off, t] : m_l2)
    if (t.dirty) return true;
  return false;
}

Result<void> Qcow2Disk::flush_locked() {
  if (m_read_only) return {};
  if (m_broken) return Error::format("{}: an earlier metadata write failed; the image is read-only now", m_path);
  auto fail = [&](Error e) {
    m_broken = true;
    return e;
  };
  // Data and refcounts first: the tables written next may point at them.
  if (auto r = sync(); !r) return fail(r.release_error());
  bool wrote = false;
  for (auto& [off, t] : m_l2) {
    if (!t.dirty) continue;
    const uint32_t n = t.dirty_hi - t.dirty_lo + 1;
    std::vector<uint8_t> raw(uint64_t{n} * 8);
    for (uint32_t i = 0; i < n; i++) store_be<uint64_t>(&raw[i * 8], t.entries[t.dirty_lo + i]);
    if (auto r = pwrite_all(raw.data(), raw.size(), off + uint64_t{t.dirty_lo} * 8); !r)
      return fail(r.release_error());
    t.dirty = false;
    wrote = true;
  }
  if (wrote)
    if (auto r = sync(); !r) return fail(r.release_error());
  if (m_l1_dirty) {
    const uint32_t n = m_l1_dirty_hi - m_l1_dirty_lo + 1;
    std::vector<uint8_t> raw(uint64_t{n} * 8);
    for (uint32_t i = 0; i < n; i++) store_be<uint64_t>(&raw[i * 8], m_l1[m_l1_dirty_lo + i]);
    if (auto r = pwrite_all(raw.data(), raw.size(), m_h.l1_table_offset + uint64_t{m_l1_dirty_lo} * 8); !r)
      return fail(r.release_error());
    if (auto r = sync(); !r) return fail(r.release_error());
    m_l1_dirty = false;
  }
  // No table on disk points at these any more: they may be reused. (Not synced: losing a
  // decrement leaks the cluster, nothing worse.)
  std::vector<uint64_t> frees;
  frees.swap(m_pending_free);
  for (uint64_t c : frees) {
    const uint64_t rc = TRY(get_refcount(c));
    if (rc == 0) {
      if (m_log_limit.allow()) spdlog::error("{}: freeing cluster {:#x} whose refcount is 0", m_path, c << m_cb);
      continue;
    }
    TRY(set_refcount(c, rc - 1));
    if (rc == 1) m_free_hint = std::min(m_free_hint, c);
  }
  return {};
}

int Qcow2Disk::flush() {
  std::lock_guard lock(m_lock);
  if (m_read_only) return 0;
  if (auto r = flush_locked(); !r) return io_error(r.error());
  return 0;
}

int Qcow2Disk::settle() {
  std::lock_guard lock(m_lock);
  if (m_read_only || !dirty()) return 0;
  if (auto r = flush_locked(); !r) return io_error(r.error());
  return 0;
}

// ---- reads ----

Result<void> Qcow2Disk::read_backing(std::span<const iovec> iov, uint64_t pos, uint64_t g, uint64_t n) {
  const uint64_t have = m_backing && g < m_backing->size() ? std::min(n, m_backing->size() - g) : 0;
  if (have > 0) {
    const auto part = iov_slice(iov, pos, have);
    if (int r = m_backing->read(part, g); r != 0)
      return Error::format("{}: backing file {}: read at {:#x}: {}", m_path, m_backing->path(), g, strerror(-r));
  }
  if (have < n) iov_zero(iov, pos + have, n - have);
  return {};
}

Result<void> Qcow2Disk::decompress(const Mapping& m, std::span<uint8_t> out) {
  std::vector<uint8_t> in(m.compressed);
  TRY(pread_all(in.data(), in.size(), m.host));
  if (m_h.compression == Compression::kZstd) {
    ZSTD_DCtx* ctx = ZSTD_createDCtx();
    if (!ctx) return Error::format("{}: out of memory for zstd", m_path);
    ZSTD_inBuffer zin{in.data(), in.size(), 0};
    ZSTD_outBuffer zout{out.data(), out.size(), 0};
    // The data is one or more frames; the sector padding after them is never reached.
    while (zout.pos < zout.size) {
      const size_t before_in = zin.pos, before_out = zout.pos;
      const size_t r = ZSTD_decompressStream(ctx, &zout, &zin);
      if (ZSTD_isError(r) || (zin.pos == before_in && zout.pos == before_out)) break;
    }
    ZSTD_freeDCtx(ctx);
    if (zout.pos != zout.size)
      return Error::format("{}: compressed (zstd) cluster at {:#x} does not decompress", m_path, m.host);
    return {};
  }
  // Raw deflate, no zlib header (as QEMU writes it).
  z_stream z{};
  if (inflateInit2(&z, -MAX_WBITS) != Z_OK) return Error::format("{}: inflateInit2 failed", m_path);
  z.next_in = in.data();
  z.avail_in = static_cast<uInt>(in.size());
  z.next_out = out.data();
  z.avail_out = static_cast<uInt>(out.size());
  const int r = inflate(&z, Z_FINISH);
  const bool full = z.avail_out == 0 && (r == Z_STREAM_END || r == Z_BUF_ERROR || r == Z_OK);
  inflateEnd(&z);
  if (!full) return Error::format("{}: compressed cluster at {:#x} does not decompress", m_path, m.host);
  return {};
}

Result<std::pair<uint64_t, Qcow2Disk::Mapping>> Qcow2Disk::lookup(uint64_t g) {
  const L2Table* t = TRY(l2_for_read(g));
  const uint64_t entry = t ? t->entries[(g >> m_cb) & (m_l2_entries - 1)] : 0;
  return std::pair{entry, TRY(decode(entry, g))};
}

// Reads [pos, pos+n) of iov from guest offset g, n within one cluster, and, where the
// clusters after it are data clusters that follow it in the file, as much more of the
// request as they hold, in one preadv. Returns how many bytes it read.
Result<uint64_t> Qcow2Disk::read_run(std::span<const iovec> iov, uint64_t pos, uint64_t g, uint64_t n,
                                     uint64_t total) {
  const auto [entry, m] = TRY(lookup(g));
  const uint64_t in = g & (m_cs - 1);
  switch (m.kind) {
    case Mapping::Kind::kUnallocated: TRY(read_backing(iov, pos, g, n)); return n;
    case Mapping::Kind::kZero: iov_zero(iov, pos, n); return n;
    case Mapping::Kind::kData: {
      uint64_t len = n;
      while (pos + len < total) {
        const auto [next_entry, next] = TRY(lookup(g + len));
        if (next.kind != Mapping::Kind::kData || next.host != m.host + in + len) break;
        len += std::min(m_cs, total - pos - len);
      }
      TRY(transfer(false, iov_slice(iov, pos, len), m.host + in));
      return len;
    }
    case Mapping::Kind::kCompressed: {
      if (m_zcache.size() != m_cs || m_zcache_entry != entry) {
        m_zcache.resize(m_cs);
        m_zcache_entry = 0;
        TRY(decompress(m, m_zcache));
        m_zcache_entry = entry;
      }
      iov_copy<true>(iov, pos, m_zcache.data() + in, n);
      return n;
    }
  }
  return n;
}

int Qcow2Disk::read(std::span<const iovec> iov, uint64_t offset) {
  const uint64_t total = iov_bytes(iov);
  if (!inside(offset, total, m_h.size)) return -EIO;
  std::lock_guard lock(m_lock);
  for (uint64_t pos = 0; pos < total;) {
    const uint64_t g = offset + pos;
    const uint64_t n = std::min(m_cs - (g & (m_cs - 1)), total - pos);
    auto r = read_run(iov, pos, g, n, total);
    if (!r) return io_error(r.error());
    pos += *r;
  }
  return 0;
}

// ---- writes ----

Result<void> Qcow2Disk::read_old(const Mapping& m, uint64_t g, std::span<uint8_t> out) {
  switch (m.kind) {
    case Mapping::Kind::kUnallocated: {
      iovec v{out.data(), out.size()};
      return read_backing(std::span<const iovec>(&v, 1), 0, g, out.size());
    }
    case Mapping::Kind::kZero: std::fill(out.begin(), out.end(), 0); return {};
    case Mapping::Kind::kData: return pread_all(out.data(), out.size(), m.host);
    case Mapping::Kind::kCompressed: return decompress(m, out);
  }
  return {};
}

Result<void> Qcow2Disk::write_cluster(std::span<const iovec> iov, uint64_t pos, uint64_t g, uint64_t n) {
  L2Table* t = TRY(l2_for_write(g));
  const uint64_t table = t->offset;
  const auto index = static_cast<uint32_t>((g >> m_cb) & (m_l2_entries - 1));
  const uint64_t entry = t->entries[index];
  const Mapping m = TRY(decode(entry, g));
  const uint64_t in = g & (m_cs - 1);
  const uint64_t base = g - in;

  if (m.kind == Mapping::Kind::kData) {
    bool own = entry & kEntryCopied;
    if (!own && TRY(get_refcount(m.host >> m_cb)) == 1) {
      own = true;  // not shared after all: take it (and fix the flag)
      t->entries[index] = entry | kEntryCopied;
      mark_dirty(*t, index);
    }
    if (own) return transfer(true, iov_slice(iov, pos, n), m.host + in);
  }

  // Copy on write into a cluster of our own: a preallocated zero cluster we own, or a new one.
  const bool reuse = m.kind == Mapping::Kind::kZero && m.host != 0 && (entry & kEntryCopied);
  std::vector<uint8_t> buf;
  if (n != m_cs) {
    buf.resize(m_cs);
    TRY(read_old(m, base, buf));
    iov_copy<false>(iov, pos, buf.data() + in, n);
  }
  const uint64_t host = reuse ? m.host : TRY(alloc_cluster());
  if (n == m_cs) {
    TRY(transfer(true, iov_slice(iov, pos, n), host));
  } else {
    TRY(pwrite_all(buf.data(), buf.size(), host));
  }
  // The table may have moved in the cache meanwhile? No: allocation never touches the L2
  // cache, but look it up again rather than rely on that.
  t = TRY(load_l2(table));
  t->entries[index] = host | kEntryCopied;
  mark_dirty(*t, index);
  if (!reuse) release(m);
  return {};
}

int Qcow2Disk::write(std::span<const iovec> iov, uint64_t offset) {
  if (m_read_only) return -EROFS;
  const uint64_t total = iov_bytes(iov);
  if (!inside(offset, total, m_h.size)) return -EIO;
  std::lock_guard lock(m_lock);
  if (m_broken) return -EIO;
  for (uint64_t pos = 0; pos < total;) {
    const uint64_t g = offset + pos;
    const uint64_t n = std::min(m_cs - (g & (m_cs - 1)), total - pos);
    auto r = write_run(iov, pos, g, n, total);
    if (!r) return io_error(r.error());
    pos += *r;
  }
  return 0;
}

// Like read_run: clusters of our own that follow each other in the file take the write in
// place with one pwritev; anything else goes through write_cluster, one cluster.
Result<uint64_t> Qcow2Disk::write_run(std::span<const iovec> iov, uint64_t pos, uint64_t g, uint64_t n,
                                      uint64_t total) {
  const auto [entry, m] = TRY(lookup(g));
  if (m.kind != Mapping::Kind::kData || !(entry & kEntryCopied)) {
    TRY(write_cluster(iov, pos, g, n));
    return n;
  }
  const uint64_t in = g & (m_cs - 1);
  uint64_t len = n;
  while (pos + len < total) {
    const auto [next_entry, next] = TRY(lookup(g + len));
    if (next.kind != Mapping::Kind::kData || !(next_entry & kEntryCopied) || next.host != m.host + in + len) break;
    len += std::min(m_cs, total - pos - len);
  }
  TRY(transfer(true, iov_slice(iov, pos, len), m.host + in));
  return len;
}

// ---- discard, write zeroes ----

Result<void> Qcow2Disk::zero_cluster(uint64_t g, bool unmap, bool discard) {
  // Unallocated reads as zeroes only without a backing file; otherwise the zero flag.
  const uint64_t l1i = g >> (m_cb + m_h.l2_bits());
  if (!m_backing && (m_l1[l1i] & kL1OffsetMask) == 0) return {};
  L2Table* t = TRY(l2_for_write(g));
  const auto index = static_cast<uint32_t>((g >> m_cb) & (m_l2_entries - 1));
  const uint64_t entry = t->entries[index];
  const Mapping m = TRY(decode(entry, g));
  if (!m_backing && m.kind == Mapping::Kind::kUnallocated) return {};
  uint64_t next = (discard && !m_backing) ? 0 : kL2Zero;
  bool keep = false;
  if (!unmap && !discard && (entry & kEntryCopied) &&
      (m.kind == Mapping::Kind::kData || m.kind == Mapping::Kind::kZero) && m.host != 0) {
    next = m.host | kEntryCopied | kL2Zero;  // stays allocated, reads as zeroes
    keep = true;
  }
  if (next == entry) return {};
  t->entries[index] = next;
  mark_dirty(*t, index);
  if (!keep) release(m);
  return {};
}

int Qcow2Disk::discard(uint64_t offset, uint64_t len) {
  if (m_read_only) return -EROFS;
  if (!inside(offset, len, m_h.size)) return -EIO;
  std::lock_guard lock(m_lock);
  if (m_broken) return -EIO;
  // Only whole clusters can be freed; the rest of a discard is a hint we may ignore. The
  // disk's last cluster counts as whole if the discard reaches the end of the disk.
  const uint64_t end = offset + len;
  const uint64_t first = align_up(offset, m_cs);
  const uint64_t last = end == m_h.size ? align_up(end, m_cs) : align_down(end, m_cs);
  for (uint64_t g = first; g < last; g += m_cs)
    if (auto r = zero_cluster(g, true, true); !r) return io_error(r.error());
  return 0;
}

int Qcow2Disk::write_zeroes(uint64_t offset, uint64_t len, bool unmap) {
  if (m_read_only) return -EROFS;
  if (!inside(offset, len, m_h.size)) return -EIO;
  std::lock_guard lock(m_lock);
  if (m_broken) return -EIO;
  std::vector<uint8_t> zeroes;
  for (uint64_t g = offset; g < offset + len;) {
    const uint64_t in = g & (m_cs - 1);
    const uint64_t n = std::min(m_cs - in, offset + len - g);
    Result<void> r;
    if (n == m_cs || (in == 0 && g + n == m_h.size)) {
      r = zero_cluster(g, unmap, false);
    } else {
      if (zeroes.empty()) zeroes.resize(m_cs);
      iovec v{zeroes.data(), static_cast<size_t>(n)};
      r = write_cluster(std::span<const iovec>(&v, 1), 0, g, n);
    }
    if (!r) return io_error(r.error());
    g += n;
  }
  return 0;
}

}  // namespace doppel
