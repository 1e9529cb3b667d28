#include "engines/kvm/x86_debug_regs.h"

#include <gtest/gtest.h>

namespace doppel::kvm {
namespace {

uint64_t read_le(const std::vector<uint8_t>& bytes, size_t at, unsigned n) {
  uint64_t v = 0;
  for (unsigned i = 0; i < n; ++i) v |= static_cast<uint64_t>(bytes.at(at + i)) << (8 * i);
  return v;
}

// Byte offset of register `index` in the 'g' packet.
size_t offset_of(unsigned index) {
  size_t at = 0;
  for (unsigned i = 0; i < index; ++i) at += x86_64_debug_arch().registers[i].bits / 8;
  return at;
}

// gdb's amd64 numbering (amd64-tdep.h: AMD64_RIP_REGNUM 16, AMD64_EFLAGS_REGNUM 17,
// AMD64_CS_REGNUM 18, AMD64_ST0_REGNUM 24, AMD64_FCTRL_REGNUM 32) and the features gdb
// looks registers up in.
TEST(X86DebugRegs, LayoutIsGdbsAmd64) {
  const DebugArch& a = x86_64_debug_arch();
  EXPECT_EQ(a.gdb_arch, "i386:x86-64");
  EXPECT_EQ(a.sw_break, std::vector<uint8_t>{0xcc});
  ASSERT_EQ(a.registers.size(), kX86RegCount);
  const std::pair<unsigned, std::string_view> names[] = {
      {0, "rax"},     {1, "rbx"},     {2, "rcx"},   {3, "rdx"},     {4, "rsi"},  {5, "rdi"},
      {6, "rbp"},     {7, "rsp"},     {8, "r8"},    {15, "r15"},    {16, "rip"}, {17, "eflags"},
      {18, "cs"},     {19, "ss"},     {20, "ds"},   {21, "es"},     {22, "fs"},  {23, "gs"},
      {24, "st0"},    {31, "st7"},    {32, "fctrl"}, {39, "fop"},   {40, "fs_base"},
      {41, "gs_base"}, {42, "cr0"},   {43, "cr2"},  {44, "cr3"},    {45, "cr4"}, {46, "cr8"},
      {47, "efer"}};
  for (const auto& [i, name] : names) EXPECT_EQ(a.registers[i].name, name) << i;
  for (unsigned i = 0; i < kX86FsBase; ++i)
    EXPECT_EQ(a.registers[i].feature, "org.gnu.gdb.i386.core") << i;
  EXPECT_EQ(a.registers[kX86FsBase].feature, "org.gnu.gdb.i386.segments");
  EXPECT_EQ(a.registers[kX86GsBase].feature, "org.gnu.gdb.i386.segments");
  EXPECT_EQ(a.registers[kX86Rip].type, "code_ptr");
  EXPECT_EQ(a.registers[kX86Eflags].bits, 32u);
  EXPECT_EQ(a.registers[kX86St0].bits, 80u);
  EXPECT_EQ(a.registers[kX86St0].type, "i387_ext");
  EXPECT_EQ(offset_of(kX86Rip), 128u);
  EXPECT_EQ(offset_of(kX86Cs), 140u);
  EXPECT_EQ(offset_of(kX86St0), 164u);
  EXPECT_EQ(offset_of(kX86Fctrl), 244u);
  EXPECT_EQ(offset_of(kX86FsBase), 276u);
  EXPECT_EQ(offset_of(kX86RegCount), 340u);
}

TEST(X86DebugRegs, EncodesKvmStateWhereGdbReadsIt) {
  kvm_regs r{};
  kvm_sregs s{};
  kvm_fpu f{};
  r.rax = 0x1122334455667788;
  r.rsp = 0xffffc90000013f00;
  r.r15 = 0xf15;
  r.rip = 0xffffffff81e8ebca;
  r.rflags = 0x246;
  s.cs.selector = 0x10;
  s.gs.selector = 0x18;
  s.fs.base = 0x7f0000001000;
  s.gs.base = 0xffff888007a00000;
  s.cr0 = 0x80050033;
  s.cr3 = 0x2c0c000;
  s.cr4 = 0x3406f0;
  s.efer = 0xd01;
  f.fcw = 0x37f;
  f.ftwx = 0x01;  // st0 valid, the rest empty
  f.fpr[0][9] = 0x3f;
  const auto g = x86_64_encode_registers(r, s, f);
  ASSERT_EQ(g.size(), 340u);
  EXPECT_EQ(read_le(g, offset_of(kX86Rax), 8), 0x1122334455667788u);
  EXPECT_EQ(read_le(g, offset_of(7), 8), 0xffffc90000013f00u);  // rsp
  EXPECT_EQ(read_le(g, offset_of(15), 8), 0xf15u);
  EXPECT_EQ(read_le(g, offset_of(kX86Rip), 8), 0xffffffff81e8ebcau);
  EXPECT_EQ(read_le(g, offset_of(kX86Eflags), 4), 0x246u);
  EXPECT_EQ(read_le(g, offset_of(kX86Cs), 4), 0x10u);
  EXPECT_EQ(read_le(g, offset_of(kX86Cs + 5), 4), 0x18u);  // gs
  EXPECT_EQ(g.at(offset_of(kX86St0) + 9), 0x3f);
  EXPECT_EQ(read_le(g, offset_of(kX86Fctrl), 4), 0x37fu);
  EXPECT_EQ(read_le(g, offset_of(kX86Fctrl + 2), 4), 0xfffcu);  // ftag: st0 valid
  EXPECT_EQ(read_le(g, offset_of(kX86FsBase), 8), 0x7f0000001000u);
  EXPECT_EQ(read_le(g, offset_of(kX86GsBase), 8), 0xffff888007a00000u);
  EXPECT_EQ(read_le(g, offset_of(kX86Cr0), 8), 0x80050033u);
  EXPECT_EQ(read_le(g, offset_of(kX86Cr0 + 2), 8), 0x2c0c000u);  // cr3
  EXPECT_EQ(read_le(g, offset_of(kX86Cr0 + 3), 8), 0x3406f0u);   // cr4
  EXPECT_EQ(read_le(g, offset_of(kX86Efer), 8), 0xd01u);
}

TEST(X86DebugRegs, WritesGeneralRegistersAndRefusesChangingTheRest) {
  kvm_regs r{};
  kvm_sregs s{};
  kvm_fpu f{};
  r.rflags = 0x2;
  s.cr3 = 0x1000;
  const uint8_t rip[8] = {0x00, 0x05, 0x00, 0x01, 0, 0, 0, 0};
  ASSERT_TRUE(x86_64_apply_register(kX86Rip, rip, r, s, f).ok());
  EXPECT_EQ(r.rip, 0x1000500u);
  const uint8_t rbx[8] = {0x34, 0x12, 0, 0, 0, 0, 0, 0};
  ASSERT_TRUE(x86_64_apply_register(1, rbx, r, s, f).ok());
  EXPECT_EQ(r.rbx, 0x1234u);
  const uint8_t eflags[4] = {0x02, 0x01, 0, 0};  // TF
  ASSERT_TRUE(x86_64_apply_register(kX86Eflags, eflags, r, s, f).ok());
  EXPECT_EQ(r.rflags, 0x102u);
  // gdb's G sends every register: an unchanged cr3 is fine, a new one is refused.
  const uint8_t same_cr3[8] = {0x00, 0x10, 0, 0, 0, 0, 0, 0};
  EXPECT_TRUE(x86_64_apply_register(kX86Cr0 + 2, same_cr3, r, s, f).ok());
  const uint8_t new_cr3[8] = {0x00, 0x20, 0, 0, 0, 0, 0, 0};
  auto refused = x86_64_apply_register(kX86Cr0 + 2, new_cr3, r, s, f);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.error().message().find("cr3"), std::string::npos);
  EXPECT_FALSE(x86_64_apply_register(kX86Rip, std::span(rip, 4), r, s, f).ok());  // size
  EXPECT_FALSE(x86_64_apply_register(kX86RegCount, rip, r, s, f).ok());
}

// Intel SDM vol. 3, 18.2.4: DR7 has L/G enable bits per slot (bits 0-7) and, from bit 16,
// four bits per slot: R/W (00 execute, 01 write, 11 read or write) and LEN (00 1 byte, 01 2,
// 11 4, 10 8).
TEST(X86DebugRegs, DebugRegistersForBreakpointsAndWatchpoints) {
  auto plan = x86_plan_debug_registers(
      {0xffffffff81e8ebca},
      {{0xffff888000001000, 8, WatchKind::kWrite}, {0x2000, 4, WatchKind::kAccess},
       {0x3001, 1, WatchKind::kWrite}});
  ASSERT_TRUE(plan.ok()) << plan.error().message();
  EXPECT_EQ(plan->dr[0], 0xffffffff81e8ebcau);
  EXPECT_EQ(plan->dr[1], 0xffff888000001000u);
  EXPECT_EQ(plan->dr[2], 0x2000u);
  EXPECT_EQ(plan->dr[3], 0x3001u);
  const uint64_t expected = 0x600 | 0x2 | 0x8 | 0x20 | 0x80 |  // G0-G3
                            (0x0ull << 16) |                   // DR0: execute, 1 byte
                            (0x9ull << 20) |                   // DR1: write, 8 bytes (10 01)
                            (0xfull << 24) |                   // DR2: access, 4 bytes (11 11)
                            (0x1ull << 28);                    // DR3: write, 1 byte
  EXPECT_EQ(plan->dr7, expected);
  ASSERT_EQ(plan->slots.size(), 4u);
  EXPECT_FALSE(plan->slots[0].watch);
  EXPECT_TRUE(plan->slots[2].watch);
  EXPECT_EQ(plan->slots[2].kind, WatchKind::kAccess);

  EXPECT_FALSE(x86_plan_debug_registers({1, 2, 3}, {{0x10, 1, WatchKind::kWrite},
                                                    {0x20, 1, WatchKind::kWrite}}).ok());
  EXPECT_FALSE(x86_plan_debug_registers({}, {{0x10, 4, WatchKind::kRead}}).ok());
  EXPECT_FALSE(x86_plan_debug_registers({}, {{0x10, 3, WatchKind::kWrite}}).ok());
  EXPECT_FALSE(x86_plan_debug_registers({}, {{0x12, 4, WatchKind::kWrite}}).ok());
  auto none = x86_plan_debug_registers({}, {});
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->slots.empty());
}

}  // namespace
}  // namespace doppel::kvm
