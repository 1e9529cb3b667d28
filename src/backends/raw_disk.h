// A raw disk image file: the guest's sectors are the file's bytes.
//
// The image size must be a whole number of 512-byte sectors: open() refuses anything else
// with an error naming the file and its size (a silently truncated tail would hide data).
// A backing file (whole_sectors = false) may have any size.
//
// Threads: every method is safe to call from several threads at once (positioned I/O only).
#pragma once

#include "backends/disk_backend.h"
#include "backends/image_lock.h"
#include "base/unique_fd.h"

namespace doppel {

class RawDisk final : public DiskBackend {
 public:
  // Takes the image lock as options say (image_lock.h); options.backing: any size.
  static Result<std::unique_ptr<RawDisk>> open(const std::string& path, const DiskOpenOptions& options);
  static Result<std::unique_ptr<RawDisk>> open(const std::string& path, bool read_only) {
    DiskOpenOptions o;
    o.read_only = read_only;
    return open(path, o);
  }

  DiskFormat format() const override { return DiskFormat::kRaw; }
  const std::string& path() const override { return m_path; }
  uint64_t size() const override { return m_size; }
  bool read_only() const override { return m_read_only; }
  const std::string& serial() const override { return m_serial; }
  bool supports_discard() const override { return true; }
  bool supports_write_zeroes() const override { return true; }

  int read(std::span<const iovec> iov, uint64_t offset) override;
  int write(std::span<const iovec> iov, uint64_t offset) override;
  int flush() override;                                                 // fdatasync
  int discard(uint64_t offset, uint64_t len) override;                  // PUNCH_HOLE
  int write_zeroes(uint64_t offset, uint64_t len, bool unmap) override; // ZERO_RANGE
  Result<void> activate() override { return m_lock.acquire(); }
  void inactivate() override { m_lock.release(); }

 private:
  RawDisk() = default;
  std::string m_path;
  UniqueFd m_fd;
  uint64_t m_size = 0;
  bool m_read_only = false;
  std::string m_serial;
  ImageLock m_lock;
};

}  // namespace doppel
