#include "boot/riscv64/elf.h"

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "base/bits.h"

namespace doppel::rv64boot {
namespace {

// A 64-bit RISC-V executable with `phnum` program headers, each a PT_LOAD of 16 file bytes
// (at offset 0x100 + 16 i) and 32 memory bytes at 0x80000000 + 0x1000 i.
std::vector<uint8_t> riscv_elf(unsigned phnum = 2) {
  std::vector<uint8_t> b(0x100 + 16 * phnum, 0);
  std::memcpy(b.data(), "\x7f" "ELF", 4);
  b[4] = 2;  // ELFCLASS64
  b[5] = 1;  // ELFDATA2LSB
  b[6] = 1;
  store_le<uint16_t>(&b[16], 2);    // ET_EXEC
  store_le<uint16_t>(&b[18], 243);  // EM_RISCV
  store_le<uint64_t>(&b[24], 0x80000010);
  store_le<uint64_t>(&b[32], 64);
  store_le<uint16_t>(&b[54], 56);
  store_le<uint16_t>(&b[56], static_cast<uint16_t>(phnum));
  for (unsigned i = 0; i < phnum; ++i) {
    uint8_t* ph = &b[64 + 56 * i];
    store_le<uint32_t>(ph, 1);
    store_le<uint64_t>(ph + 8, 0x100 + 16 * i);
    store_le<uint64_t>(ph + 24, 0x80000000 + 0x1000 * i);
    store_le<uint64_t>(ph + 32, 16);
    store_le<uint64_t>(ph + 40, 32);
  }
  return b;
}

std::string error_of(const std::vector<uint8_t>& file) {
  auto r = parse_elf(file, "kernel 'k.elf'");
  return r.ok() ? "<parsed>" : r.error().message();
}

TEST(Elf, LoadSegmentsAndEntryOfARiscv64Executable) {
  auto r = parse_elf(riscv_elf(), "kernel 'k.elf'");
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(r->entry, 0x80000010u);
  ASSERT_EQ(r->segments.size(), 2u);
  EXPECT_EQ(r->segments[1].index, 1u);
  EXPECT_EQ(r->segments[1].paddr, 0x80001000u);
  EXPECT_EQ(r->segments[1].offset, 0x110u);
  EXPECT_EQ(r->segments[1].file_size, 16u);
  EXPECT_EQ(r->segments[1].mem_size, 32u);
  EXPECT_EQ(r->low, 0x80000000u);
  EXPECT_EQ(r->high, 0x80001020u);
}

TEST(Elf, OtherSegmentTypesAndEmptySegmentsAreSkipped) {
  auto file = riscv_elf(3);
  store_le<uint32_t>(&file[64], 4);              // segment 0: PT_NOTE
  store_le<uint64_t>(&file[64 + 56 + 40], 0);    // segment 1: p_memsz 0
  store_le<uint64_t>(&file[64 + 56 + 32], 0);
  auto r = parse_elf(file, "kernel 'k.elf'");
  ASSERT_TRUE(r.ok()) << r.error().message();
  ASSERT_EQ(r->segments.size(), 1u);
  EXPECT_EQ(r->segments[0].index, 2u);
}

TEST(Elf, WhatCannotRunOnRiscv64IsRefusedWithTheReason) {
  auto file = riscv_elf();
  file[4] = 1;
  EXPECT_EQ(error_of(file),
            "kernel 'k.elf': a 32-bit ELF; doppel's riscv64 machine runs 64-bit RISC-V ELF files only");
  file = riscv_elf();
  file[5] = 2;
  EXPECT_EQ(error_of(file), "kernel 'k.elf': a big-endian ELF; RISC-V is little-endian");
  file = riscv_elf();
  store_le<uint16_t>(&file[18], 62);
  EXPECT_EQ(error_of(file), "kernel 'k.elf': an ELF for machine 62 (x86-64), not RISC-V (243)");
  file = riscv_elf();
  store_le<uint16_t>(&file[16], 1);
  EXPECT_NE(error_of(file).find("ELF type 1 is not an executable"), std::string::npos);
}

TEST(Elf, ClaimsBeyondTheFileAreErrorsNotReads) {
  auto file = riscv_elf();
  file.resize(63);
  EXPECT_EQ(error_of(file), "kernel 'k.elf': truncated ELF header (63 bytes)");

  file = riscv_elf();
  store_le<uint64_t>(&file[32], ~0ull - 8);  // e_phoff
  EXPECT_NE(error_of(file).find("program header table"), std::string::npos);

  file = riscv_elf();
  store_le<uint16_t>(&file[56], 0xfffe);  // far more headers than the file holds
  EXPECT_NE(error_of(file).find("runs past the end of the file"), std::string::npos);

  file = riscv_elf();
  store_le<uint64_t>(&file[64 + 8], ~0ull);  // p_offset
  EXPECT_NE(error_of(file).find("ELF segment 0 (file offset"), std::string::npos);

  file = riscv_elf();
  store_le<uint64_t>(&file[64 + 32], 64);  // p_filesz > p_memsz
  EXPECT_NE(error_of(file).find("more file bytes"), std::string::npos);

  file = riscv_elf();
  store_le<uint64_t>(&file[64 + 24], ~0ull - 8);  // paddr + memsz wraps
  EXPECT_NE(error_of(file).find("wraps around"), std::string::npos);

  file = riscv_elf();
  store_le<uint16_t>(&file[54], 32);
  EXPECT_NE(error_of(file).find("program header entries of 32 bytes"), std::string::npos);

  file = riscv_elf();
  store_le<uint32_t>(&file[64], 2);
  store_le<uint32_t>(&file[64 + 56], 2);
  EXPECT_EQ(error_of(file), "kernel 'k.elf': the ELF has no loadable segment");
}

}  // namespace
}  // namespace doppel::rv64boot
