// The part of an ELF file a machine loader needs: the PT_LOAD segments (where they go in
// physical memory and which bytes of the file fill them) and the entry point (System V
// gABI, "ELF Header" and "Program Header"; RISC-V ELF psABI for EM_RISCV).
//
// Only what doppel's riscv64 machine can run is accepted: ELFCLASS64, little-endian,
// EM_RISCV, an executable (ET_EXEC) or position-independent executable (ET_DYN) linked at
// its load address. Everything the file claims (offsets, sizes, addresses) is checked
// against the file's size and for overflow before it is returned; the caller still
// checks that the segments lie in guest RAM.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace doppel::rv64boot {

struct ElfSegment {
  unsigned index = 0;       // in the program header table (for messages)
  uint64_t paddr = 0;       // p_paddr: where it goes in guest physical memory
  uint64_t offset = 0;      // p_offset: first byte in the file
  uint64_t file_size = 0;   // p_filesz: bytes copied from the file
  uint64_t mem_size = 0;    // p_memsz >= file_size: the rest is zeroed (bss)
};

struct ElfImage {
  uint64_t entry = 0;                 // e_entry
  std::vector<ElfSegment> segments;   // PT_LOAD with p_memsz > 0, in table order
  // [lowest paddr, highest paddr + mem_size) over all segments.
  uint64_t low = 0;
  uint64_t high = 0;
};

// True if `head` starts with "\x7fELF".
bool has_elf_magic(std::span<const uint8_t> head);

// Parses the whole file's bytes. `what` names the file in errors, e.g. "kernel '/x/y'":
// "kernel '/x/y': a 32-bit ELF; doppel's riscv64 machine runs 64-bit RISC-V ELF files only".
Result<ElfImage> parse_elf(std::span<const uint8_t> file, std::string_view what);

}  // namespace doppel::rv64boot
