#include "engines/emu/riscv64/user/initial_stack.h"

#include <gtest/gtest.h>

#include <map>

namespace doppel::rv64::user {
namespace {

constexpr uint64_t kBottom = 0x7000000;
constexpr uint64_t kTop = 0x7010000;

std::string read_string(const GuestMemory& mem, uint64_t addr) {
  std::string s;
  for (;;) {
    auto c = mem.read_le<uint8_t>(addr++);
    if (!c || *c == 0) return s;
    s.push_back(static_cast<char>(*c));
  }
}

TEST(InitialStack, LaysOutArgvEnvpAndAuxvAsLinuxDoes) {
  auto mem = GuestMemory::create({{kBottom, kTop - kBottom}});
  ASSERT_TRUE(mem.ok());
  ElfImage image;
  image.entry = 0x10078;
  image.phdr_vaddr = 0x10040;
  image.phnum = 3;
  image.phentsize = 56;
  StackSpec spec;
  spec.argv = {"/bin/prog", "-x", ""};
  spec.envp = {"HOME=/", "A=b"};
  spec.execfn = "/bin/prog";
  for (size_t i = 0; i < 16; ++i) spec.random[i] = static_cast<uint8_t>(0xa0 + i);

  auto sp_or = build_initial_stack(**mem, kBottom, kTop, image, spec);
  ASSERT_TRUE(sp_or.ok()) << sp_or.error().message();
  const uint64_t sp = *sp_or;
  EXPECT_EQ(sp % 16, 0u);  // psABI: sp is 16-byte aligned at process entry
  const GuestMemory& m = **mem;
  auto word = [&](uint64_t i) { return m.read_le<uint64_t>(sp + 8 * i).value(); };

  ASSERT_EQ(word(0), 3u);  // argc
  EXPECT_EQ(read_string(m, word(1)), "/bin/prog");
  EXPECT_EQ(read_string(m, word(2)), "-x");
  EXPECT_EQ(read_string(m, word(3)), "");
  EXPECT_EQ(word(4), 0u);
  EXPECT_EQ(read_string(m, word(5)), "HOME=/");
  EXPECT_EQ(read_string(m, word(6)), "A=b");
  EXPECT_EQ(word(7), 0u);

  std::map<uint64_t, uint64_t> aux;
  for (uint64_t i = 8;; i += 2) {
    aux[word(i)] = word(i + 1);
    if (word(i) == kAtNull) break;
    ASSERT_LT(i, 100u) << "auxv has no AT_NULL";
  }
  EXPECT_EQ(aux[kAtPagesz], 4096u);
  EXPECT_EQ(aux[kAtEntry], 0x10078u);
  EXPECT_EQ(aux[kAtPhdr], 0x10040u);
  EXPECT_EQ(aux[kAtPhnum], 3u);
  EXPECT_EQ(aux[kAtPhent], 56u);
  EXPECT_EQ(aux[kAtHwcap], kHwcapRv64imafdc);
  EXPECT_EQ(read_string(m, aux[kAtExecfn]), "/bin/prog");
  EXPECT_EQ(read_string(m, aux[kAtPlatform]), "riscv64");
  ASSERT_TRUE(aux.count(kAtRandom));
  for (uint64_t i = 0; i < 16; ++i)
    EXPECT_EQ(m.read_le<uint8_t>(aux[kAtRandom] + i).value(), 0xa0 + i);
  // Everything lies inside the stack range.
  EXPECT_GE(sp, kBottom);
  EXPECT_LT(aux[kAtRandom] + 16, kTop + 1);
}

TEST(InitialStack, FailsCleanlyWhenArgumentsDoNotFit) {
  auto mem = GuestMemory::create({{kBottom, 0x1000}});
  ASSERT_TRUE(mem.ok());
  StackSpec spec;
  spec.argv = {std::string(5000, 'a')};
  auto r = build_initial_stack(**mem, kBottom, kBottom + 0x1000, ElfImage{}, spec);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("do not fit"), std::string::npos);

  // Many small arguments: the pointer vectors no longer fit.
  spec.argv.assign(400, "x");
  r = build_initial_stack(**mem, kBottom, kBottom + 0x1000, ElfImage{}, spec);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("do not fit"), std::string::npos);
}

}  // namespace
}  // namespace doppel::rv64::user
