// libFuzzer: a qcow2 image from fuzz bytes, opened as a device would open it, then guest
// reads, writes, discards, zeroes and flushes. Nothing may crash, hang or touch memory it
// should not; errors are fine.
//
// Input: byte 0 picks the image. Even: the bytes after the op list are the whole image.
// Odd: they patch a valid template image (512-byte clusters, data, a raw backing file) as
// (offset, byte) pairs, which reaches the table walks without first finding a valid header.
// Bytes 1..32 are eight operations of 4 bytes: kind, sector (2 bytes), sector count.
#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "backends/disk_backend.h"
#include "backends/qcow2_format.h"

using namespace doppel;

namespace {

constexpr size_t kOps = 8;

const std::string& dir() {
  static const std::string path = [] {
    // tmpfs where there is one: flushes are fdatasync calls, cheap there.
    char shm[] = "/dev/shm/doppel-qcow2-fuzz-XXXXXX";
    if (mkdtemp(shm)) return std::string(shm);
    char tmpl[] = "/tmp/doppel-qcow2-fuzz-XXXXXX";
    if (!mkdtemp(tmpl)) abort();
    return std::string(tmpl);
  }();
  return path;
}

void write_file(const std::string& path, const uint8_t* data, size_t size) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) abort();
  if (size && ::write(fd, data, size) != static_cast<ssize_t>(size)) abort();
  ::close(fd);
}

std::vector<uint8_t> read_file(const std::string& path) {
  std::vector<uint8_t> out;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) abort();
  uint8_t buf[4096];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof buf)) > 0) out.insert(out.end(), buf, buf + n);
  ::close(fd);
  return out;
}

// A small valid image with some of everything: allocated data, a zero cluster, a backing file.
const std::vector<uint8_t>& image_template() {
  static const std::vector<uint8_t> bytes = [] {
    const std::string base = dir() + "/base.raw";
    std::vector<uint8_t> b(40000);
    for (size_t i = 0; i < b.size(); i++) b[i] = static_cast<uint8_t>(i * 13);
    write_file(base, b.data(), b.size());
    const std::string path = dir() + "/template.qcow2";
    ::unlink(path.c_str());
    qcow2::CreateOptions o;
    o.size = 64 * 1024;
    o.cluster_bits = 9;
    o.backing_file = "base.raw";
    o.backing_format = "raw";
    if (!qcow2::create_image(path, o).ok()) abort();
    {
      auto disk = open_disk(path, {});
      if (!disk.ok()) abort();
      std::vector<uint8_t> data(3000, 0xab);
      iovec v{data.data(), data.size()};
      if ((*disk)->write(std::span<const iovec>(&v, 1), 1024) != 0) abort();
      if ((*disk)->write_zeroes(8192, 1024, false) != 0) abort();
      if ((*disk)->discard(16384, 512) != 0) abort();
    }
    return read_file(path);
  }();
  return bytes;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1 + 4 * kOps) return 0;
  const uint8_t* ops = data + 1;
  const uint8_t* rest = data + 1 + 4 * kOps;
  const size_t rest_size = size - 1 - 4 * kOps;
  const std::string path = dir() + "/image.qcow2";
  if (data[0] & 1) {
    std::vector<uint8_t> image = image_template();
    for (size_t i = 0; i + 3 <= rest_size; i += 3) {
      const size_t at = (size_t{rest[i]} << 8 | rest[i + 1]) % image.size();
      image[at] = rest[i + 2];
    }
    write_file(path, image.data(), image.size());
  } else {
    write_file(path, rest, rest_size);
  }

  DiskOpenOptions options;
  options.read_only = data[0] & 2;
  options.format = DiskFormat::kQcow2;
  auto opened = open_disk(path, options);
  if (!opened.ok()) return 0;
  DiskBackend& disk = **opened;
  const uint64_t sectors = disk.size() / DiskBackend::kSectorSize;
  if (sectors == 0) return 0;
  std::vector<uint8_t> buf(255 * DiskBackend::kSectorSize);
  for (size_t i = 0; i < kOps; i++) {
    const uint8_t kind = ops[i * 4];
    uint64_t sector = (uint64_t{ops[i * 4 + 1]} << 8 | ops[i * 4 + 2]) % sectors;
    if (kind & 0x80) sector = sectors - 1 - sector % std::min<uint64_t>(sectors, 64);  // near the end
    const uint64_t count = std::min<uint64_t>(ops[i * 4 + 3] % 255 + 1, sectors - sector);
    const uint64_t off = sector * DiskBackend::kSectorSize;
    const uint64_t len = count * DiskBackend::kSectorSize;
    iovec v{buf.data(), static_cast<size_t>(len)};
    const std::span<const iovec> iov(&v, 1);
    switch (kind % 6) {
      case 0: (void)disk.read(iov, off); break;
      case 1:
        std::fill_n(buf.begin(), len, static_cast<uint8_t>(i + 1));
        (void)disk.write(iov, off);
        break;
      case 2: (void)disk.discard(off, len); break;
      case 3: (void)disk.write_zeroes(off, len, kind & 0x40); break;
      case 4: (void)disk.flush(); break;
      case 5: (void)disk.read(iov, off); (void)disk.settle(); break;
    }
  }
  return 0;
}
