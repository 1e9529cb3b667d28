// DiskBackend: the host side of a virtual disk, whatever the image format (crosvm's
// DiskFile). virtio-blk sees only this interface; raw_disk.h and qcow2.h implement it.
//
// Threads: every method may be called from several threads at once (virtio-blk's worker
// pool); each implementation says how it serializes.
#pragma once

#include <sys/uio.h>

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace doppel {

enum class DiskFormat { kAuto, kRaw, kQcow2 };

std::string_view to_string(DiskFormat format);
// "raw", "qcow2" (and "auto", for the default).
Result<DiskFormat> parse_disk_format(std::string_view text);

class DiskBackend {
 public:
  static constexpr uint64_t kSectorSize = 512;

  virtual ~DiskBackend() = default;

  virtual DiskFormat format() const = 0;
  virtual const std::string& path() const = 0;
  // The guest-visible size in bytes.
  virtual uint64_t size() const = 0;
  virtual bool read_only() const = 0;
  // Up to 20 bytes identifying the image (virtio-blk GET_ID).
  virtual const std::string& serial() const = 0;
  // Whether discard() and write_zeroes() do what they say (not just -EOPNOTSUPP).
  virtual bool supports_discard() const = 0;
  virtual bool supports_write_zeroes() const = 0;
  // The granularity at which discard frees space (bytes, a multiple of kSectorSize):
  // smaller discards may be ignored.
  virtual uint64_t discard_alignment() const { return kSectorSize; }
  // The image this one reads unallocated data from (qcow2's backing file), if any.
  virtual const DiskBackend* backing() const { return nullptr; }
  // Format specifics for `doppel disk info`, e.g. "version 3, cluster size 65536".
  virtual std::string details() const { return {}; }

  // Each returns 0 or a negative errno; reads and writes transfer everything or fail.
  virtual int read(std::span<const iovec> iov, uint64_t offset) = 0;
  virtual int write(std::span<const iovec> iov, uint64_t offset) = 0;
  // Makes every completed write durable (a guest's flush).
  virtual int flush() = 0;
  virtual int discard(uint64_t offset, uint64_t len) = 0;
  virtual int write_zeroes(uint64_t offset, uint64_t len, bool unmap) = 0;
  // Writes back whatever the backend caches, so that another process opening the file now
  // sees every completed write (a paused VM's snapshot). Not a durability promise: flush().
  virtual int settle() { return 0; }

  // Image locks (image_lock.h) on this image and its backing chain. activate() takes them
  // (an incoming migration's disks are opened inactive, and taken over at the switch-over);
  // inactivate() drops them (the migration's source, paused and flushed, before the
  // destination takes over). Threads: the VMM's, with no request in flight.
  virtual Result<void> activate() { return ok(); }
  virtual void inactivate() {}
};

struct DiskOpenOptions {
  bool read_only = false;
  DiskFormat format = DiskFormat::kAuto;  // kAuto: from the image's first bytes
  // A backing file: any size is fine (reads past its end are zeroes); the device's own
  // image must be a whole number of sectors.
  bool backing = false;
  unsigned chain_depth = 0;  // how deep in a backing chain this image is (a loop ends at 16)
  // Image locks (image_lock.h): shared for a read-only image, exclusive for a writable one.
  // lock false: none at all (the user's ,locking=off). inactive: opened without them, for
  // activate() to take later (an incoming migration).
  bool lock = true;
  bool inactive = false;
};

// Opens an image as the format its header says (or the one asked for: a mismatch is an
// error naming the file and both formats).
Result<std::unique_ptr<DiskBackend>> open_disk(const std::string& path, const DiskOpenOptions& options);

// `doppel disk create`: a new qcow2 image (version 3, 64 KiB clusters). With a backing
// file it is a linked clone: the backing file's name is stored as given (a relative name is
// relative to the new image's directory, as qemu-img takes it) and its format is recorded in
// a header extension. size 0 with a backing file: the backing file's size.
struct DiskCreateOptions {
  uint64_t size = 0;
  std::string backing;
  DiskFormat backing_format = DiskFormat::kAuto;
  uint32_t cluster_bits = 16;
};
Result<void> create_qcow2(const std::string& path, const DiskCreateOptions& options);

// What `doppel disk info` prints: the image and each image of its backing chain.
struct DiskImageInfo {
  std::string path;
  DiskFormat format = DiskFormat::kRaw;
  uint64_t virtual_size = 0;
  uint64_t allocated_bytes = 0;  // host blocks the file takes (st_blocks), as qemu-img's "disk size"
  std::string details;           // format specifics, e.g. "version 3, cluster size 65536"
};
Result<std::vector<DiskImageInfo>> disk_info(const std::string& path);
std::string format_disk_info(const std::vector<DiskImageInfo>& chain);

// Internal helper shared by the backends: "doppel-<dev>-<inode>", at most 20 bytes.
std::string disk_serial(int fd);

// After a preadv/pwritev that moved `done` bytes of iov[first..]: drops the segments it
// finished (advancing first) and trims the one it stopped inside, so that the next call
// resumes where this one ended.
void skip_transferred(std::vector<iovec>& iov, size_t& first, size_t done);

}  // namespace doppel
