#include "vmm/migration_stream.h"

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <sys/socket.h>
#include <unistd.h>

#include <zstd.h>

#include "base/state_io.h"

namespace doppel {

namespace {

constexpr size_t kHeaderSize = 8 + 4 + 4 + 4 + 8 + 4 + 4;
constexpr uint64_t kZeroPageFlag = 1;

// The state file's codes (vmm/state_file.h): 1 riscv64, 2 x86_64; 1 emu, 2 kvm.
uint32_t arch_code(Arch arch) { return arch == Arch::kRiscv64 ? 1 : 2; }
uint32_t engine_code(EngineKind engine) { return engine == EngineKind::kEmu ? 1 : 2; }

template <typename T>
T load(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
template <typename T>
void append(std::vector<uint8_t>& out, T v) {
  const auto* p = reinterpret_cast<const uint8_t*>(&v);
  out.insert(out.end(), p, p + sizeof v);
}

bool all_zero(const uint8_t* p, size_t n) {
  uint64_t acc = 0;
  for (size_t i = 0; i < n; i += 8) acc |= load<uint64_t>(p + i);
  return acc == 0;
}

}  // namespace

Result<void> FdStream::read_exact(std::span<uint8_t> out) {
  size_t done = 0;
  while (done < out.size()) {
    // recvmsg, not read: a memory file passed with the bytes (kMemoryFile) would otherwise
    // be dropped (and closed) by the kernel.
    iovec iov{out.data() + done, out.size() - done};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 4)];
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    ssize_t n = ::recvmsg(m_fd, &msg, MSG_CMSG_CLOEXEC);
    if (n < 0 && errno == ENOTSOCK) {
      n = ::read(m_fd, out.data() + done, out.size() - done);
      msg.msg_controllen = 0;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Error::format("migration stream: read: {}", std::strerror(errno));
    for (cmsghdr* c = msg.msg_controllen ? CMSG_FIRSTHDR(&msg) : nullptr; c; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
      const size_t fds = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      for (size_t i = 0; i < fds; ++i) {
        int fd;
        std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
        m_fds.emplace_back(fd);
      }
    }
    if (m_fds.size() > 4)
      return Error::format("migration stream: {} file descriptors came with it", m_fds.size());
    if (msg.msg_flags & MSG_CTRUNC)
      return Error::format("migration stream: more file descriptors came than expected");
    if (n == 0)
      return Error::format("migration stream: the connection closed ({} of {} bytes read)", done,
                           out.size());
    done += static_cast<size_t>(n);
  }
  return ok();
}

Result<void> FdStream::write_all_with_fd(std::span<const uint8_t> in, int fd) {
  if (in.empty()) return Error::format("migration stream: a file descriptor needs a byte to ride on");
  iovec iov{const_cast<uint8_t*>(in.data()), 1};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  cmsghdr* c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  std::memcpy(CMSG_DATA(c), &fd, sizeof fd);
  ssize_t n;
  do n = ::sendmsg(m_fd, &msg, MSG_NOSIGNAL);
  while (n < 0 && errno == EINTR);
  if (n < 0) return Error::format("migration stream: passing the memory file: {}", std::strerror(errno));
  m_written += 1;
  return write_all(in.subspan(1));
}

Result<void> FdStream::write_all(std::span<const uint8_t> in) {
  size_t done = 0;
  while (done < in.size()) {
    // MSG_NOSIGNAL: a destination that went away is an error here, not a SIGPIPE that
    // would end the source with its guest.
    ssize_t n = ::send(m_fd, in.data() + done, in.size() - done, MSG_NOSIGNAL);
    if (n < 0 && errno == ENOTSOCK) n = ::write(m_fd, in.data() + done, in.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Error::format("migration stream: write: {}", std::strerror(errno));
    done += static_cast<size_t>(n);
  }
  m_written += in.size();
  return ok();
}

Result<void> SpanSource::read_exact(std::span<uint8_t> out) {
  if (out.empty()) return ok();  // memcpy wants real pointers, even for 0 bytes
  if (out.size() > m_bytes.size())
    return Error::format("migration stream: it ends early ({} bytes needed, {} left)", out.size(),
                         m_bytes.size());
  std::memcpy(out.data(), m_bytes.data(), out.size());
  m_bytes = m_bytes.subspan(out.size());
  return ok();
}

Result<void> write_migration_header(ByteSink& out, const MigrationHeader& header) {
  std::vector<uint8_t> b(kMigrationMagic, kMigrationMagic + 8);
  append<uint32_t>(b, kMigrationFormatVersion);
  append<uint32_t>(b, arch_code(header.arch));
  append<uint32_t>(b, engine_code(header.engine));
  append<uint64_t>(b, header.ram_bytes);
  append<uint32_t>(b, static_cast<uint32_t>(kMigrationPageSize));
  append<uint32_t>(b, crc32(b));
  return out.write_all(b);
}

Result<MigrationHeader> read_migration_header(ByteSource& in) {
  uint8_t b[kHeaderSize];
  TRY(in.read_exact(b));
  if (std::memcmp(b, kMigrationMagic, 8) != 0)
    return Error::format("migration stream: not a doppel migration stream (bad magic)");
  if (load<uint32_t>(b + kHeaderSize - 4) != crc32({b, kHeaderSize - 4}))
    return Error::format("migration stream: the header's CRC does not match");
  const auto version = load<uint32_t>(b + 8);
  if (version != kMigrationFormatVersion)
    return Error::format("migration stream: format version {}; this doppel speaks version {}",
                         version, kMigrationFormatVersion);
  MigrationHeader h;
  const auto arch = load<uint32_t>(b + 12), engine = load<uint32_t>(b + 16);
  if (arch != 1 && arch != 2) return Error::format("migration stream: unknown arch {}", arch);
  if (engine != 1 && engine != 2)
    return Error::format("migration stream: unknown engine {}", engine);
  h.arch = arch == 1 ? Arch::kRiscv64 : Arch::kX86_64;
  h.engine = engine == 1 ? EngineKind::kEmu : EngineKind::kKvm;
  h.ram_bytes = load<uint64_t>(b + 20);
  const auto page = load<uint32_t>(b + 28);
  if (page != kMigrationPageSize)
    return Error::format("migration stream: page size {}; expected {}", page, kMigrationPageSize);
  return h;
}

namespace {

std::vector<uint8_t> record_head(MigrationRecord type, uint64_t len) {
  std::vector<uint8_t> head;
  append<uint32_t>(head, static_cast<uint32_t>(type));
  append<uint64_t>(head, len);
  return head;
}

Result<void> write_record_rest(ByteSink& out, std::span<const uint8_t> payload) {
  TRY(out.write_all(payload));
  std::vector<uint8_t> tail;
  append<uint32_t>(tail, crc32(payload));
  return out.write_all(tail);
}

}  // namespace

Result<void> write_migration_record(ByteSink& out, MigrationRecord type,
                                    std::span<const uint8_t> payload) {
  TRY(out.write_all(record_head(type, payload.size())));
  return write_record_rest(out, payload);
}

Result<void> write_migration_record(FdStream& out, MigrationRecord type,
                                    std::span<const uint8_t> payload, int fd) {
  TRY(out.write_all_with_fd(record_head(type, payload.size()), fd));
  return write_record_rest(out, payload);
}

Result<MigrationRecordIn> read_migration_record(ByteSource& in) {
  uint8_t head[12];
  TRY(in.read_exact(head));
  const auto type = load<uint32_t>(head);
  const auto len = load<uint64_t>(head + 4);
  switch (static_cast<MigrationRecord>(type)) {
    case MigrationRecord::kPages:
    case MigrationRecord::kState:
    case MigrationRecord::kEnd:
    case MigrationRecord::kSync:
    case MigrationRecord::kPagesZstd:
    case MigrationRecord::kMemoryFile:
    case MigrationRecord::kRunning:
    case MigrationRecord::kFailed:
    case MigrationRecord::kSynced: break;
    default: return Error::format("migration stream: unknown record type {}", type);
  }
  if (len > kMaxMigrationRecord)
    return Error::format("migration stream: a record of {} bytes (at most {})", len,
                         kMaxMigrationRecord);
  MigrationRecordIn r{static_cast<MigrationRecord>(type), std::vector<uint8_t>(len)};
  TRY(in.read_exact(r.payload));
  uint8_t crc[4];
  TRY(in.read_exact(crc));
  if (load<uint32_t>(crc) != crc32(r.payload))
    return Error::format("migration stream: a record's CRC does not match (type {}, {} bytes)",
                         type, len);
  return r;
}

Result<std::vector<uint8_t>> compress_page_batch(std::span<const uint8_t> payload) {
  std::vector<uint8_t> out(ZSTD_compressBound(payload.size()));
  const size_t n = ZSTD_compress(out.data(), out.size(), payload.data(), payload.size(), 1);
  if (ZSTD_isError(n)) return Error::format("migration stream: zstd: {}", ZSTD_getErrorName(n));
  out.resize(n);
  return out;
}

Result<std::vector<uint8_t>> decompress_page_batch(std::span<const uint8_t> payload) {
  const unsigned long long size = ZSTD_getFrameContentSize(payload.data(), payload.size());
  if (size == ZSTD_CONTENTSIZE_ERROR)
    return Error::format("migration stream: a compressed page record is not a zstd frame");
  if (size == ZSTD_CONTENTSIZE_UNKNOWN)
    return Error::format("migration stream: a compressed page record does not state its size");
  if (size > kMaxMigrationRecord)
    return Error::format("migration stream: a compressed page record of {} bytes (at most {})", size,
                         kMaxMigrationRecord);
  std::vector<uint8_t> out(size);
  const size_t n = ZSTD_decompress(out.data(), out.size(), payload.data(), payload.size());
  if (ZSTD_isError(n))
    return Error::format("migration stream: a compressed page record: {}", ZSTD_getErrorName(n));
  if (n != size)
    return Error::format("migration stream: a compressed page record gave {} bytes, not {}", n, size);
  return out;
}

bool PageBatch::add(const GuestMemory& memory, uint64_t gpa) {
  if (m_count == kMaxPages) return false;
  const uint8_t* page = memory.host_ptr(gpa, kMigrationPageSize);
  if (page && all_zero(page, kMigrationPageSize)) {
    append<uint64_t>(m_bytes, gpa | kZeroPageFlag);
    ++m_zero;
  } else {
    append<uint64_t>(m_bytes, gpa);
    if (page) m_bytes.insert(m_bytes.end(), page, page + kMigrationPageSize);
    else m_bytes.resize(m_bytes.size() + kMigrationPageSize);  // not RAM: never asked for
  }
  ++m_count;
  return true;
}

std::vector<uint8_t> PageBatch::take() {
  std::memcpy(m_bytes.data(), &m_count, sizeof m_count);
  std::vector<uint8_t> out = std::move(m_bytes);
  m_bytes.assign(4, 0);
  m_count = 0;
  m_zero = 0;
  return out;
}

Result<uint64_t> apply_page_batch(GuestMemory& memory, std::span<const uint8_t> payload) {
  if (payload.size() < 4) return Error::format("migration stream: a page record without a count");
  const auto count = load<uint32_t>(payload.data());
  size_t at = 4;
  for (uint32_t i = 0; i < count; ++i) {
    if (payload.size() - at < 8)
      return Error::format("migration stream: page {} of {}: the record ends early", i, count);
    const auto word = load<uint64_t>(payload.data() + at);
    at += 8;
    const uint64_t gpa = word & ~(kMigrationPageSize - 1);
    if ((word & (kMigrationPageSize - 1) & ~kZeroPageFlag) != 0)
      return Error::format("migration stream: page address {:#x} is not 4 KiB aligned", word);
    uint8_t* dst = memory.host_ptr_for_write(gpa, kMigrationPageSize);
    if (!dst)
      return Error::format("migration stream: page {:#x} lies outside guest RAM", gpa);
    if (word & kZeroPageFlag) {
      // Most zero pages land on fresh RAM: reading them maps the kernel's shared zero page,
      // writing would allocate one.
      if (!all_zero(dst, kMigrationPageSize)) std::memset(dst, 0, kMigrationPageSize);
      continue;
    }
    if (payload.size() - at < kMigrationPageSize)
      return Error::format("migration stream: page {:#x}: the record ends early", gpa);
    std::memcpy(dst, payload.data() + at, kMigrationPageSize);
    at += kMigrationPageSize;
  }
  if (at != payload.size())
    return Error::format("migration stream: {} bytes after the last page of a record",
                         payload.size() - at);
  return uint64_t{count};
}

Result<std::vector<uint8_t>> receive_migration(ByteSource& in, ByteSink& answers,
                                               GuestMemory& memory, const MigrationHeader& expect) {
  const MigrationHeader h = TRY(read_migration_header(in));
  if (h.arch != expect.arch || h.engine != expect.engine)
    return Error::format("migration stream: a {}/{} VM; this one is {}/{}", to_string(h.arch),
                         to_string(h.engine), to_string(expect.arch), to_string(expect.engine));
  if (h.ram_bytes != expect.ram_bytes)
    return Error::format("migration stream: the VM has {} MiB of RAM; this one {} MiB",
                         h.ram_bytes >> 20, expect.ram_bytes >> 20);
  std::vector<uint8_t> state;
  for (;;) {
    MigrationRecordIn r = TRY(read_migration_record(in));
    switch (r.type) {
      case MigrationRecord::kPages: TRY(apply_page_batch(memory, r.payload)); break;
      case MigrationRecord::kPagesZstd:
        TRY(apply_page_batch(memory, TRY(decompress_page_batch(r.payload))));
        break;
      case MigrationRecord::kMemoryFile: {
        std::vector<UniqueFd> fds = in.take_fds();
        if (fds.size() != 1)
          return Error::format("migration stream: the memory file record came with {} files, not 1",
                               fds.size());
        if (r.payload.size() != 8 || load<uint64_t>(r.payload.data()) != memory.total_size())
          return Error::format("migration stream: the memory file record is not for {} MiB of RAM",
                               memory.total_size() >> 20);
        TRY(memory.adopt_shared(std::move(fds[0])).context("migration stream"));
        break;
      }
      case MigrationRecord::kState: state = std::move(r.payload); break;
      case MigrationRecord::kSync: TRY(write_migration_record(answers, MigrationRecord::kSynced, {})); break;
      case MigrationRecord::kEnd:
        if (state.empty())
          return Error::format("migration stream: it ended without the VM's state");
        return state;
      default:
        return Error::format("migration stream: record type {} from the source",
                             static_cast<uint32_t>(r.type));
    }
  }
}

}  // namespace doppel
