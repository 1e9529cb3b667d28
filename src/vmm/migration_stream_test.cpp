#include "vmm/migration_stream.h"

#include <cstring>

#include <gtest/gtest.h>

#include "base/state_io.h"

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

}  // namespace
}  // namespace doppel
