// Static riscv64 ELF64 executables for the user-mode runner: header validation and loading
// of PT_LOAD segments into guest memory (System V gABI, "Program Header"; RISC-V ELF psABI).
//
// The file is untrusted: every offset, size and address is checked, so a hostile ELF gets
// an Error naming the field, never a crash or a write outside guest memory.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "base/result.h"
#include "core/guest_memory.h"

namespace doppel::rv64::user {

// ELF constants used here (gABI).
constexpr uint16_t kEtExec = 2;
constexpr uint16_t kEtDyn = 3;
constexpr uint16_t kEmRiscv = 243;
constexpr uint32_t kPtLoad = 1;
constexpr uint32_t kPtInterp = 3;
constexpr uint32_t kPtPhdr = 6;
constexpr uint32_t kPfX = 1, kPfW = 2, kPfR = 4;

constexpr uint64_t kUserPageSize = 4096;
// Nothing is mapped below this (Linux's default vm.mmap_min_addr), so null pointers fault.
constexpr uint64_t kUserMinAddr = 0x10000;
// The highest address a user image may use (Sv39's user half).
constexpr uint64_t kUserAddrLimit = 0x4000000000;

struct ElfSegment {
  uint64_t vaddr = 0;
  uint64_t memsz = 0;
  uint64_t offset = 0;  // in the file
  uint64_t filesz = 0;
  uint32_t flags = 0;   // kPfR | kPfW | kPfX
};

struct ElfImage {
  uint64_t entry = 0;
  uint64_t phdr_vaddr = 0;  // where the program headers are in guest memory, 0 if not loaded
  uint16_t phnum = 0;
  uint16_t phentsize = 0;
  std::vector<ElfSegment> segments;  // PT_LOAD, in file order
  uint64_t low = 0;    // page-aligned start of the lowest segment
  uint64_t high = 0;   // page-aligned end of the highest segment (initial program break)
};

// Validates the headers: ELF64, little-endian, RISC-V, ET_EXEC (static, no PT_INTERP),
// segments inside the file, non-overlapping, in [kUserMinAddr, kUserAddrLimit), entry
// inside an executable segment. `what` names the file in error messages.
Result<ElfImage> parse_elf(std::span<const uint8_t> file, std::string_view what);

// Copies each segment's file bytes to guest memory and zeroes the rest (.bss). Every
// segment must lie inside guest memory.
Result<void> load_elf(const ElfImage& image, std::span<const uint8_t> file, GuestMemory& memory);

}  // namespace doppel::rv64::user
