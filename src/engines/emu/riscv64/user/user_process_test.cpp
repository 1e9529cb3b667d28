#include "engines/emu/riscv64/user/user_process.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <csignal>

#include "engines/emu/riscv64/user/elf_test_util.h"

namespace doppel::rv64::user {
namespace {

using namespace testing;  // NOLINT: the encoders

constexpr unsigned kSp = 2, kA0 = 10, kA1 = 11, kA2 = 12, kA7 = 17;

std::vector<uint8_t> program(const std::vector<uint32_t>& insns, const std::string& tail = "") {
  std::vector<uint8_t> code;
  for (uint32_t i : insns) append_insn(code, i);
  code.insert(code.end(), tail.begin(), tail.end());
  return build_elf(0x10000, {TestSegment{kPtLoad, kPfR | kPfX, 0x10000, code, 0}});
}

Result<UserExit> run(const std::vector<uint8_t>& elf, UserProcessConfig config = {},
                     uint64_t* instret = nullptr) {
  if (config.path.empty()) config.path = "test-prog";
  auto p = TRY(UserProcess::create_from_image(elf, config));
  auto r = p->run();
  if (instret) *instret = p->instret();
  return r;
}

TEST(UserProcess, RunsAProgramThatWritesAndExits) {
  // write(1, msg, 3); exit_group(42); msg: "hi\n"
  const auto elf = program({enc_auipc(kA1, 0), enc_addi(kA1, kA1, 36), enc_addi(kA0, 0, 1),
                            enc_addi(kA2, 0, 3), enc_addi(kA7, 0, 64), kEcall, enc_addi(kA0, 0, 42),
                            enc_addi(kA7, 0, 94), kEcall},
                           "hi\n");
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  UserProcessConfig c;
  c.stdout_fd = fds[1];
  uint64_t instret = 0;
  auto r = run(elf, c, &instret);
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(r->kind, UserExit::Kind::kExited);
  EXPECT_EQ(r->status, 42);
  EXPECT_EQ(r->shell_status(), 42);
  char buf[4] = {};
  EXPECT_EQ(read(fds[0], buf, 3), 3);
  EXPECT_STREQ(buf, "hi\n");
  EXPECT_EQ(instret, 7u);  // nine instructions; the two ECALLs trap, so they do not retire
  close(fds[0]);
  close(fds[1]);
}

TEST(UserProcess, PassesArgcOnTheStack) {
  // exit(argc): ld a0, 0(sp)
  const auto elf = program({enc_ld(kA0, kSp, 0), enc_addi(kA7, 0, 93), kEcall});
  UserProcessConfig c;
  c.path = "prog";
  c.argv = {"prog", "a", "b", "c"};
  auto r = run(elf, c);
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(r->status, 4);
}

TEST(UserProcess, ALoadFromPageZeroIsSigsegvNotAHostCrash) {
  const auto elf = program({enc_ld(kA0, 0, 16)});
  auto r = run(elf);
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(r->kind, UserExit::Kind::kSignaled);
  EXPECT_EQ(r->status, SIGSEGV);
  EXPECT_EQ(r->shell_status(), 128 + SIGSEGV);
  EXPECT_EQ(r->trap.pc, 0x10000u);
  EXPECT_NE(r->detail.find("load access fault"), std::string::npos) << r->detail;
}

TEST(UserProcess, AnIllegalInstructionIsSigill) {
  const auto elf = program({enc_addi(kA0, 0, 1), 0xffffffffu});
  auto r = run(elf);
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(r->kind, UserExit::Kind::kSignaled);
  EXPECT_EQ(r->status, SIGILL);
  EXPECT_EQ(r->trap.pc, 0x10004u);
}

TEST(UserProcess, RunningOffTheImageFaults) {
  // Straight-line code with nothing after it: the fetch past the segment's page faults
  // (the segment's page is zero-filled, and 0x0000 is an illegal instruction).
  const auto elf = program({enc_addi(kA0, 0, 1)});
  auto r = run(elf);
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(r->kind, UserExit::Kind::kSignaled);
}

TEST(UserProcess, StopsAtTheInstructionLimit) {
  // An endless loop: jal x0, 0.
  const auto elf = program({0x0000006fu});
  UserProcessConfig c;
  c.max_instructions = 1000;
  uint64_t instret = 0;
  auto r = run(elf, c, &instret);
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(r->kind, UserExit::Kind::kInstructionLimit);
  EXPECT_GE(instret, 1000u);
}

TEST(UserProcess, RefusesImpossibleLayouts) {
  const auto elf = program({kEcall});
  UserProcessConfig c;
  c.path = "p";
  c.stack_size = 100;
  auto r = UserProcess::create_from_image(elf, c);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("stack size"), std::string::npos);
  c.stack_size = 8 * MiB;
  c.heap_size = kUserStackTop;  // runs into the stack
  r = UserProcess::create_from_image(elf, c);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("run into the mmap area"), std::string::npos);
}

TEST(UserProcess, AMissingFileIsAClearError) {
  UserProcessConfig c;
  c.path = "/nonexistent/prog";
  auto r = UserProcess::create(c);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("/nonexistent/prog"), std::string::npos);
}

}  // namespace
}  // namespace doppel::rv64::user
