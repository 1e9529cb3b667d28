#include "engines/emu/riscv64/user/elf_loader.h"

#include <gtest/gtest.h>

#include <random>

#include "engines/emu/riscv64/user/elf_test_util.h"

namespace doppel::rv64::user {
namespace {

using testing::build_elf;
using testing::TestSegment;

std::vector<uint8_t> two_segment_elf() {
  TestSegment text{kPtLoad, kPfR | kPfX, 0x10000, std::vector<uint8_t>(100, 0x13), 0};
  TestSegment data{kPtLoad, kPfR | kPfW, 0x12000, {1, 2, 3, 4}, 0x3000};  // .bss after .data
  return build_elf(0x10010, {text, data});
}

std::string error_of(const std::vector<uint8_t>& elf) {
  auto r = parse_elf(elf, "prog");
  return r.ok() ? std::string("<parsed>") : r.error().message();
}

TEST(ElfLoader, ParsesAStaticExecutable) {
  const auto elf = two_segment_elf();
  auto r = parse_elf(elf, "prog");
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(r->entry, 0x10010u);
  ASSERT_EQ(r->segments.size(), 2u);
  EXPECT_EQ(r->segments[1].memsz, 0x3000u);
  EXPECT_EQ(r->low, 0x10000u);
  EXPECT_EQ(r->high, 0x15000u);  // page-aligned end of .bss: the initial program break
  EXPECT_EQ(r->phnum, 2);
  EXPECT_EQ(r->phentsize, 56);
}

TEST(ElfLoader, LoadsSegmentsAndZeroesBss) {
  const auto elf = two_segment_elf();
  auto image = parse_elf(elf, "prog");
  ASSERT_TRUE(image.ok());
  auto mem = GuestMemory::create({{0x10000, 0x10000}});
  ASSERT_TRUE(mem.ok());
  // Garbage where .bss goes: the loader must clear it.
  std::vector<uint8_t> junk(0x3000, 0xee);
  ASSERT_TRUE((*mem)->write(0x12000, junk));
  ASSERT_TRUE(load_elf(*image, elf, **mem).ok());
  EXPECT_EQ((*mem)->read_le<uint32_t>(0x10000), 0x13131313u);
  EXPECT_EQ((*mem)->read_le<uint32_t>(0x12000), 0x04030201u);
  EXPECT_EQ((*mem)->read_le<uint64_t>(0x12004), 0u);
  EXPECT_EQ((*mem)->read_le<uint64_t>(0x14ff8), 0u);
}

TEST(ElfLoader, RefusesToLoadOutsideGuestMemory) {
  const auto elf = two_segment_elf();
  auto image = parse_elf(elf, "prog");
  ASSERT_TRUE(image.ok());
  auto mem = GuestMemory::create({{0x10000, 0x1000}});  // .data does not fit
  ASSERT_TRUE(mem.ok());
  auto r = load_elf(*image, elf, **mem);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("outside guest memory"), std::string::npos);
}

TEST(ElfLoader, NamesWhatIsWrongWithABadHeader) {
  EXPECT_NE(error_of({0x7f, 'E', 'L'}).find("prog: too short"), std::string::npos);
  auto elf = two_segment_elf();
  auto bad = elf;
  bad[1] = 'X';
  EXPECT_NE(error_of(bad).find("bad magic"), std::string::npos);
  bad = elf;
  bad[4] = 1;
  EXPECT_NE(error_of(bad).find("not ELF64"), std::string::npos);
  bad = elf;
  bad[5] = 2;
  EXPECT_NE(error_of(bad).find("little-endian"), std::string::npos);
  EXPECT_NE(error_of(build_elf(0x10000, {TestSegment{}}, kEtExec, 62)).find("not a RISC-V"),
            std::string::npos);
  EXPECT_NE(error_of(build_elf(0x10000, {TestSegment{}}, kEtDyn)).find("ET_DYN"), std::string::npos);
}

TEST(ElfLoader, RefusesDynamicallyLinkedPrograms) {
  TestSegment interp{kPtInterp, kPfR, 0x10000, {'/', 'l', 'd', 0}, 0};
  TestSegment text{kPtLoad, kPfR | kPfX, 0x10000, std::vector<uint8_t>(16, 0), 0};
  EXPECT_NE(error_of(build_elf(0x10000, {interp, text})).find("PT_INTERP"), std::string::npos);
}

TEST(ElfLoader, RefusesHostileSegments) {
  auto seg = [](uint64_t vaddr, uint64_t memsz, uint32_t flags = kPfR | kPfX) {
    return TestSegment{kPtLoad, flags, vaddr, std::vector<uint8_t>(8, 0), memsz};
  };
  // Page zero, wrap-around, past the user address range.
  EXPECT_NE(error_of(build_elf(0x0, {seg(0, 0x1000)})).find("outside the user address range"),
            std::string::npos);
  EXPECT_NE(error_of(build_elf(0x10000, {seg(0x10000, ~0ull - 0x100)})).find("outside the user"),
            std::string::npos);
  EXPECT_NE(error_of(build_elf(0x10000, {seg(kUserAddrLimit - 0x1000, 0x2000)})).find("outside the user"),
            std::string::npos);
  // Overlap, entry outside any executable segment, file size beyond memory size.
  EXPECT_NE(error_of(build_elf(0x10000, {seg(0x10000, 0x2000), seg(0x11000, 0x100)})).find("overlap"),
            std::string::npos);
  EXPECT_NE(error_of(build_elf(0x20000, {seg(0x10000, 0x1000)})).find("entry point 0x20000"),
            std::string::npos);
  EXPECT_NE(error_of(build_elf(0x10000, {seg(0x10000, 0x1000, kPfR | kPfW)})).find("entry point"),
            std::string::npos);
  EXPECT_NE(error_of(build_elf(0x10000, {seg(0x10000, 4)})).find("exceeds memory size"), std::string::npos);
}

TEST(ElfLoader, RefusesOffsetsPastTheEndOfTheFile) {
  auto elf = two_segment_elf();
  auto bad = elf;
  store_le<uint64_t>(&bad[32], ~0ull - 8);  // e_phoff
  EXPECT_NE(error_of(bad).find("past the end of the file"), std::string::npos);
  bad = elf;
  store_le<uint16_t>(&bad[56], 0xffff);  // e_phnum
  EXPECT_NE(error_of(bad).find("past the end of the file"), std::string::npos);
  bad = elf;
  store_le<uint64_t>(&bad[64 + 8], ~0ull - 4);  // first p_offset: offset + filesz wraps
  EXPECT_NE(error_of(bad).find("past the end of the file"), std::string::npos);
  bad = elf;
  store_le<uint64_t>(&bad[64 + 32], 1ull << 40);  // p_filesz
  store_le<uint64_t>(&bad[64 + 40], 1ull << 40);
  EXPECT_NE(error_of(bad).find("past the end of the file"), std::string::npos);
}

// A hostile file must produce an error or a bounded load, never a crash or a write outside
// guest memory (run under ASan in the debug preset).
TEST(ElfLoader, SurvivesRandomCorruption) {
  const auto elf = two_segment_elf();
  std::mt19937_64 rng(1234);
  int parsed = 0;
  for (int i = 0; i < 5000; ++i) {
    auto bad = elf;
    const int flips = 1 + static_cast<int>(rng() % 4);
    for (int f = 0; f < flips; ++f) {
      const size_t at = rng() % 200;  // the headers
      bad[at] = static_cast<uint8_t>(rng());
    }
    if (rng() % 8 == 0) bad.resize(rng() % bad.size());
    auto image = parse_elf(bad, "fuzz");
    if (!image.ok()) continue;
    ++parsed;
    auto mem = GuestMemory::create({{0x10000, 0x10000}});
    ASSERT_TRUE(mem.ok());
    (void)load_elf(*image, bad, **mem);
  }
  EXPECT_GT(parsed, 0);  // some corruptions are harmless (e.g. padding bytes)
}

}  // namespace
}  // namespace doppel::rv64::user
