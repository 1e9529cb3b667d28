// Builds small ELF64 RISC-V executables in memory for the user-mode runner's tests.
#pragma once

#include <cstdint>
#include <cstring>
#include <vector>

#include "base/bits.h"
#include "engines/emu/riscv64/user/elf_loader.h"

namespace doppel::rv64::user::testing {

struct TestSegment {
  uint32_t type = kPtLoad;
  uint32_t flags = kPfR | kPfX;
  uint64_t vaddr = 0x10000;
  std::vector<uint8_t> data;  // file contents
  uint64_t memsz = 0;         // 0: data.size()
};

// Header at 0, program headers at 64, segment data after them (each at a 16-byte offset).
inline std::vector<uint8_t> build_elf(uint64_t entry, const std::vector<TestSegment>& segs,
                                      uint16_t type = kEtExec, uint16_t machine = kEmRiscv) {
  const size_t phoff = 64;
  size_t data_off = align_up(phoff + 56 * segs.size(), 16);
  std::vector<uint8_t> out(data_off, 0);
  const uint8_t ident[16] = {0x7f, 'E', 'L', 'F', 2, 1, 1, 0};
  std::memcpy(out.data(), ident, sizeof ident);
  store_le<uint16_t>(&out[16], type);
  store_le<uint16_t>(&out[18], machine);
  store_le<uint32_t>(&out[20], 1);
  store_le<uint64_t>(&out[24], entry);
  store_le<uint64_t>(&out[32], phoff);
  store_le<uint16_t>(&out[52], 64);
  store_le<uint16_t>(&out[54], 56);
  store_le<uint16_t>(&out[56], static_cast<uint16_t>(segs.size()));
  for (size_t i = 0; i < segs.size(); ++i) {
    const auto& s = segs[i];
    uint8_t* ph = &out[phoff + 56 * i];
    store_le<uint32_t>(ph, s.type);
    store_le<uint32_t>(ph + 4, s.flags);
    store_le<uint64_t>(ph + 8, data_off);
    store_le<uint64_t>(ph + 16, s.vaddr);
    store_le<uint64_t>(ph + 24, s.vaddr);
    store_le<uint64_t>(ph + 32, s.data.size());
    store_le<uint64_t>(ph + 40, s.memsz ? s.memsz : s.data.size());
    store_le<uint64_t>(ph + 48, 0x1000);
    out.resize(data_off);
    out.insert(out.end(), s.data.begin(), s.data.end());
    data_off = align_up(out.size(), 16);
  }
  return out;
}

// A few RV64I encodings (unprivileged spec chapter 2).
inline uint32_t enc_addi(unsigned rd, unsigned rs1, int32_t imm) {
  return (static_cast<uint32_t>(imm & 0xfff) << 20) | (rs1 << 15) | (rd << 7) | 0x13;
}
inline uint32_t enc_ld(unsigned rd, unsigned rs1, int32_t imm) {
  return (static_cast<uint32_t>(imm & 0xfff) << 20) | (rs1 << 15) | (3u << 12) | (rd << 7) | 0x03;
}
inline uint32_t enc_auipc(unsigned rd, uint32_t imm20) { return (imm20 << 12) | (rd << 7) | 0x17; }
constexpr uint32_t kEcall = 0x00000073;

inline void append_insn(std::vector<uint8_t>& code, uint32_t insn) {
  for (int i = 0; i < 4; ++i) code.push_back(static_cast<uint8_t>(insn >> (8 * i)));
}

}  // namespace doppel::rv64::user::testing
