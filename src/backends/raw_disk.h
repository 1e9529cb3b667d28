// A raw disk image file: the host side of virtio-blk.
//
// The image size must be a whole number of 512-byte sectors: open() refuses anything else
// with an error naming the file and its size (a silently truncated tail would hide data).
//
// Threads: every method is safe to call from several threads at once (positioned I/O only).
#pragma once

#include <sys/uio.h>

#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "base/result.h"
#include "base/unique_fd.h"

namespace doppel {

class RawDisk {
 public:
  static constexpr uint64_t kSectorSize = 512;

  static Result<std::unique_ptr<RawDisk>> open(const std::string& path, bool read_only);

  const std::string& path() const { return m_path; }
  uint64_t size() const { return m_size; }  // bytes, a multiple of kSectorSize
  bool read_only() const { return m_read_only; }
  // Up to 20 bytes identifying the image (virtio-blk GET_ID): "doppel-<dev>-<inode>".
  const std::string& serial() const { return m_serial; }

  // Each returns 0 or a negative errno; reads and writes transfer everything or fail.
  int read(std::span<const iovec> iov, uint64_t offset) const;
  int write(std::span<const iovec> iov, uint64_t offset) const;
  int flush() const;                                                   // fdatasync
  int discard(uint64_t offset, uint64_t len) const;                    // PUNCH_HOLE
  int write_zeroes(uint64_t offset, uint64_t len, bool unmap) const;   // ZERO_RANGE

 private:
  RawDisk() = default;
  std::string m_path;
  UniqueFd m_fd;
  uint64_t m_size = 0;
  bool m_read_only = false;
  std::string m_serial;
};

}  // namespace doppel
