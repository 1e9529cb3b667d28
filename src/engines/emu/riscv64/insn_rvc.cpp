// The C extension (unprivileged spec chapter 16, RV64C): each 16-bit form is declared once
// here as mask/match and its expansion to the 32-bit instruction it stands for; execution
// and disassembly then use the 32-bit tables.
#include <cstdint>

#include "engines/emu/riscv64/decode.h"

namespace doppel::rv64 {
namespace {

using u32 = uint32_t;

u32 b(u32 c, unsigned hi, unsigned lo) { return (c >> lo) & ((1u << (hi - lo + 1)) - 1); }
u32 rp(u32 c, unsigned lo) { return 8 + b(c, lo + 2, lo); }  // x8..x15 from a 3-bit field
int32_t sext(u32 v, unsigned width) {
  return static_cast<int32_t>(v << (32 - width)) >> (32 - width);
}

// 32-bit encoders.
u32 enc_i(u32 op, u32 rd, u32 f3, u32 rs1, int32_t imm) {
  return (static_cast<u32>(imm) << 20) | (rs1 << 15) | (f3 << 12) | (rd << 7) | op;
}
u32 enc_r(u32 op, u32 rd, u32 f3, u32 rs1, u32 rs2, u32 f7) {
  return (f7 << 25) | (rs2 << 20) | (rs1 << 15) | (f3 << 12) | (rd << 7) | op;
}
u32 enc_s(u32 op, u32 f3, u32 rs1, u32 rs2, int32_t imm) {
  const u32 i = static_cast<u32>(imm);
  return ((i >> 5 & 0x7f) << 25) | (rs2 << 20) | (rs1 << 15) | (f3 << 12) | ((i & 31) << 7) | op;
}
u32 enc_b(u32 f3, u32 rs1, u32 rs2, int32_t imm) {
  const u32 i = static_cast<u32>(imm);
  return ((i >> 12 & 1) << 31) | ((i >> 5 & 0x3f) << 25) | (rs2 << 20) | (rs1 << 15) |
         (f3 << 12) | ((i >> 1 & 0xf) << 8) | ((i >> 11 & 1) << 7) | 0x63;
}
u32 enc_j(u32 rd, int32_t imm) {
  const u32 i = static_cast<u32>(imm);
  return ((i >> 20 & 1) << 31) | ((i >> 1 & 0x3ff) << 21) | ((i >> 11 & 1) << 20) |
         ((i >> 12 & 0xff) << 12) | (rd << 7) | 0x6f;
}

// Immediates of the load/store forms.
u32 imm_lw(u32 c) { return (b(c, 12, 10) << 3) | (b(c, 6, 6) << 2) | (b(c, 5, 5) << 6); }
u32 imm_ld(u32 c) { return (b(c, 12, 10) << 3) | (b(c, 6, 5) << 6); }
u32 imm_lwsp(u32 c) { return (b(c, 12, 12) << 5) | (b(c, 6, 4) << 2) | (b(c, 3, 2) << 6); }
u32 imm_ldsp(u32 c) { return (b(c, 12, 12) << 5) | (b(c, 6, 5) << 3) | (b(c, 4, 2) << 6); }
u32 imm_swsp(u32 c) { return (b(c, 12, 9) << 2) | (b(c, 8, 7) << 6); }
u32 imm_sdsp(u32 c) { return (b(c, 12, 10) << 3) | (b(c, 9, 7) << 6); }
int32_t imm6(u32 c) { return sext((b(c, 12, 12) << 5) | b(c, 6, 2), 6); }
u32 shamt(u32 c) { return (b(c, 12, 12) << 5) | b(c, 6, 2); }
int32_t imm_cj(u32 c) {
  const u32 i = (b(c, 12, 12) << 11) | (b(c, 11, 11) << 4) | (b(c, 10, 9) << 8) |
                (b(c, 8, 8) << 10) | (b(c, 7, 7) << 6) | (b(c, 6, 6) << 7) | (b(c, 5, 3) << 1) |
                (b(c, 2, 2) << 5);
  return sext(i, 12);
}
int32_t imm_cb(u32 c) {
  const u32 i = (b(c, 12, 12) << 8) | (b(c, 11, 10) << 3) | (b(c, 6, 5) << 6) |
                (b(c, 4, 3) << 1) | (b(c, 2, 2) << 5);
  return sext(i, 9);
}
int32_t s(u32 v) { return static_cast<int32_t>(v); }

struct CSpec {
  uint16_t mask;
  uint16_t match;
  const char* name;
  u32 (*expand)(u32 c);  // 0 = reserved encoding
};

const CSpec kSpecs[] = {
    // Quadrant 0.
    {0xe003, 0x0000, "c.addi4spn", [](u32 c) -> u32 {
       const u32 imm = (b(c, 12, 11) << 4) | (b(c, 10, 7) << 6) | (b(c, 6, 6) << 2) |
                       (b(c, 5, 5) << 3);
       return imm == 0 ? 0 : enc_i(0x13, rp(c, 2), 0, 2, s(imm));
     }},
    {0xe003, 0x2000, "c.fld", [](u32 c) { return enc_i(0x07, rp(c, 2), 3, rp(c, 7), s(imm_ld(c))); }},
    {0xe003, 0x4000, "c.lw", [](u32 c) { return enc_i(0x03, rp(c, 2), 2, rp(c, 7), s(imm_lw(c))); }},
    {0xe003, 0x6000, "c.ld", [](u32 c) { return enc_i(0x03, rp(c, 2), 3, rp(c, 7), s(imm_ld(c))); }},
    {0xe003, 0xa000, "c.fsd", [](u32 c) { return enc_s(0x27, 3, rp(c, 7), rp(c, 2), s(imm_ld(c))); }},
    {0xe003, 0xc000, "c.sw", [](u32 c) { return enc_s(0x23, 2, rp(c, 7), rp(c, 2), s(imm_lw(c))); }},
    {0xe003, 0xe000, "c.sd", [](u32 c) { return enc_s(0x23, 3, rp(c, 7), rp(c, 2), s(imm_ld(c))); }},
    // Quadrant 1.
    {0xe003, 0x0001, "c.addi", [](u32 c) { return enc_i(0x13, b(c, 11, 7), 0, b(c, 11, 7), imm6(c)); }},
    {0xe003, 0x2001, "c.addiw", [](u32 c) -> u32 {
       return b(c, 11, 7) == 0 ? 0 : enc_i(0x1b, b(c, 11, 7), 0, b(c, 11, 7), imm6(c));
     }},
    {0xe003, 0x4001, "c.li", [](u32 c) { return enc_i(0x13, b(c, 11, 7), 0, 0, imm6(c)); }},
    {0xef83, 0x6101, "c.addi16sp", [](u32 c) -> u32 {
       const u32 i = (b(c, 12, 12) << 9) | (b(c, 6, 6) << 4) | (b(c, 5, 5) << 6) |
                     (b(c, 4, 3) << 7) | (b(c, 2, 2) << 5);
       return i == 0 ? 0 : enc_i(0x13, 2, 0, 2, sext(i, 10));
     }},
    {0xe003, 0x6001, "c.lui", [](u32 c) -> u32 {
       const int32_t imm = imm6(c);
       if (imm == 0) return 0;
       return (static_cast<u32>(imm) << 12) | (b(c, 11, 7) << 7) | 0x37;
     }},
    {0xec03, 0x8001, "c.srli", [](u32 c) { return enc_i(0x13, rp(c, 7), 5, rp(c, 7), s(shamt(c))); }},
    {0xec03, 0x8401, "c.srai", [](u32 c) { return enc_i(0x13, rp(c, 7), 5, rp(c, 7), s(shamt(c) | 0x400)); }},
    {0xec03, 0x8801, "c.andi", [](u32 c) { return enc_i(0x13, rp(c, 7), 7, rp(c, 7), imm6(c)); }},
    {0xfc63, 0x8c01, "c.sub", [](u32 c) { return enc_r(0x33, rp(c, 7), 0, rp(c, 7), rp(c, 2), 0x20); }},
    {0xfc63, 0x8c21, "c.xor", [](u32 c) { return enc_r(0x33, rp(c, 7), 4, rp(c, 7), rp(c, 2), 0); }},
    {0xfc63, 0x8c41, "c.or", [](u32 c) { return enc_r(0x33, rp(c, 7), 6, rp(c, 7), rp(c, 2), 0); }},
    {0xfc63, 0x8c61, "c.and", [](u32 c) { return enc_r(0x33, rp(c, 7), 7, rp(c, 7), rp(c, 2), 0); }},
    {0xfc63, 0x9c01, "c.subw", [](u32 c) { return enc_r(0x3b, rp(c, 7), 0, rp(c, 7), rp(c, 2), 0x20); }},
    {0xfc63, 0x9c21, "c.addw", [](u32 c) { return enc_r(0x3b, rp(c, 7), 0, rp(c, 7), rp(c, 2), 0); }},
    {0xe003, 0xa001, "c.j", [](u32 c) { return enc_j(0, imm_cj(c)); }},
    {0xe003, 0xc001, "c.beqz", [](u32 c) { return enc_b(0, rp(c, 7), 0, imm_cb(c)); }},
    {0xe003, 0xe001, "c.bnez", [](u32 c) { return enc_b(1, rp(c, 7), 0, imm_cb(c)); }},
    // Quadrant 2.
    {0xe003, 0x0002, "c.slli", [](u32 c) { return enc_i(0x13, b(c, 11, 7), 1, b(c, 11, 7), s(shamt(c))); }},
    {0xe003, 0x2002, "c.fldsp", [](u32 c) { return enc_i(0x07, b(c, 11, 7), 3, 2, s(imm_ldsp(c))); }},
    {0xe003, 0x4002, "c.lwsp", [](u32 c) -> u32 {
       return b(c, 11, 7) == 0 ? 0 : enc_i(0x03, b(c, 11, 7), 2, 2, s(imm_lwsp(c)));
     }},
    {0xe003, 0x6002, "c.ldsp", [](u32 c) -> u32 {
       return b(c, 11, 7) == 0 ? 0 : enc_i(0x03, b(c, 11, 7), 3, 2, s(imm_ldsp(c)));
     }},
    {0xf07f, 0x8002, "c.jr", [](u32 c) -> u32 {
       return b(c, 11, 7) == 0 ? 0 : enc_i(0x67, 0, 0, b(c, 11, 7), 0);
     }},
    {0xf003, 0x8002, "c.mv", [](u32 c) { return enc_r(0x33, b(c, 11, 7), 0, 0, b(c, 6, 2), 0); }},
    {0xffff, 0x9002, "c.ebreak", [](u32) -> u32 { return 0x00100073; }},
    {0xf07f, 0x9002, "c.jalr", [](u32 c) { return enc_i(0x67, 1, 0, b(c, 11, 7), 0); }},
    {0xf003, 0x9002, "c.add", [](u32 c) { return enc_r(0x33, b(c, 11, 7), 0, b(c, 11, 7), b(c, 6, 2), 0); }},
    {0xe003, 0xa002, "c.fsdsp", [](u32 c) { return enc_s(0x27, 3, 2, b(c, 6, 2), s(imm_sdsp(c))); }},
    {0xe003, 0xc002, "c.swsp", [](u32 c) { return enc_s(0x23, 2, 2, b(c, 6, 2), s(imm_swsp(c))); }},
    {0xe003, 0xe002, "c.sdsp", [](u32 c) { return enc_s(0x23, 3, 2, b(c, 6, 2), s(imm_sdsp(c))); }},
};

}  // namespace

uint32_t expand_compressed(uint16_t c) {
  // The table is ordered so that the first match is the most specific form.
  for (const CSpec& spec : kSpecs)
    if ((c & spec.mask) == spec.match) return spec.expand(c);
  return 0;
}

}  // namespace doppel::rv64
