// The live-migration stream: what a source doppel sends a destination over one connection
// (TCP or a Unix socket), and the destination's answer.
//
// Layout, little-endian. A header, then records:
//
//   header   magic "DOPPELMG" (8), format version u32, arch u32, engine u32, guest RAM
//            bytes u64, page size u32, CRC-32 of these 28 bytes u32
//   record   type u32, payload length u64, payload, CRC-32 of the payload u32
//     kPages   u32 count, then per page: gpa u64 (4 KiB aligned; bit 0 set: a page of
//              zeros, no bytes follow) and, unless zero, the page's 4096 bytes
//     kState   the whole-VM state file's bytes (vmm/state_file.h, with its own CRC)
//     kPagesZstd  a kPages payload compressed as one zstd frame that states its size
//              (`compress`, for slow links)
//     kMemoryFile u64 guest RAM bytes; the memory file itself (GuestMemory::shared_fd())
//              rides with the record's first bytes as SCM_RIGHTS (a local live update over
//              a Unix socket: RAM is handed over, not copied)
//     kSync    empty: the destination answers kSynced once it has applied everything
//              before it (so the source measures the bandwidth the destination keeps up
//              with, and no round is still in flight when it decides to pause)
//     kEnd     empty: the source is paused and has sent everything
//   answers  (destination to source) kSynced (empty) to each kSync; in the end kRunning
//            (empty) once the destination's vCPUs run, or kFailed (the error message) if
//            it cannot take the VM.
//
// The destination trusts nothing: an unknown version, another arch or engine, another RAM
// size, a record longer than kMaxRecord, a page outside RAM or unaligned, a CRC mismatch
// and a stream that ends early are refused with the reason (fuzzed: migration_stream_fuzz).
//
// Threads: plain functions and objects owned by one thread.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"
#include "core/guest_memory.h"
#include "vmm/vm_config.h"

namespace doppel {

inline constexpr char kMigrationMagic[8] = {'D', 'O', 'P', 'P', 'E', 'L', 'M', 'G'};
constexpr uint32_t kMigrationFormatVersion = 1;
constexpr uint64_t kMigrationPageSize = 4096;
// A batch of pages or a state file: far above what a sender writes at once.
constexpr uint64_t kMaxMigrationRecord = 64ull << 20;

enum class MigrationRecord : uint32_t {
  kPages = 1,
  kState = 2,
  kEnd = 3,
  kSync = 4,
  kPagesZstd = 5,
  kMemoryFile = 6,
  kRunning = 16,
  kFailed = 17,
  kSynced = 18,
};

struct MigrationHeader {
  Arch arch = Arch::kRiscv64;
  EngineKind engine = EngineKind::kEmu;
  uint64_t ram_bytes = 0;
};

// Where stream bytes come from: a connection, or (for tests and the fuzzer) a buffer.
class ByteSource {
 public:
  virtual ~ByteSource() = default;
  // Exactly out.size() bytes, or an error ("the stream ended", a socket error).
  virtual Result<void> read_exact(std::span<uint8_t> out) = 0;
  // File descriptors that came with the bytes read so far (a Unix socket's SCM_RIGHTS).
  virtual std::vector<UniqueFd> take_fds() { return {}; }
};
class ByteSink {
 public:
  virtual ~ByteSink() = default;
  virtual Result<void> write_all(std::span<const uint8_t> in) = 0;
};

// A socket or pipe. Does not own the fd.
class FdStream final : public ByteSource, public ByteSink {
 public:
  explicit FdStream(int fd) : m_fd(fd) {}
  Result<void> read_exact(std::span<uint8_t> out) override;
  Result<void> write_all(std::span<const uint8_t> in) override;
  std::vector<UniqueFd> take_fds() override { return std::exchange(m_fds, {}); }
  // write_all(), with `fd` passed along with the first byte (a Unix socket only).
  Result<void> write_all_with_fd(std::span<const uint8_t> in, int fd);
  uint64_t bytes_written() const { return m_written; }

 private:
  int m_fd;
  uint64_t m_written = 0;
  std::vector<UniqueFd> m_fds;  // received, not yet taken
};

// Collects what is written (tests, the fuzzer).
class VectorSink final : public ByteSink {
 public:
  Result<void> write_all(std::span<const uint8_t> in) override {
    bytes.insert(bytes.end(), in.begin(), in.end());
    return ok();
  }
  std::vector<uint8_t> bytes;
};

class SpanSource final : public ByteSource {
 public:
  explicit SpanSource(std::span<const uint8_t> bytes) : m_bytes(bytes) {}
  Result<void> read_exact(std::span<uint8_t> out) override;

 private:
  std::span<const uint8_t> m_bytes;
};

Result<void> write_migration_header(ByteSink& out, const MigrationHeader& header);
Result<MigrationHeader> read_migration_header(ByteSource& in);

Result<void> write_migration_record(ByteSink& out, MigrationRecord type,
                                    std::span<const uint8_t> payload);
// The same with `fd` passed along (kMemoryFile).
Result<void> write_migration_record(FdStream& out, MigrationRecord type,
                                    std::span<const uint8_t> payload, int fd);
// kPagesZstd: compresses a kPages payload (zstd level 1: it has to keep up with the link).
Result<std::vector<uint8_t>> compress_page_batch(std::span<const uint8_t> payload);
// The kPages payload of a kPagesZstd one; refuses a frame that does not state its size or
// states one above kMaxMigrationRecord, and one that does not decompress to that size.
Result<std::vector<uint8_t>> decompress_page_batch(std::span<const uint8_t> payload);
struct MigrationRecordIn {
  MigrationRecord type;
  std::vector<uint8_t> payload;
};
// Checks the length against kMaxMigrationRecord before reading it, and the CRC.
Result<MigrationRecordIn> read_migration_record(ByteSource& in);

// Builds kPages payloads from guest RAM: zero pages are sent as their address alone.
class PageBatch {
 public:
  // Adds the page at gpa (read from memory now). False if the batch is full.
  bool add(const GuestMemory& memory, uint64_t gpa);
  bool empty() const { return m_count == 0; }
  uint32_t count() const { return m_count; }
  uint64_t zero_pages() const { return m_zero; }  // of the pages added since the last take()
  // The payload; the batch is empty again afterwards.
  std::vector<uint8_t> take();

  static constexpr uint32_t kMaxPages = 1024;  // 4 MiB of page data per record

 private:
  std::vector<uint8_t> m_bytes = std::vector<uint8_t>(4);  // the count, filled by take()
  uint32_t m_count = 0;
  uint64_t m_zero = 0;
};

// Writes a kPages payload's pages into guest RAM. Refuses an unaligned page, a page
// outside RAM, a count that does not match the bytes. Returns the number of pages.
Result<uint64_t> apply_page_batch(GuestMemory& memory, std::span<const uint8_t> payload);

// Reads what a destination receives up to and including kEnd: the pages go into memory,
// and the state file's bytes are returned. `expect` is the destination's own VM; a stream
// for another arch, engine or RAM size is refused.
// kSync is answered on `answers`.
Result<std::vector<uint8_t>> receive_migration(ByteSource& in, ByteSink& answers,
                                               GuestMemory& memory, const MigrationHeader& expect);

}  // namespace doppel
