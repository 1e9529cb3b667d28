#include "backends/disk_backend.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <filesystem>

#include "backends/qcow2.h"
#include "backends/raw_disk.h"
#include "base/bits.h"
#include "base/unique_fd.h"

namespace doppel {

std::string_view to_string(DiskFormat format) {
  switch (format) {
    case DiskFormat::kAuto: return "auto";
    case DiskFormat::kRaw: return "raw";
    case DiskFormat::kQcow2: return "qcow2";
  }
  return "?";
}

Result<DiskFormat> parse_disk_format(std::string_view text) {
  if (text == "raw") return DiskFormat::kRaw;
  if (text == "qcow2") return DiskFormat::kQcow2;
  if (text == "auto") return DiskFormat::kAuto;
  return Error::format("unknown disk format '{}' (raw, qcow2)", text);
}

std::string disk_serial(int fd) {
  struct stat st {};
  if (fstat(fd, &st) != 0) return "doppel";
  return fmt::format("doppel-{:x}-{:x}", st.st_dev, st.st_ino).substr(0, 20);
}

namespace {

// The format the file's first bytes say.
Result<DiskFormat> probe(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return Error::from_errno(path);
  std::array<uint8_t, 4> magic{};
  ssize_t n;
  do n = ::pread(fd.get(), magic.data(), magic.size(), 0);
  while (n < 0 && errno == EINTR);
  if (n < 0) return Error::from_errno(fmt::format("{}: read", path));
  return n == 4 && qcow2::has_magic(magic) ? DiskFormat::kQcow2 : DiskFormat::kRaw;
}

}  // namespace

Result<std::unique_ptr<DiskBackend>> open_disk(const std::string& path, const DiskOpenOptions& options) {
  const DiskFormat found = TRY(probe(path));
  if (options.format != DiskFormat::kAuto && options.format != found)
    return Error::format("{}: is a {} image, not {} as asked{}", path, to_string(found), to_string(options.format),
                         found == DiskFormat::kQcow2
                             ? " (opening it as raw would show the guest its metadata)"
                             : "");
  if (found == DiskFormat::kQcow2) return std::unique_ptr<DiskBackend>(TRY(Qcow2Disk::open(path, options)));
  return std::unique_ptr<DiskBackend>(TRY(RawDisk::open(path, options)));
}

Result<void> create_qcow2(const std::string& path, const DiskCreateOptions& options) {
  qcow2::CreateOptions o;
  o.size = options.size;
  o.cluster_bits = options.cluster_bits;
  if (!options.backing.empty()) {
    std::filesystem::path base(options.backing);
    if (base.is_relative()) base = std::filesystem::path(path).parent_path() / base;
    DiskOpenOptions b;
    b.read_only = true;
    b.backing = true;
    b.format = options.backing_format;
    b.lock = false;  // read for its size only
    auto backing = open_disk(base.string(), b);
    if (!backing) return backing.error().context(fmt::format("{}: backing file", path));
    o.backing_file = options.backing;
    o.backing_format = std::string(to_string((*backing)->format()));
    if (o.size == 0) o.size = align_up((*backing)->size(), DiskBackend::kSectorSize);
  } else if (o.size == 0) {
    return Error::format("{}: a size is needed (or a backing file to take it from)", path);
  }
  return qcow2::create_image(path, o);
}

Result<std::vector<DiskImageInfo>> disk_info(const std::string& path) {
  DiskOpenOptions o;
  o.read_only = true;
  o.backing = true;  // any size: report it rather than refuse
  o.lock = false;    // headers only: an image a VM is using can be looked at
  auto top = TRY(open_disk(path, o));
  std::vector<DiskImageInfo> chain;
  for (const DiskBackend* d = top.get(); d; d = d->backing()) {
    DiskImageInfo info;
    info.path = d->path();
    info.format = d->format();
    info.virtual_size = d->size();
    info.details = d->details();
    struct stat st {};
    if (::stat(d->path().c_str(), &st) == 0) info.allocated_bytes = static_cast<uint64_t>(st.st_blocks) * 512;
    chain.push_back(std::move(info));
  }
  return chain;
}

namespace {

std::string human(uint64_t bytes) {
  static constexpr const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  double v = static_cast<double>(bytes);
  size_t u = 0;
  while (v >= 1024 && u + 1 < std::size(kUnits)) {
    v /= 1024;
    u++;
  }
  return u == 0 ? fmt::format("{} B", bytes) : fmt::format("{:.3g} {}", v, kUnits[u]);
}

}  // namespace

std::string format_disk_info(const std::vector<DiskImageInfo>& chain) {
  std::string out;
  for (size_t i = 0; i < chain.size(); i++) {
    const auto& d = chain[i];
    const std::string indent(i * 2, ' ');
    out += fmt::format("{}{}: {}\n", indent, i == 0 ? "image" : "backing file", d.path);
    out += fmt::format("{}  format: {}{}\n", indent, to_string(d.format),
                       d.details.empty() ? "" : fmt::format(" ({})", d.details));
    out += fmt::format("{}  virtual size: {} ({} bytes)\n", indent, human(d.virtual_size), d.virtual_size);
    out += fmt::format("{}  disk size: {} ({} bytes)\n", indent, human(d.allocated_bytes), d.allocated_bytes);
  }
  return out;
}

void skip_transferred(std::vector<iovec>& iov, size_t& first, size_t done) {
  while (first < iov.size() && done >= iov[first].iov_len) {
    done -= iov[first].iov_len;
    first++;
  }
  if (done > 0) {
    iov[first].iov_base = static_cast<uint8_t*>(iov[first].iov_base) + done;
    iov[first].iov_len -= done;
  }
}

}  // namespace doppel
