#include "backends/raw_disk.h"

#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <vector>

namespace doppel {

Result<std::unique_ptr<RawDisk>> RawDisk::open(const std::string& path, const DiskOpenOptions& options) {
  const bool read_only = options.read_only;
  const bool whole_sectors = !options.backing;
  auto disk = std::unique_ptr<RawDisk>(new RawDisk());
  disk->m_path = path;
  disk->m_read_only = read_only;
  disk->m_fd.reset(::open(path.c_str(), (read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC));
  if (!disk->m_fd.valid()) return Error::from_errno(fmt::format("disk {}", path));
  disk->m_lock = ImageLock(disk->m_fd.get(), path,
                           read_only ? ImageLockMode::kShared : ImageLockMode::kExclusive, options.lock);
  if (!options.inactive) TRY(disk->m_lock.acquire());
  struct stat st {};
  if (fstat(disk->m_fd.get(), &st) != 0) return Error::from_errno(fmt::format("disk {}: stat", path));
  if (!S_ISREG(st.st_mode)) return Error::format("disk {}: not a regular file", path);
  const auto size = static_cast<uint64_t>(st.st_size);
  if (whole_sectors && size % kSectorSize != 0)
    return Error::format("disk {}: size {} bytes is not a multiple of {}-byte sectors", path,
                         size, kSectorSize);
  disk->m_size = size;
  disk->m_serial = disk_serial(disk->m_fd.get());
  return disk;
}

namespace {

// Transfers all of iov at offset, resuming after short transfers.
template <typename Fn>
int transfer_all(std::span<const iovec> in, uint64_t offset, Fn fn) {
  std::vector<iovec> iov(in.begin(), in.end());
  size_t first = 0;
  while (first < iov.size()) {
    const int count = static_cast<int>(std::min<size_t>(iov.size() - first, IOV_MAX));
    const ssize_t n = fn(iov.data() + first, count, static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      return -errno;
    }
    if (n == 0) return -EIO;  // past the end of the file
    offset += static_cast<uint64_t>(n);
    skip_transferred(iov, first, static_cast<size_t>(n));
  }
  return 0;
}

}  // namespace

int RawDisk::read(std::span<const iovec> iov, uint64_t offset) {
  return transfer_all(iov, offset, [this](const iovec* v, int n, off_t off) {
    return ::preadv(m_fd.get(), v, n, off);
  });
}

int RawDisk::write(std::span<const iovec> iov, uint64_t offset) {
  if (m_read_only) return -EROFS;
  return transfer_all(iov, offset, [this](const iovec* v, int n, off_t off) {
    return ::pwritev(m_fd.get(), v, n, off);
  });
}

int RawDisk::flush() { return ::fdatasync(m_fd.get()) == 0 ? 0 : -errno; }

int RawDisk::discard(uint64_t offset, uint64_t len) {
  if (m_read_only) return -EROFS;
  if (::fallocate(m_fd.get(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                  static_cast<off_t>(offset), static_cast<off_t>(len)) != 0)
    return -errno;
  return 0;
}

int RawDisk::write_zeroes(uint64_t offset, uint64_t len, bool unmap) {
  if (m_read_only) return -EROFS;
  const int mode = unmap ? FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE : FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE;
  if (::fallocate(m_fd.get(), mode, static_cast<off_t>(offset), static_cast<off_t>(len)) == 0)
    return 0;
  if (errno != EOPNOTSUPP) return -errno;
  // The file system cannot do it in place: write zeroes.
  static const std::vector<uint8_t> zeroes(64 * 1024);
  while (len > 0) {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(len, zeroes.size()));
    iovec v{const_cast<uint8_t*>(zeroes.data()), n};
    if (int r = write(std::span<const iovec>(&v, 1), offset); r != 0) return r;
    offset += n;
    len -= n;
  }
  return 0;
}

}  // namespace doppel
