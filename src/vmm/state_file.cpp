#include "vmm/state_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>

#include <fmt/format.h>

#include "base/state_io.h"
#include "base/unique_fd.h"

namespace doppel {

namespace {

// Codes in the header: fixed here, never the enums' C++ values.
constexpr uint32_t kArchRiscv64 = 1, kArchX86_64 = 2;
constexpr uint32_t kEngineEmu = 1, kEngineKvm = 2;
// A section with a one-byte name and no data: name length, name, version, data length.
constexpr size_t kMinSectionBytes = 4 + 1 + 4 + 8;

uint32_t arch_code(Arch arch) { return arch == Arch::kRiscv64 ? kArchRiscv64 : kArchX86_64; }
uint32_t engine_code(EngineKind engine) {
  return engine == EngineKind::kEmu ? kEngineEmu : kEngineKvm;
}

// Printable ASCII kept, anything else as \xNN: file contents may go into messages.
std::string escaped(std::span<const uint8_t> bytes) {
  std::string out;
  for (uint8_t b : bytes) {
    if (b >= 0x20 && b < 0x7f && b != '\\') out += static_cast<char>(b);
    else out += fmt::format("\\x{:02x}", b);
  }
  return out;
}
std::string escaped(std::string_view s) {
  return escaped({reinterpret_cast<const uint8_t*>(s.data()), s.size()});
}

bool valid_section_name(std::string_view name) {
  if (name.empty() || name.size() > kMaxSectionName) return false;
  for (char c : name)
    if (c < 0x20 || c > 0x7e) return false;
  return true;
}

Result<void> check_sections(const std::vector<StateSection>& sections) {
  if (sections.size() > kMaxSections)
    return Error::format("{} sections, at most {}", sections.size(), kMaxSections);
  for (size_t i = 0; i < sections.size(); ++i) {
    const std::string& name = sections[i].name;
    if (!valid_section_name(name))
      return Error::format("section {}: name '{}' is not 1 to {} printable ASCII characters", i,
                           escaped(name), kMaxSectionName);
    for (size_t j = 0; j < i; ++j)
      if (sections[j].name == name)
        return Error::format("section '{}' appears twice (sections {} and {})", name, j, i);
  }
  return ok();
}

Result<void> write_all(int fd, std::span<const uint8_t> bytes, const std::string& path) {
  while (!bytes.empty()) {
    const ssize_t n = ::write(fd, bytes.data(), bytes.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return Error::from_errno(path);
    }
    bytes = bytes.subspan(static_cast<size_t>(n));
  }
  return ok();
}

// Removes the temporary file unless the write got as far as renaming it.
class TempFileGuard {
 public:
  explicit TempFileGuard(std::string path) : m_path(std::move(path)) {}
  ~TempFileGuard() {
    if (!m_done) ::unlink(m_path.c_str());
  }
  TempFileGuard(const TempFileGuard&) = delete;
  TempFileGuard& operator=(const TempFileGuard&) = delete;
  void done() { m_done = true; }

 private:
  std::string m_path;
  bool m_done = false;
};

}  // namespace

const StateSection* StateFile::find(std::string_view name) const {
  for (const auto& s : sections)
    if (s.name == name) return &s;
  return nullptr;
}

Result<std::vector<uint8_t>> encode_state_file(const StateFile& file) {
  TRY(check_sections(file.sections));
  StateWriter body;
  body.write_u32(static_cast<uint32_t>(file.sections.size()));
  for (const auto& s : file.sections) {
    body.write_string(s.name);
    body.write_u32(s.version);
    body.write_blob(s.data);
  }
  StateWriter out;
  out.write_bytes({reinterpret_cast<const uint8_t*>(kStateFileMagic), sizeof kStateFileMagic});
  out.write_u32(kStateFileFormatVersion);
  out.write_u32(arch_code(file.arch));
  out.write_u32(engine_code(file.engine));
  out.write_u64(body.size());
  out.write_u32(crc32(body.data()));
  out.write_bytes(body.data());
  return out.take();
}

Result<StateFile> parse_state_file(std::span<const uint8_t> bytes) {
  if (bytes.size() < kStateFileHeaderSize)
    return Error::format("truncated: {} bytes, the header alone takes {}", bytes.size(),
                         kStateFileHeaderSize);
  StateReader header(bytes.first(kStateFileHeaderSize));
  const auto magic = TRY(header.read_bytes(sizeof kStateFileMagic, "magic"));
  if (std::memcmp(magic.data(), kStateFileMagic, sizeof kStateFileMagic) != 0)
    return Error::format("not a doppel VM state file (magic '{}', expected 'DOPPELVM')",
                         escaped(magic));
  const uint32_t format = TRY(header.read_u32("format version"));
  if (format != kStateFileFormatVersion)
    return Error::format("format version {} is not supported (this doppel reads version {})",
                         format, kStateFileFormatVersion);
  StateFile file;
  const uint32_t arch = TRY(header.read_u32("arch"));
  if (arch == kArchRiscv64) file.arch = Arch::kRiscv64;
  else if (arch == kArchX86_64) file.arch = Arch::kX86_64;
  else return Error::format("unknown arch code {} in the header", arch);
  const uint32_t engine = TRY(header.read_u32("engine"));
  if (engine == kEngineEmu) file.engine = EngineKind::kEmu;
  else if (engine == kEngineKvm) file.engine = EngineKind::kKvm;
  else return Error::format("unknown engine code {} in the header", engine);
  const uint64_t body_size = TRY(header.read_u64("body length"));
  const uint32_t crc = TRY(header.read_u32("body CRC"));

  const size_t follows = bytes.size() - kStateFileHeaderSize;
  if (body_size > follows)
    return Error::format("truncated: the header promises a {}-byte body, {} bytes follow",
                         body_size, follows);
  if (body_size < follows)
    return Error::format("{} bytes of trailing garbage after the {}-byte body",
                         follows - body_size, body_size);
  const auto body = bytes.subspan(kStateFileHeaderSize);
  const uint32_t actual = crc32(body);
  if (actual != crc)
    return Error::format("corrupt: the body's CRC-32 is {:#010x}, the header says {:#010x}",
                         actual, crc);

  // Over the whole file, so that offsets in errors are file offsets.
  StateReader r(bytes);
  TRY(r.read_bytes(kStateFileHeaderSize, "header"));
  const size_t count = TRY(r.read_count("section count", kMaxSections, kMinSectionBytes));
  file.sections.reserve(count);
  for (size_t i = 0; i < count; ++i) {
    const auto where = fmt::format("section {}", i);
    auto name = r.read_string(where + ": name", kMaxSectionName);
    if (!name.ok()) return name.release_error();
    if (!valid_section_name(*name))
      return Error::format("{}: name '{}' is not 1 to {} printable ASCII characters", where,
                           escaped(*name), kMaxSectionName);
    auto version = r.read_u32(fmt::format("section '{}': version", *name));
    if (!version.ok()) return version.release_error();
    auto data = r.read_blob(fmt::format("section '{}': data", *name), r.remaining());
    if (!data.ok()) return data.release_error();
    if (const StateSection* other = file.find(*name))
      return Error::format("section '{}' appears twice (sections {} and {})", *name,
                           static_cast<size_t>(other - file.sections.data()), i);
    file.sections.push_back({name.release_value(), *version, data.release_value()});
  }
  TRY(r.expect_end("body after the last section"));
  return file;
}

Result<void> write_state_file(const std::string& path, const StateFile& file) {
  auto bytes = encode_state_file(file);
  if (!bytes.ok()) return bytes.release_error().context(path);
  const std::string tmp = path + ".tmp";
  UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (!fd.valid()) return Error::from_errno(tmp);
  TempFileGuard guard(tmp);
  TRY(write_all(fd.get(), *bytes, tmp));
  if (::fsync(fd.get()) != 0) return Error::from_errno(fmt::format("{}: fsync", tmp));
  if (::close(fd.release()) != 0) return Error::from_errno(fmt::format("{}: close", tmp));
  if (::rename(tmp.c_str(), path.c_str()) != 0)
    return Error::from_errno(fmt::format("rename {} to {}", tmp, path));
  guard.done();
  // The rename is durable once the directory is.
  const std::string parent = std::filesystem::path(path).parent_path().string();
  const std::string dir = parent.empty() ? std::string(".") : parent;
  UniqueFd dir_fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dir_fd.valid() || ::fsync(dir_fd.get()) != 0)
    return Error::from_errno(fmt::format("{}: fsync of the directory {}", path, dir));
  return ok();
}

Result<StateFile> read_state_file(const std::string& path, std::optional<Arch> expect_arch,
                                  std::optional<EngineKind> expect_engine) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return Error::from_errno(path);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return Error::from_errno(path);
  if (!S_ISREG(st.st_mode)) return Error::format("{}: not a regular file", path);
  if (static_cast<uint64_t>(st.st_size) > kMaxStateFileSize)
    return Error::format("{}: {} bytes, more than any state file ({} at most)", path, st.st_size,
                         kMaxStateFileSize);
  // Reads to EOF (at most one byte past the limit), whatever st_size said.
  std::vector<uint8_t> bytes(static_cast<size_t>(st.st_size) + 1);
  size_t got = 0;
  for (;;) {
    if (got == bytes.size()) {
      if (bytes.size() > kMaxStateFileSize)
        return Error::format("{}: more than {} bytes", path, kMaxStateFileSize);
      bytes.resize(std::min<size_t>(bytes.size() * 2, kMaxStateFileSize + 1));
    }
    const ssize_t n = ::read(fd.get(), bytes.data() + got, bytes.size() - got);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Error::from_errno(path);
    }
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  bytes.resize(got);
  auto file = parse_state_file(bytes);
  if (!file.ok()) return file.release_error().context(path);
  if (expect_arch && file->arch != *expect_arch)
    return Error::format("{}: a {} snapshot; this VM is {}", path, to_string(file->arch),
                         to_string(*expect_arch));
  if (expect_engine && file->engine != *expect_engine)
    return Error::format("{}: a snapshot of the {} engine; this VM uses {}", path,
                         to_string(file->engine), to_string(*expect_engine));
  return file;
}

}  // namespace doppel
