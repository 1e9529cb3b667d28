#include "core/guest_memory.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "core/memory_diff.h"

namespace doppel {
namespace {

constexpr uint64_t kBase = 0x8000'0000;
constexpr uint64_t kSize = 64 * KiB;

std::unique_ptr<GuestMemory> make_memory() {
  auto mem = GuestMemory::create({{kBase, kSize}});
  EXPECT_TRUE(mem.ok()) << mem.error().message();
  return mem.release_value();
}

TEST(GuestMemory, ReadsBackWhatWasWrittenLittleEndian) {
  auto mem = make_memory();
  ASSERT_TRUE(mem->write_le<uint32_t>(kBase + 0x100, 0x11223344u));
  EXPECT_EQ(mem->read_le<uint8_t>(kBase + 0x100), 0x44);
  EXPECT_EQ(mem->read_le<uint16_t>(kBase + 0x102), 0x1122);
  EXPECT_EQ(mem->read_le<uint32_t>(kBase + 0x100), 0x11223344u);
}

TEST(GuestMemory, StartsZeroed) {
  auto mem = make_memory();
  EXPECT_EQ(mem->read_le<uint64_t>(kBase), 0u);
  EXPECT_EQ(mem->read_le<uint64_t>(kBase + kSize - 8), 0u);
}

TEST(GuestMemory, RefusesAccessesThatLeaveRam) {
  auto mem = make_memory();
  // The last 8 bytes are fine; one byte further is not.
  EXPECT_TRUE(mem->write_le<uint64_t>(kBase + kSize - 8, ~0ull));
  EXPECT_FALSE(mem->write_le<uint64_t>(kBase + kSize - 7, 1));
  EXPECT_FALSE(mem->read_le<uint64_t>(kBase + kSize - 7).has_value());
  EXPECT_FALSE(mem->read_le<uint8_t>(kBase - 1).has_value());
  EXPECT_FALSE(mem->read_le<uint8_t>(kBase + kSize).has_value());
  EXPECT_FALSE(mem->read_le<uint8_t>(0).has_value());
  // And nothing was written by the refused access.
  EXPECT_EQ(mem->read_le<uint64_t>(kBase + kSize - 8), ~0ull);
}

TEST(GuestMemory, GuestControlledLengthsCannotWrapAround) {
  auto mem = make_memory();
  EXPECT_EQ(mem->host_ptr(kBase + 16, ~0ull), nullptr);
  EXPECT_EQ(mem->host_ptr(kBase + 16, ~0ull - kBase), nullptr);
  EXPECT_EQ(mem->host_ptr(~0ull, 2), nullptr);
  std::array<uint8_t, 16> buf{};
  EXPECT_FALSE(mem->read(~0ull - 4, buf));
  EXPECT_FALSE(mem->write(kBase + kSize - 8, buf));
}

TEST(GuestMemory, SpanCopiesAreAllOrNothing) {
  auto mem = make_memory();
  std::array<uint8_t, 4> in{1, 2, 3, 4};
  ASSERT_TRUE(mem->write(kBase + 10, in));
  std::array<uint8_t, 4> out{};
  ASSERT_TRUE(mem->read(kBase + 10, out));
  EXPECT_EQ(out, in);
  EXPECT_TRUE(mem->host_ptr(kBase + kSize, 0) != nullptr) << "an empty range at the end is valid";
}

TEST(GuestMemory, SeveralRegionsAreEachReachableAndTheGapIsNot) {
  auto mem = GuestMemory::create({{0x10000, 0x1000}, {0x0, 0x1000}});
  ASSERT_TRUE(mem.ok());
  EXPECT_EQ((*mem)->total_size(), 0x2000u);
  EXPECT_TRUE((*mem)->write_le<uint8_t>(0x0, 1));
  EXPECT_TRUE((*mem)->write_le<uint8_t>(0x10fff, 1));
  EXPECT_FALSE((*mem)->write_le<uint8_t>(0x1000, 1));
  EXPECT_FALSE((*mem)->write_le<uint16_t>(0xfff, 1)) << "an access may not span two regions";
}

TEST(GuestMemory, RejectsBadLayouts) {
  auto overlap = GuestMemory::create({{0x0, 0x2000}, {0x1000, 0x1000}});
  ASSERT_FALSE(overlap.ok());
  EXPECT_NE(overlap.error().message().find("overlaps"), std::string::npos);
  auto empty = GuestMemory::create({{0x0, 0}});
  ASSERT_FALSE(empty.ok());
  EXPECT_NE(empty.error().message().find("size is zero"), std::string::npos);
  auto unaligned = GuestMemory::create({{0x10, 0x1000}});
  ASSERT_FALSE(unaligned.ok());
  EXPECT_NE(unaligned.error().message().find("not page-aligned"), std::string::npos);
}

TEST(GuestMemory, AtomicIndexHelpersCheckAlignmentAndBounds) {
  auto mem = make_memory();
  EXPECT_TRUE(mem->store_u16_release(kBase + 2, 0xbeef));
  EXPECT_EQ(mem->load_u16_acquire(kBase + 2), 0xbeef);
  EXPECT_FALSE(mem->store_u16_release(kBase + 3, 1));
  EXPECT_FALSE(mem->load_u16_acquire(kBase + kSize).has_value());
}


// ---- dirty pages ----

constexpr uint64_t kPage = GuestMemory::kDirtyPageSize;

TEST(GuestMemoryDirty, StartsCleanAndEveryWritePathMarksItsPages) {
  auto mem = make_memory();
  EXPECT_EQ(mem->dirty_page_count(), 0u);
  std::array<uint8_t, 8> buf{1, 2, 3, 4, 5, 6, 7, 8};
  ASSERT_TRUE(mem->write(kBase + 0 * kPage + 10, buf));
  ASSERT_TRUE(mem->write_le<uint32_t>(kBase + 1 * kPage + 4, 7));
  ASSERT_TRUE(mem->store_u16_release(kBase + 2 * kPage + 2, 7));
  ASSERT_NE(mem->host_ptr_for_write(kBase + 3 * kPage, 1), nullptr);
  mem->mark_dirty(kBase + 4 * kPage + 100, 1);
  EXPECT_EQ(mem->dirty_pages(), (std::vector<uint64_t>{kBase, kBase + kPage, kBase + 2 * kPage,
                                                       kBase + 3 * kPage, kBase + 4 * kPage}));
}

TEST(GuestMemoryDirty, ReadsAndRefusedWritesMarkNothing) {
  auto mem = make_memory();
  std::array<uint8_t, 8> buf{};
  ASSERT_TRUE(mem->read(kBase, buf));
  (void)mem->read_le<uint64_t>(kBase + kPage);
  (void)mem->load_u16_acquire(kBase + 2 * kPage);
  (void)mem->host_ptr(kBase + 3 * kPage, 8);  // for reading: the caller's business
  EXPECT_FALSE(mem->write_le<uint64_t>(kBase + kSize - 4, 1));  // leaves RAM
  EXPECT_FALSE(mem->store_u16_release(kBase + 5, 1));           // misaligned
  EXPECT_EQ(mem->host_ptr_for_write(kBase + kSize, 1), nullptr);
  mem->mark_dirty(kBase, 0);
  mem->mark_dirty(kBase - kPage, 16);  // below RAM
  EXPECT_EQ(mem->dirty_page_count(), 0u);
}

TEST(GuestMemoryDirty, RangesMarkEveryPageTheyTouchAcrossBitmapWords) {
  auto mem = GuestMemory::create({{kBase, 512 * kPage}});
  ASSERT_TRUE(mem.ok());
  // An 8-byte write across a page boundary marks both pages.
  ASSERT_TRUE((*mem)->write_le<uint64_t>(kBase + kPage - 4, ~0ull));
  EXPECT_TRUE((*mem)->is_dirty(kBase));
  EXPECT_TRUE((*mem)->is_dirty(kBase + kPage));
  EXPECT_FALSE((*mem)->is_dirty(kBase + 2 * kPage));
  // Pages 60..200: across three 64-bit words of the bitmap.
  (*mem)->clear_dirty();
  (*mem)->mark_dirty(kBase + 60 * kPage + 5, 140 * kPage);
  EXPECT_EQ((*mem)->dirty_page_count(), 141u);
  EXPECT_FALSE((*mem)->is_dirty(kBase + 59 * kPage));
  EXPECT_TRUE((*mem)->is_dirty(kBase + 60 * kPage));
  EXPECT_TRUE((*mem)->is_dirty(kBase + 200 * kPage));
  EXPECT_FALSE((*mem)->is_dirty(kBase + 201 * kPage));
  // A range running past the end of RAM marks up to the end only.
  (*mem)->clear_dirty();
  (*mem)->mark_dirty(kBase + 510 * kPage, 100 * kPage);
  EXPECT_EQ((*mem)->dirty_pages(), (std::vector<uint64_t>{kBase + 510 * kPage, kBase + 511 * kPage}));
}

TEST(GuestMemoryDirty, ClearForgetsEverythingAndBumpsTheGeneration) {
  auto mem = make_memory();
  ASSERT_TRUE(mem->write_le<uint8_t>(kBase, 1));
  const uint64_t generation = mem->dirty_generation();
  mem->clear_dirty();
  EXPECT_EQ(mem->dirty_page_count(), 0u);
  EXPECT_FALSE(mem->is_dirty(kBase));
  EXPECT_NE(mem->dirty_generation(), generation);
}

TEST(GuestMemoryDirty, TakeWrittenReportsAWriteOnceAndOutlivesClearDirty) {
  auto mem = GuestMemory::create({{kBase, 200 * kPage}});
  ASSERT_TRUE(mem.ok());
  EXPECT_FALSE((*mem)->take_written(kBase));
  ASSERT_TRUE((*mem)->write_le<uint32_t>(kBase + 8, 1));
  (*mem)->mark_dirty(kBase + 60 * kPage, 70 * kPage);  // a range across bitmap words
  (*mem)->clear_dirty();                                 // (a migration round's)
  EXPECT_TRUE((*mem)->take_written(kBase + 100));
  EXPECT_FALSE((*mem)->take_written(kBase + 100));  // taken
  EXPECT_FALSE((*mem)->take_written(kBase + 59 * kPage));
  EXPECT_TRUE((*mem)->take_written(kBase + 60 * kPage));
  EXPECT_TRUE((*mem)->take_written(kBase + 129 * kPage));
  EXPECT_FALSE((*mem)->take_written(kBase + 130 * kPage));
  EXPECT_FALSE((*mem)->take_written(kBase + 200 * kPage));  // past RAM
}

TEST(GuestMemoryDirty, PagesOfSeveralRegionsAreListedByAddress) {
  auto mem = GuestMemory::create({{0x100000, 4 * kPage}, {0x0, 2 * kPage}});
  ASSERT_TRUE(mem.ok());
  ASSERT_TRUE((*mem)->write_le<uint8_t>(0x100000 + 3 * kPage, 1));
  ASSERT_TRUE((*mem)->write_le<uint8_t>(0x1000, 1));
  EXPECT_EQ((*mem)->dirty_pages(), (std::vector<uint64_t>{0x1000, 0x100000 + 3 * kPage}));
}

// ---- memory files ----

class GuestMemoryFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    dir = std::filesystem::temp_directory_path() /
          ("doppel-mem-" + std::to_string(getpid()) + "-" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
  }
  void TearDown() override { std::filesystem::remove_all(dir); }
  std::string path(const std::string& name) const { return (dir / name).string(); }

  // Two regions (low 1 MiB and 2 MiB at 4 GiB), a recognisable byte on a few pages.
  static std::vector<GuestMemory::RegionSpec> layout() {
    return {{0x1'0000'0000, 2 * MiB}, {0x0, 1 * MiB}};
  }
  static std::unique_ptr<GuestMemory> make() {
    auto mem = GuestMemory::create(layout());
    EXPECT_TRUE(mem.ok()) << mem.error().message();
    return mem.release_value();
  }
  static void fill(GuestMemory& mem, uint8_t seed) {
    for (uint64_t gpa : {0x0ull, 0x3000ull, 0xff000ull, 0x1'0000'0000ull, 0x1'001f'f000ull}) {
      std::vector<uint8_t> page(kPage);
      for (size_t i = 0; i < page.size(); ++i) page[i] = static_cast<uint8_t>(seed + i * 7 + gpa);
      ASSERT_TRUE(mem.write(gpa, page));
    }
  }
  static std::vector<uint8_t> bytes(const GuestMemory& mem) {
    std::vector<uint8_t> out;
    for (const auto& r : mem.regions()) out.insert(out.end(), r.host, r.host + r.size);
    return out;
  }
  static std::vector<uint8_t> file_bytes(const std::string& p) {
    std::ifstream f(p, std::ios::binary);
    return std::vector<uint8_t>(std::istreambuf_iterator<char>(f), {});
  }
  static void write_file(const std::string& p, const std::vector<uint8_t>& b) {
    std::ofstream f(p, std::ios::binary | std::ios::trunc);
    f.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
  }
  // A base memory file of `mem` with dirty tracking reset, then some pages changed:
  // returns the diff's page count.
  size_t make_base_and_diff(GuestMemory& mem, const std::string& base, const std::string& diff) {
    fill(mem, 1);
    EXPECT_TRUE(mem.save_to_file(base).ok());
    mem.clear_dirty();
    std::vector<uint8_t> page(kPage, 0xab);
    EXPECT_TRUE(mem.write(0x5000, page));                          // new data
    EXPECT_TRUE(mem.write(0x3000, std::vector<uint8_t>(kPage)));   // zeroed
    EXPECT_TRUE(mem.write_le<uint64_t>(0x1'0000'0ffc, 0x1234567890ull));  // two pages
    auto n = mem.save_dirty_to_file(diff);
    EXPECT_TRUE(n.ok()) << n.error().message();
    return n.ok() ? *n : 0;
  }
  static std::string error_of(const Result<void>& r) { return r.ok() ? "(ok)" : r.error().message(); }

  std::filesystem::path dir;
};

TEST_F(GuestMemoryFiles, FullFileRestoresEveryByte) {
  auto mem = make();
  fill(*mem, 3);
  ASSERT_TRUE(mem->save_to_file(path("mem")).ok());
  EXPECT_FALSE(std::filesystem::exists(path("mem.tmp")));
  EXPECT_EQ(std::filesystem::file_size(path("mem")), 3 * MiB);
  auto restored = GuestMemory::create_from_file(layout(), path("mem"));
  ASSERT_TRUE(restored.ok()) << restored.error().message();
  EXPECT_EQ(bytes(**restored), bytes(*mem));
  EXPECT_EQ((*restored)->regions()[0].gpa, 0u) << "regions in address order, as in the file";
  EXPECT_EQ((*restored)->dirty_page_count(), 0u);
}

TEST_F(GuestMemoryFiles, RestoredMemoryIsCopyOnWrite) {
  auto mem = make();
  fill(*mem, 5);
  ASSERT_TRUE(mem->save_to_file(path("mem")).ok());
  const std::vector<uint8_t> on_disk = file_bytes(path("mem"));
  auto a = GuestMemory::create_from_file(layout(), path("mem"));
  auto b = GuestMemory::create_from_file(layout(), path("mem"));  // a second VM, same file
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_TRUE((*a)->write_le<uint64_t>(0x3000, 0xdeadbeefdeadbeefull));
  ASSERT_TRUE((*a)->write_le<uint64_t>(0x50000, 1));  // a hole of the file
  EXPECT_EQ((*a)->read_le<uint64_t>(0x3000), 0xdeadbeefdeadbeefull);
  EXPECT_EQ(file_bytes(path("mem")), on_disk);
  EXPECT_EQ(bytes(**b), bytes(*mem));
  EXPECT_TRUE((*a)->is_dirty(0x3000));
}

TEST_F(GuestMemoryFiles, FullFileIsSparse) {
  auto mem = GuestMemory::create({{0x8000'0000, 64 * MiB}});
  ASSERT_TRUE(mem.ok());
  ASSERT_TRUE((*mem)->write_le<uint64_t>(0x8000'0000 + 5 * MiB, 42));
  ASSERT_TRUE((*mem)->save_to_file(path("mem")).ok());
  struct stat st {};
  ASSERT_EQ(stat(path("mem").c_str(), &st), 0);
  EXPECT_EQ(static_cast<uint64_t>(st.st_size), 64 * MiB);
  EXPECT_LT(static_cast<uint64_t>(st.st_blocks) * 512, 1 * MiB) << "zero pages are holes";
  auto restored = GuestMemory::create_from_file({{0x8000'0000, 64 * MiB}}, path("mem"));
  ASSERT_TRUE(restored.ok());
  EXPECT_EQ((*restored)->read_le<uint64_t>(0x8000'0000 + 5 * MiB), 42u);
}

TEST_F(GuestMemoryFiles, RefusesAFileOfTheWrongSize) {
  write_file(path("short"), std::vector<uint8_t>(3 * MiB - kPage));
  auto r = GuestMemory::create_from_file(layout(), path("short"));
  ASSERT_FALSE(r.ok());
  const std::string& m = r.error().message();
  EXPECT_NE(m.find(path("short")), std::string::npos) << m;
  EXPECT_NE(m.find(std::to_string(3 * MiB - kPage)), std::string::npos) << m;
  EXPECT_NE(m.find(std::to_string(3 * MiB)), std::string::npos) << m;
  auto missing = GuestMemory::create_from_file(layout(), path("none"));
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().message().find("No such file"), std::string::npos);
}

TEST_F(GuestMemoryFiles, FailedSaveLeavesNothingBehind) {
  auto mem = make();
  std::filesystem::create_directory(path("taken"));  // rename() cannot replace a directory
  auto r = mem->save_to_file(path("taken"));
  EXPECT_FALSE(r.ok());
  EXPECT_FALSE(std::filesystem::exists(path("taken.tmp")));
  EXPECT_TRUE(std::filesystem::is_directory(path("taken")));
  EXPECT_FALSE(mem->save_dirty_to_file(path("taken")).ok());
  EXPECT_FALSE(std::filesystem::exists(path("taken.tmp")));
}

TEST_F(GuestMemoryFiles, DiffHoldsOnlyTheDirtyPagesAndRestoresOnTheBase) {
  auto mem = make();
  const size_t pages = make_base_and_diff(*mem, path("base"), path("diff"));
  EXPECT_EQ(pages, 4u);
  EXPECT_EQ(std::filesystem::file_size(path("diff")),
            memdiff::kHeaderSize + 2 * memdiff::kRegionEntrySize + 4 * memdiff::kRecordSize);
  auto restored = GuestMemory::create_from_file(layout(), path("base"));
  ASSERT_TRUE(restored.ok());
  EXPECT_NE(bytes(**restored), bytes(*mem));
  ASSERT_TRUE((*restored)->apply_diff_file(path("diff")).ok());
  EXPECT_EQ(bytes(**restored), bytes(*mem));
  // The applied pages count as dirty: the next diff holds them too, so it applies on the
  // base alone as well as on base + this diff.
  EXPECT_EQ((*restored)->dirty_page_count(), 4u);
}

TEST_F(GuestMemoryFiles, MergeFoldsTheDiffIntoTheBase) {
  auto mem = make();
  make_base_and_diff(*mem, path("base"), path("diff"));
  ASSERT_TRUE(merge_diff_into(path("base"), path("diff")).ok());
  EXPECT_EQ(file_bytes(path("base")), bytes(*mem));
  // Merging again changes nothing (an interrupted merge can be rerun).
  ASSERT_TRUE(merge_diff_into(path("base"), path("diff")).ok());
  EXPECT_EQ(file_bytes(path("base")), bytes(*mem));
}

TEST_F(GuestMemoryFiles, MergeIsRefusedWhileAVmMapsTheBase) {
  auto mem = make();
  make_base_and_diff(*mem, path("base"), path("diff"));
  const auto before = file_bytes(path("base"));
  {
    auto running = GuestMemory::create_from_file(layout(), path("base"));
    ASSERT_TRUE(running.ok());
    const std::string e = error_of(merge_diff_into(path("base"), path("diff")));
    EXPECT_NE(e.find("running VM"), std::string::npos) << e;
    EXPECT_EQ(file_bytes(path("base")), before);
  }
  EXPECT_TRUE(merge_diff_into(path("base"), path("diff")).ok());
}

TEST_F(GuestMemoryFiles, EmptyDiffIsValid) {
  auto mem = make();
  auto n = mem->save_dirty_to_file(path("diff"));
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 0u);
  EXPECT_TRUE(mem->apply_diff_file(path("diff")).ok());
}

TEST_F(GuestMemoryFiles, DiffRefusals) {
  auto mem = make();
  make_base_and_diff(*mem, path("base"), path("diff"));
  const std::vector<uint8_t> good = file_bytes(path("diff"));
  std::filesystem::copy_file(path("base"), path("restored"));  // the base stays unlocked
  auto target = GuestMemory::create_from_file(layout(), path("restored"));
  ASSERT_TRUE(target.ok());
  const std::vector<uint8_t> untouched = bytes(**target);

  struct Case {
    const char* what;
    std::vector<uint8_t> file;
    const char* reason;
  };
  auto with = [&](size_t at, uint8_t value) {
    auto b = good;
    b[at] = value;
    return b;
  };
  auto cut = [&](size_t n) { return std::vector<uint8_t>(good.begin(), good.begin() + static_cast<long>(n)); };
  auto longer = good;
  longer.push_back(0);
  const size_t records = memdiff::kHeaderSize + 2 * memdiff::kRegionEntrySize;
  const std::vector<Case> cases = {
      {"empty", {}, "truncated"},
      {"half a header", cut(20), "truncated"},
      {"no region table", cut(memdiff::kHeaderSize + 8), "truncated"},
      {"a page short", cut(good.size() - 100), "truncated"},
      {"trailing bytes", longer, "after its 4 pages"},
      {"bad magic", with(0, 'X'), "magic"},
      {"future version", with(8, 2), "version 2"},
      {"other page size", with(13, 0x20), "page size"},
      {"flags", with(36, 1), "flags"},
      {"no regions", with(32, 0), "memory regions"},
      {"RAM size disagrees with regions", with(18, 0x40), "add up"},
      {"more pages than RAM", with(31, 0x10), "more than"},
      {"page data flipped", with(records + 8 + 100, good[records + 8 + 100] ^ 1), "checksum"},
      {"checksum flipped", with(memdiff::kChecksumOffset, good[memdiff::kChecksumOffset] ^ 1),
       "checksum"},
      {"unaligned page offset", with(records, 0x10), "not page-aligned"},
      {"page beyond RAM", with(records + 7, 0x10), "beyond"},
      {"pages out of order", with(records + memdiff::kRecordSize + 1, 0), "ascending"},
  };
  for (const auto& c : cases) {
    write_file(path("bad"), c.file);
    const std::string e = error_of((*target)->apply_diff_file(path("bad")));
    EXPECT_NE(e.find(path("bad")), std::string::npos) << c.what << ": " << e;
    EXPECT_NE(e.find(c.reason), std::string::npos) << c.what << ": " << e;
    const std::string m = error_of(merge_diff_into(path("base"), path("bad")));
    EXPECT_NE(m.find(c.reason), std::string::npos) << c.what << " (merge): " << m;
  }
  EXPECT_EQ(bytes(**target), untouched) << "no refused diff wrote a page";
}

TEST_F(GuestMemoryFiles, DiffForAnotherLayoutIsRefused) {
  auto mem = make();
  make_base_and_diff(*mem, path("base"), path("diff"));
  auto other = GuestMemory::create({{0x0, 3 * MiB}});  // same size, other layout
  ASSERT_TRUE(other.ok());
  const std::string e = error_of((*other)->apply_diff_file(path("diff")));
  EXPECT_NE(e.find("made for guest RAM at 0x0+0x100000, 0x100000000+0x200000"), std::string::npos)
      << e;
  write_file(path("small"), std::vector<uint8_t>(1 * MiB));
  const std::string m = error_of(merge_diff_into(path("small"), path("diff")));
  EXPECT_NE(m.find("made for 3145728 bytes of RAM"), std::string::npos) << m;
}

}  // namespace
}  // namespace doppel
