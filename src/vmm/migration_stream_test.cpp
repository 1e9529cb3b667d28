#include "vmm/migration_stream.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

#include <gtest/gtest.h>

#include "base/state_io.h"
#include "base/unique_fd.h"

namespace doppel {
namespace {

constexpr uint64_t kBase = 0x80000000;
constexpr uint64_t kSize = 16 * kMigrationPageSize;

struct Vm {
  std::unique_ptr<GuestMemory> memory = GuestMemory::create({{kBase, kSize}}).release_value();
  uint8_t* page(unsigned i) { return memory->host_ptr(kBase + i * kMigrationPageSize, kMigrationPageSize); }
};

const MigrationHeader kHeader{Arch::kRiscv64, EngineKind::kEmu, kSize};
const std::vector<uint8_t> kState = {'s', 't', 'a', 't', 'e'};

// A whole stream of `pages` of src, then the state and the end.
std::vector<uint8_t> stream_of(Vm& src, std::initializer_list<unsigned> pages,
                               const MigrationHeader& header = kHeader) {
  VectorSink sink;
  EXPECT_TRUE(write_migration_header(sink, header).ok());
  PageBatch batch;
  for (unsigned p : pages) EXPECT_TRUE(batch.add(*src.memory, kBase + p * kMigrationPageSize));
  EXPECT_TRUE(write_migration_record(sink, MigrationRecord::kPages, batch.take()).ok());
  EXPECT_TRUE(write_migration_record(sink, MigrationRecord::kState, kState).ok());
  EXPECT_TRUE(write_migration_record(sink, MigrationRecord::kEnd, {}).ok());
  return sink.bytes;
}

TEST(MigrationStream, PagesAndStateArriveAsSent) {
  Vm src, dst;
  std::memset(src.page(1), 0xab, kMigrationPageSize);
  std::memset(src.page(5), 0x5c, kMigrationPageSize);
  std::memset(dst.page(2), 0x77, kMigrationPageSize);  // stale: the source's page 2 is zeros
  const auto bytes = stream_of(src, {1, 2, 5});
  SpanSource in(bytes);
  VectorSink answers;
  auto state = receive_migration(in, answers, *dst.memory, kHeader);
  ASSERT_TRUE(state.ok()) << state.error().message();
  EXPECT_EQ(*state, kState);
  for (unsigned p : {1u, 2u, 5u})
    EXPECT_EQ(std::memcmp(src.page(p), dst.page(p), kMigrationPageSize), 0) << "page " << p;
}

TEST(MigrationStream, AZeroPageTravelsAsItsAddressAlone) {
  Vm src;
  std::memset(src.page(3), 1, kMigrationPageSize);
  PageBatch batch;
  ASSERT_TRUE(batch.add(*src.memory, kBase));
  ASSERT_TRUE(batch.add(*src.memory, kBase + 3 * kMigrationPageSize));
  EXPECT_EQ(batch.zero_pages(), 1u);
  EXPECT_EQ(batch.take().size(), 4 + 8 + 8 + kMigrationPageSize);
}

TEST(MigrationStream, AnotherArchEngineOrRamSizeIsRefused) {
  Vm src, dst;
  for (const MigrationHeader& h : {MigrationHeader{Arch::kX86_64, EngineKind::kKvm, kSize},
                                   MigrationHeader{Arch::kRiscv64, EngineKind::kEmu, kSize * 2}}) {
    const auto bytes = stream_of(src, {0}, h);
    SpanSource in(bytes);
    VectorSink answers;
    auto r = receive_migration(in, answers, *dst.memory, kHeader);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().message().find("this one"), std::string::npos) << r.error().message();
  }
}

TEST(MigrationStream, CorruptionTruncationAndBadPagesAreRefusedWithTheReason) {
  Vm src, dst;
  std::memset(src.page(1), 0xab, kMigrationPageSize);
  const auto good = stream_of(src, {1});
  auto refuse = [&](std::vector<uint8_t> bytes, const char* why) {
    SpanSource in(bytes);
    VectorSink answers;
    auto r = receive_migration(in, answers, *dst.memory, kHeader);
    ASSERT_FALSE(r.ok()) << why;
    EXPECT_NE(r.error().message().find(why), std::string::npos) << r.error().message();
  };
  auto flipped = good;
  flipped[40 + 100] ^= 1;  // inside the page data
  refuse(flipped, "CRC");
  refuse({good.begin(), good.end() - 30}, "ends early");
  auto version = good;
  version[8] = 9;
  refuse(version, "CRC");  // the header's CRC covers the version

  // A page outside RAM, and an unaligned one, in records with correct CRCs.
  for (uint64_t gpa : {kBase + kSize, kBase + 8}) {
    VectorSink sink;
    ASSERT_TRUE(write_migration_header(sink, kHeader).ok());
    std::vector<uint8_t> payload(4 + 8 + kMigrationPageSize);
    const uint32_t count = 1;
    std::memcpy(payload.data(), &count, 4);
    std::memcpy(payload.data() + 4, &gpa, 8);
    ASSERT_TRUE(write_migration_record(sink, MigrationRecord::kPages, payload).ok());
    refuse(sink.bytes, gpa == kBase + 8 ? "aligned" : "outside guest RAM");
  }
}

TEST(MigrationStream, ARecordLongerThanTheLimitIsRefusedBeforeItIsRead) {
  VectorSink sink;
  ASSERT_TRUE(write_migration_header(sink, kHeader).ok());
  const uint32_t type = 1;
  const uint64_t len = kMaxMigrationRecord + 1;
  sink.bytes.insert(sink.bytes.end(), reinterpret_cast<const uint8_t*>(&type),
                    reinterpret_cast<const uint8_t*>(&type) + 4);
  sink.bytes.insert(sink.bytes.end(), reinterpret_cast<const uint8_t*>(&len),
                    reinterpret_cast<const uint8_t*>(&len) + 8);
  Vm dst;
  SpanSource in(sink.bytes);
  VectorSink answers;
  auto r = receive_migration(in, answers, *dst.memory, kHeader);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("at most"), std::string::npos) << r.error().message();
}

TEST(MigrationStream, CompressedPagesArriveAsSent) {
  Vm src, dst;
  for (unsigned p = 0; p < 16; p += 3) std::memset(src.page(p), static_cast<int>(p + 1), kMigrationPageSize);
  PageBatch batch;
  for (unsigned p = 0; p < 16; ++p) ASSERT_TRUE(batch.add(*src.memory, kBase + p * kMigrationPageSize));
  const auto plain = batch.take();
  const auto packed = compress_page_batch(plain).release_value();
  EXPECT_LT(packed.size(), plain.size() / 10);  // pages of one byte repeated
  VectorSink sink;
  ASSERT_TRUE(write_migration_header(sink, kHeader).ok());
  ASSERT_TRUE(write_migration_record(sink, MigrationRecord::kPagesZstd, packed).ok());
  ASSERT_TRUE(write_migration_record(sink, MigrationRecord::kState, kState).ok());
  ASSERT_TRUE(write_migration_record(sink, MigrationRecord::kEnd, {}).ok());
  SpanSource in(sink.bytes);
  VectorSink answers;
  auto state = receive_migration(in, answers, *dst.memory, kHeader);
  ASSERT_TRUE(state.ok()) << state.error().message();
  EXPECT_EQ(std::memcmp(src.memory->host_ptr(kBase, kSize), dst.memory->host_ptr(kBase, kSize), kSize), 0);
}

TEST(MigrationStream, ACompressedRecordThatLiesIsRefused) {
  const std::vector<uint8_t> garbage = {1, 2, 3, 4, 5, 6, 7, 8};
  EXPECT_EQ(decompress_page_batch(garbage).error().message(),
            "migration stream: a compressed page record is not a zstd frame");
  // A frame stating more than a record may hold is refused before anything is allocated.
  std::vector<uint8_t> big(kMaxMigrationRecord + 1);
  const auto packed = compress_page_batch(big).release_value();
  EXPECT_EQ(decompress_page_batch(packed).error().message(),
            fmt::format("migration stream: a compressed page record of {} bytes (at most {})",
                        kMaxMigrationRecord + 1, kMaxMigrationRecord));
  // Cut short: the frame no longer decompresses to the size it states.
  const auto small = compress_page_batch(std::vector<uint8_t>(4096, 7)).release_value();
  auto cut = decompress_page_batch(std::span(small).first(small.size() - 2));
  ASSERT_FALSE(cut.ok());
  EXPECT_TRUE(cut.error().message().starts_with("migration stream: a compressed page record")) << cut.error().message();
}

// A local live update: the memory file goes over a Unix socket with the record, and the
// destination's RAM becomes the same memory as the source's.
TEST(MigrationStream, AMemoryFileRecordHandsRamOver) {
  auto shared = GuestMemory::create({{kBase, kSize}}, /*shared=*/true).release_value();
  ASSERT_GE(shared->shared_fd(), 0);
  std::memset(shared->host_ptr(kBase + kMigrationPageSize, 1), 0x42, 1);
  Vm dst;
  uint8_t* const dst_page = dst.page(1);
  int pair[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair), 0);
  UniqueFd a(pair[0]), b(pair[1]);
  FdStream out(a.get()), in(b.get());
  ASSERT_TRUE(write_migration_header(out, kHeader).ok());
  const uint64_t ram = kSize;
  ASSERT_TRUE(write_migration_record(out, MigrationRecord::kMemoryFile,
                                     {reinterpret_cast<const uint8_t*>(&ram), sizeof ram}, shared->shared_fd())
                  .ok());
  ASSERT_TRUE(write_migration_record(out, MigrationRecord::kState, kState).ok());
  ASSERT_TRUE(write_migration_record(out, MigrationRecord::kEnd, {}).ok());
  auto state = receive_migration(in, in, *dst.memory, kHeader);
  ASSERT_TRUE(state.ok()) << state.error().message();
  EXPECT_EQ(dst.memory->shared_fd() >= 0, true);
  EXPECT_EQ(dst.page(1), dst_page);  // the host address stays
  EXPECT_EQ(dst_page[0], 0x42);
  dst_page[1] = 0x43;  // one memory: the source sees it
  EXPECT_EQ(shared->host_ptr(kBase + kMigrationPageSize + 1, 1)[0], 0x43);
}

TEST(MigrationStream, AMemoryFileRecordWithoutTheFileOrOfAnotherSizeIsRefused) {
  Vm dst;
  VectorSink sink;
  ASSERT_TRUE(write_migration_header(sink, kHeader).ok());
  const uint64_t ram = kSize;
  ASSERT_TRUE(write_migration_record(sink, MigrationRecord::kMemoryFile,
                                     {reinterpret_cast<const uint8_t*>(&ram), sizeof ram}).ok());
  SpanSource in(sink.bytes);
  VectorSink answers;
  EXPECT_EQ(receive_migration(in, answers, *dst.memory, kHeader).error().message(),
            "migration stream: the memory file record came with 0 files, not 1");

  auto other = GuestMemory::create({{kBase, 2 * kSize}}, /*shared=*/true).release_value();
  EXPECT_EQ(dst.memory->adopt_shared(UniqueFd(::dup(other->shared_fd()))).error().message(),
            fmt::format("guest memory file: {} bytes, but the VM's RAM is {} bytes", 2 * kSize, kSize));
}

}  // namespace
}  // namespace doppel
