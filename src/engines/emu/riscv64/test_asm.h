// A tiny RV64 assembler for unit tests: encoders for the instruction formats, and a fixture
// with guest RAM at 0x80000000, a recording MMIO device and a Hart.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string_view>
#include <vector>

#include <gtest/gtest.h>

#include "core/bus.h"
#include "core/device.h"
#include "core/guest_memory.h"
#include "engines/emu/riscv64/hart.h"
#include "engines/emu/riscv64/timebase.h"

namespace doppel::rv64::testasm {

// ABI register numbers.
enum : uint32_t {
  zero = 0, ra = 1, sp = 2, gp = 3, tp = 4, t0 = 5, t1 = 6, t2 = 7, s0 = 8, s1 = 9,
  a0 = 10, a1 = 11, a2 = 12, a3 = 13, a4 = 14, a5 = 15, a6 = 16, a7 = 17, t3 = 28,
};

constexpr uint32_t r_type(uint32_t f7, uint32_t rs2, uint32_t rs1, uint32_t f3, uint32_t rd,
                          uint32_t op) {
  return (f7 << 25) | (rs2 << 20) | (rs1 << 15) | (f3 << 12) | (rd << 7) | op;
}
constexpr uint32_t i_type(int32_t imm, uint32_t rs1, uint32_t f3, uint32_t rd, uint32_t op) {
  return (static_cast<uint32_t>(imm & 0xfff) << 20) | (rs1 << 15) | (f3 << 12) | (rd << 7) | op;
}
constexpr uint32_t s_type(int32_t imm, uint32_t rs2, uint32_t rs1, uint32_t f3, uint32_t op) {
  const auto i = static_cast<uint32_t>(imm);
  return ((i >> 5 & 0x7f) << 25) | (rs2 << 20) | (rs1 << 15) | (f3 << 12) | ((i & 31) << 7) | op;
}
constexpr uint32_t b_type(int32_t imm, uint32_t rs2, uint32_t rs1, uint32_t f3) {
  const auto i = static_cast<uint32_t>(imm);
  return ((i >> 12 & 1) << 31) | ((i >> 5 & 0x3f) << 25) | (rs2 << 20) | (rs1 << 15) |
         (f3 << 12) | ((i >> 1 & 0xf) << 8) | ((i >> 11 & 1) << 7) | 0x63;
}
constexpr uint32_t j_type(int32_t imm, uint32_t rd) {
  const auto i = static_cast<uint32_t>(imm);
  return ((i >> 20 & 1) << 31) | ((i >> 1 & 0x3ff) << 21) | ((i >> 11 & 1) << 20) |
         ((i >> 12 & 0xff) << 12) | (rd << 7) | 0x6f;
}

constexpr uint32_t ADDI(uint32_t rd, uint32_t rs1, int32_t imm) { return i_type(imm, rs1, 0, rd, 0x13); }
constexpr uint32_t ADD(uint32_t rd, uint32_t rs1, uint32_t rs2) { return r_type(0, rs2, rs1, 0, rd, 0x33); }
constexpr uint32_t SUB(uint32_t rd, uint32_t rs1, uint32_t rs2) { return r_type(0x20, rs2, rs1, 0, rd, 0x33); }
constexpr uint32_t LUI(uint32_t rd, uint32_t imm20) { return (imm20 << 12) | (rd << 7) | 0x37; }
constexpr uint32_t AUIPC(uint32_t rd, uint32_t imm20) { return (imm20 << 12) | (rd << 7) | 0x17; }
constexpr uint32_t SLLI(uint32_t rd, uint32_t rs1, uint32_t sh) { return i_type(static_cast<int32_t>(sh), rs1, 1, rd, 0x13); }
constexpr uint32_t SRAI(uint32_t rd, uint32_t rs1, uint32_t sh) { return i_type(static_cast<int32_t>(sh | 0x400), rs1, 5, rd, 0x13); }
constexpr uint32_t LB(uint32_t rd, uint32_t rs1, int32_t imm) { return i_type(imm, rs1, 0, rd, 0x03); }
constexpr uint32_t LW(uint32_t rd, uint32_t rs1, int32_t imm) { return i_type(imm, rs1, 2, rd, 0x03); }
constexpr uint32_t LD(uint32_t rd, uint32_t rs1, int32_t imm) { return i_type(imm, rs1, 3, rd, 0x03); }
constexpr uint32_t LWU(uint32_t rd, uint32_t rs1, int32_t imm) { return i_type(imm, rs1, 6, rd, 0x03); }
constexpr uint32_t SB(uint32_t rs2, uint32_t rs1, int32_t imm) { return s_type(imm, rs2, rs1, 0, 0x23); }
constexpr uint32_t SW(uint32_t rs2, uint32_t rs1, int32_t imm) { return s_type(imm, rs2, rs1, 2, 0x23); }
constexpr uint32_t SD(uint32_t rs2, uint32_t rs1, int32_t imm) { return s_type(imm, rs2, rs1, 3, 0x23); }
constexpr uint32_t BNE(uint32_t rs1, uint32_t rs2, int32_t off) { return b_type(off, rs2, rs1, 1); }
constexpr uint32_t BEQ(uint32_t rs1, uint32_t rs2, int32_t off) { return b_type(off, rs2, rs1, 0); }
constexpr uint32_t JAL(uint32_t rd, int32_t off) { return j_type(off, rd); }
constexpr uint32_t JALR(uint32_t rd, uint32_t rs1, int32_t imm) { return i_type(imm, rs1, 0, rd, 0x67); }
constexpr uint32_t MUL(uint32_t rd, uint32_t rs1, uint32_t rs2) { return r_type(1, rs2, rs1, 0, rd, 0x33); }
constexpr uint32_t MULH(uint32_t rd, uint32_t rs1, uint32_t rs2) { return r_type(1, rs2, rs1, 1, rd, 0x33); }
constexpr uint32_t DIV(uint32_t rd, uint32_t rs1, uint32_t rs2) { return r_type(1, rs2, rs1, 4, rd, 0x33); }
constexpr uint32_t DIVU(uint32_t rd, uint32_t rs1, uint32_t rs2) { return r_type(1, rs2, rs1, 5, rd, 0x33); }
constexpr uint32_t REM(uint32_t rd, uint32_t rs1, uint32_t rs2) { return r_type(1, rs2, rs1, 6, rd, 0x33); }
constexpr uint32_t DIVW(uint32_t rd, uint32_t rs1, uint32_t rs2) { return r_type(1, rs2, rs1, 4, rd, 0x3b); }
constexpr uint32_t LR_W(uint32_t rd, uint32_t rs1) { return r_type(0x02 << 2, 0, rs1, 2, rd, 0x2f); }
constexpr uint32_t LR_D(uint32_t rd, uint32_t rs1) { return r_type(0x02 << 2, 0, rs1, 3, rd, 0x2f); }
constexpr uint32_t SC_W(uint32_t rd, uint32_t rs2, uint32_t rs1) { return r_type(0x03 << 2, rs2, rs1, 2, rd, 0x2f); }
constexpr uint32_t SC_D(uint32_t rd, uint32_t rs2, uint32_t rs1) { return r_type(0x03 << 2, rs2, rs1, 3, rd, 0x2f); }
constexpr uint32_t AMOADD_W(uint32_t rd, uint32_t rs2, uint32_t rs1) { return r_type(0, rs2, rs1, 2, rd, 0x2f); }
constexpr uint32_t AMOADD_D(uint32_t rd, uint32_t rs2, uint32_t rs1) { return r_type(0, rs2, rs1, 3, rd, 0x2f); }
constexpr uint32_t AMOMAX_W(uint32_t rd, uint32_t rs2, uint32_t rs1) { return r_type(0x14 << 2, rs2, rs1, 2, rd, 0x2f); }
constexpr uint32_t AMOSWAP_D(uint32_t rd, uint32_t rs2, uint32_t rs1) { return r_type(0x01 << 2, rs2, rs1, 3, rd, 0x2f); }
constexpr uint32_t CSRRW(uint32_t rd, uint32_t csr, uint32_t rs1) { return (csr << 20) | (rs1 << 15) | (1 << 12) | (rd << 7) | 0x73; }
constexpr uint32_t CSRRS(uint32_t rd, uint32_t csr, uint32_t rs1) { return (csr << 20) | (rs1 << 15) | (2 << 12) | (rd << 7) | 0x73; }
constexpr uint32_t CSRRWI(uint32_t rd, uint32_t csr, uint32_t imm) { return (csr << 20) | (imm << 15) | (5 << 12) | (rd << 7) | 0x73; }
constexpr uint32_t ECALL = 0x00000073;
constexpr uint32_t EBREAK = 0x00100073;
constexpr uint32_t MRET = 0x30200073;
constexpr uint32_t SRET = 0x10200073;
constexpr uint32_t WFI = 0x10500073;
constexpr uint32_t SFENCE_VMA = 0x12000073;
constexpr uint32_t FENCE_I = 0x0000100f;
// F/D (rm = 7 is DYN).
constexpr uint32_t FLW(uint32_t rd, uint32_t rs1, int32_t imm) { return i_type(imm, rs1, 2, rd, 0x07); }
constexpr uint32_t FLD(uint32_t rd, uint32_t rs1, int32_t imm) { return i_type(imm, rs1, 3, rd, 0x07); }
constexpr uint32_t FSD(uint32_t rs2, uint32_t rs1, int32_t imm) { return s_type(imm, rs2, rs1, 3, 0x27); }
constexpr uint32_t FDIV_S(uint32_t rd, uint32_t rs1, uint32_t rs2, uint32_t rm) { return r_type(0x0c, rs2, rs1, rm, rd, 0x53); }
constexpr uint32_t FADD_S(uint32_t rd, uint32_t rs1, uint32_t rs2, uint32_t rm) { return r_type(0x00, rs2, rs1, rm, rd, 0x53); }
constexpr uint32_t FADD_D(uint32_t rd, uint32_t rs1, uint32_t rs2, uint32_t rm) { return r_type(0x01, rs2, rs1, rm, rd, 0x53); }
constexpr uint32_t FDIV_D(uint32_t rd, uint32_t rs1, uint32_t rs2, uint32_t rm) { return r_type(0x0d, rs2, rs1, rm, rd, 0x53); }
constexpr uint32_t FSGNJN_S(uint32_t rd, uint32_t rs1, uint32_t rs2) { return r_type(0x10, rs2, rs1, 1, rd, 0x53); }
constexpr uint32_t FMV_W_X(uint32_t rd, uint32_t rs1) { return r_type(0x78, 0, rs1, 0, rd, 0x53); }
constexpr uint32_t FMV_X_W(uint32_t rd, uint32_t rs1) { return r_type(0x70, 0, rs1, 0, rd, 0x53); }
constexpr uint32_t FMV_D_X(uint32_t rd, uint32_t rs1) { return r_type(0x79, 0, rs1, 0, rd, 0x53); }
constexpr uint32_t FMV_X_D(uint32_t rd, uint32_t rs1) { return r_type(0x71, 0, rs1, 0, rd, 0x53); }
constexpr uint32_t FCVT_S_W(uint32_t rd, uint32_t rs1, uint32_t rm) { return r_type(0x68, 0, rs1, rm, rd, 0x53); }
constexpr uint32_t FCVT_W_S(uint32_t rd, uint32_t rs1, uint32_t rm) { return r_type(0x60, 0, rs1, rm, rd, 0x53); }
constexpr uint32_t FCVT_D_W(uint32_t rd, uint32_t rs1, uint32_t rm) { return r_type(0x69, 0, rs1, rm, rd, 0x53); }
constexpr uint32_t FEQ_S(uint32_t rd, uint32_t rs1, uint32_t rs2) { return r_type(0x50, rs2, rs1, 2, rd, 0x53); }

// CSR numbers used by tests.
constexpr uint32_t kFflags = 0x001, kFrm = 0x002, kFcsr = 0x003, kSstatus = 0x100, kStvec = 0x105,
                   kSepc = 0x141, kScause = 0x142, kStval = 0x143, kSatp = 0x180,
                   kMstatus = 0x300, kMedeleg = 0x302, kMideleg = 0x303, kMie = 0x304,
                   kMtvec = 0x305, kMepc = 0x341, kMcause = 0x342, kMtval = 0x343, kMip = 0x344,
                   kCycle = 0xc00, kTime = 0xc01, kInstret = 0xc02, kMhartid = 0xf14,
                   kPmpcfg0 = 0x3a0, kPmpaddr0 = 0x3b0;

constexpr uint64_t kRamBase = 0x8000'0000;
constexpr uint64_t kRamSize = 16 * 1024 * 1024;
constexpr uint64_t kMmioBase = 0x1000'0000;

// An MMIO device that records writes and answers reads with a fixed pattern.
class RecordingDevice final : public Device {
 public:
  std::string_view name() const override { return "recorder"; }
  uint64_t read(uint64_t offset, unsigned size) override {
    last_read_offset = offset;
    last_read_size = size;
    return 0x1122334455667788ull & (size == 8 ? ~0ull : ((1ull << (8 * size)) - 1));
  }
  void write(uint64_t offset, unsigned size, uint64_t value) override {
    writes.push_back({offset, size, value});
  }
  struct Write {
    uint64_t offset;
    unsigned size;
    uint64_t value;
  };
  std::vector<Write> writes;
  uint64_t last_read_offset = ~0ull;
  unsigned last_read_size = 0;
};

class HartFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    auto mem = GuestMemory::create({{kRamBase, kRamSize}});
    ASSERT_TRUE(mem.ok()) << mem.error().message();
    memory = mem.release_value();
    ASSERT_TRUE(bus.insert(kMmioBase, 0x1000, device).ok());
    hart = std::make_unique<Hart>(*memory, bus, timebase, 0);
    hart->set_pc(kRamBase);
    // DOPPEL_JIT=on: the same tests with every block translated at once (tests/jit).
    if (const char* jit = std::getenv("DOPPEL_JIT"); jit && std::string_view(jit) == "on") {
      ASSERT_TRUE(hart->enable_jit(4 << 20, 0).ok());
    }
  }

  // Writes a program at addr (default: the reset pc) and drops stale decoded blocks.
  void load(const std::vector<uint32_t>& words, uint64_t addr = kRamBase) {
    for (size_t i = 0; i < words.size(); ++i)
      ASSERT_TRUE(memory->write_le<uint32_t>(addr + 4 * i, words[i]));
    hart->flush_decode_cache();
  }
  uint64_t csr(uint32_t n) { return hart->read_csr(static_cast<uint16_t>(n)).value_or(~0ull); }
  uint64_t mem64(uint64_t gpa) { return memory->read_le<uint64_t>(gpa).value_or(~0ull); }

  std::unique_ptr<GuestMemory> memory;
  Bus bus{"mmio"};
  RecordingDevice device;
  Timebase timebase;
  std::unique_ptr<Hart> hart;
};

// Loads a 64-bit constant with lui/addi/slli sequences is overkill for tests: li for small
// values, and a0-relative data for the rest.
inline std::vector<uint32_t> li32(uint32_t rd, int32_t value) {
  const auto v = static_cast<uint32_t>(value);
  const uint32_t lo = v & 0xfff;
  uint32_t hi = v >> 12;
  if (lo & 0x800) hi = (hi + 1) & 0xfffff;
  return {LUI(rd, hi), i_type(static_cast<int32_t>(lo), rd, 0, rd, 0x1b)};  // lui + addiw
}

}  // namespace doppel::rv64::testasm
