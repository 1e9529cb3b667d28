#include "engines/emu/riscv64/user/linux_syscalls.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace doppel::rv64::user {
namespace {

constexpr uint64_t kBase = 0x10000;
constexpr uint64_t kSize = 0x10000;

uint64_t neg(int e) { return static_cast<uint64_t>(-static_cast<int64_t>(e)); }

class LinuxSyscallsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto mem = GuestMemory::create({{kBase, kSize}});
    ASSERT_TRUE(mem.ok());
    m_mem = std::move(*mem);
    ASSERT_EQ(pipe(m_pipe), 0);
    LinuxSyscalls::Config c;
    c.stdout_fd = m_pipe[1];
    c.stderr_fd = m_pipe[1];
    c.brk_start = kBase + 0x4000;
    c.brk_limit = kBase + 0x8000;
    c.mmap_base = kBase + 0x8000;
    c.mmap_limit = kBase + 0x10000;
    c.stack_size = 0x800000;
    c.execfn = "/bin/prog";
    m_sys = std::make_unique<LinuxSyscalls>(*m_mem, c);
  }
  void TearDown() override {
    close(m_pipe[0]);
    close(m_pipe[1]);
  }
  uint64_t call(Sysno nr, uint64_t a0 = 0, uint64_t a1 = 0, uint64_t a2 = 0, uint64_t a3 = 0,
                uint64_t a4 = 0) {
    auto o = m_sys->handle(static_cast<uint64_t>(nr), {a0, a1, a2, a3, a4, 0});
    EXPECT_FALSE(o.exited);
    return o.ret;
  }
  std::string drain(size_t n) {
    std::string s(n, '\0');
    EXPECT_EQ(read(m_pipe[0], s.data(), n), static_cast<ssize_t>(n));
    return s;
  }
  void put(uint64_t gpa, const std::string& s) {
    ASSERT_TRUE(m_mem->write(gpa, {reinterpret_cast<const uint8_t*>(s.data()), s.size()}));
  }

  std::unique_ptr<GuestMemory> m_mem;
  std::unique_ptr<LinuxSyscalls> m_sys;
  int m_pipe[2] = {-1, -1};
};

TEST_F(LinuxSyscallsTest, WriteCopiesGuestBytesToTheHostFd) {
  put(kBase + 0x100, "hello\n");
  EXPECT_EQ(call(Sysno::kWrite, 1, kBase + 0x100, 6), 6u);
  EXPECT_EQ(drain(6), "hello\n");
  EXPECT_EQ(call(Sysno::kWrite, 2, kBase + 0x100, 5), 5u);
  EXPECT_EQ(drain(5), "hello");
}

TEST_F(LinuxSyscallsTest, BadPointersAndFdsAreGuestErrorsNotCrashes) {
  EXPECT_EQ(call(Sysno::kWrite, 1, 0, 4), neg(EFAULT));                    // null
  EXPECT_EQ(call(Sysno::kWrite, 1, kBase + kSize - 2, 4), neg(EFAULT));    // runs off the end
  EXPECT_EQ(call(Sysno::kWrite, 1, kBase, ~0ull), neg(EFAULT));            // huge length
  EXPECT_EQ(call(Sysno::kWrite, 1, ~0ull - 1, 4), neg(EFAULT));            // wraps
  EXPECT_EQ(call(Sysno::kWrite, 7, kBase, 4), neg(EBADF));
  EXPECT_EQ(call(Sysno::kRead, 1, kBase, 4), neg(EBADF));
  EXPECT_EQ(call(Sysno::kWritev, 1, 0, 1), neg(EFAULT));
  EXPECT_EQ(call(Sysno::kWritev, 1, kBase, 100000), neg(EINVAL));
  EXPECT_EQ(call(Sysno::kUname, 0x5), neg(EFAULT));
}

TEST_F(LinuxSyscallsTest, WritevGathersEveryBuffer) {
  put(kBase + 0x200, "ab");
  put(kBase + 0x300, "cde");
  const uint64_t iov = kBase + 0x400;
  ASSERT_TRUE(m_mem->write_le<uint64_t>(iov, kBase + 0x200));
  ASSERT_TRUE(m_mem->write_le<uint64_t>(iov + 8, 2));
  ASSERT_TRUE(m_mem->write_le<uint64_t>(iov + 16, kBase + 0x300));
  ASSERT_TRUE(m_mem->write_le<uint64_t>(iov + 24, 3));
  EXPECT_EQ(call(Sysno::kWritev, 1, iov, 2), 5u);
  EXPECT_EQ(drain(5), "abcde");
}

TEST_F(LinuxSyscallsTest, BrkGrowsWithinTheHeapAndReadsZeroAfterShrinking) {
  const uint64_t start = kBase + 0x4000;
  EXPECT_EQ(call(Sysno::kBrk, 0), start);
  EXPECT_EQ(call(Sysno::kBrk, start + 0x1000), start + 0x1000);
  ASSERT_TRUE(m_mem->write_le<uint64_t>(start + 0x800, 0x1234));
  EXPECT_EQ(call(Sysno::kBrk, kBase + 0x9000), start + 0x1000);  // past the limit: unchanged
  EXPECT_EQ(call(Sysno::kBrk, kBase), start + 0x1000);           // below the start: unchanged
  EXPECT_EQ(call(Sysno::kBrk, start), start);                    // shrink
  EXPECT_EQ(call(Sysno::kBrk, start + 0x1000), start + 0x1000);  // grow again
  EXPECT_EQ(m_mem->read_le<uint64_t>(start + 0x800), 0u);
}

TEST_F(LinuxSyscallsTest, ExitGroupEndsTheProcessWithTheLowByte) {
  auto o = m_sys->handle(static_cast<uint64_t>(Sysno::kExitGroup), {0x1ff, 0, 0, 0, 0, 0});
  EXPECT_TRUE(o.exited);
  EXPECT_EQ(o.exit_status, 0xff);
  o = m_sys->handle(static_cast<uint64_t>(Sysno::kExit), {3, 0, 0, 0, 0, 0});
  EXPECT_TRUE(o.exited);
  EXPECT_EQ(o.exit_status, 3);
}

TEST_F(LinuxSyscallsTest, UnknownCallsReturnEnosysAndAreCounted) {
  EXPECT_EQ(call(static_cast<Sysno>(79)), neg(ENOSYS));  // newfstatat: not yet
  EXPECT_EQ(call(static_cast<Sysno>(~0ull)), neg(ENOSYS));
  EXPECT_EQ(m_sys->unknown_calls(), 2u);
}

TEST_F(LinuxSyscallsTest, UnameSaysLinuxOnRiscv64) {
  EXPECT_EQ(call(Sysno::kUname, kBase + 0x1000), 0u);
  char buf[65 * 6];
  ASSERT_TRUE(m_mem->read(kBase + 0x1000, {reinterpret_cast<uint8_t*>(buf), sizeof buf}));
  EXPECT_STREQ(buf, "Linux");
  EXPECT_STREQ(buf + 65 * 4, "riscv64");
}

TEST_F(LinuxSyscallsTest, AnonymousMmapHandsOutFreshZeroedPages) {
  constexpr uint64_t kPrivAnon = 0x22, kFixed = 0x10, kRw = 3;
  const uint64_t a = call(Sysno::kMmap, 0, 0x1800, kRw, kPrivAnon, ~0ull);
  EXPECT_EQ(a, kBase + 0x8000);
  const uint64_t b = call(Sysno::kMmap, 0, 0x1000, kRw, kPrivAnon, ~0ull);
  EXPECT_EQ(b, kBase + 0xa000);  // page-rounded, no overlap
  ASSERT_TRUE(m_mem->write_le<uint64_t>(a + 8, 77));
  EXPECT_EQ(call(Sysno::kMmap, a, 0x1000, kRw, kPrivAnon | kFixed, ~0ull), a);  // replaces: zero
  EXPECT_EQ(m_mem->read_le<uint64_t>(a + 8), 0u);
  EXPECT_EQ(call(Sysno::kMmap, 0, 0x100000, kRw, kPrivAnon, ~0ull), neg(ENOMEM));  // area is full
  EXPECT_EQ(call(Sysno::kMmap, 0, 0x1000, kRw, 0x02, 3), neg(ENODEV));  // files: not yet
  EXPECT_EQ(call(Sysno::kMmap, 0, 0, kRw, kPrivAnon, ~0ull), neg(EINVAL));
  EXPECT_EQ(call(Sysno::kMmap, kBase, 0x1000, kRw, kPrivAnon | kFixed, ~0ull), neg(ENOMEM));
  ASSERT_TRUE(m_mem->write_le<uint64_t>(b, 5));
  EXPECT_EQ(call(Sysno::kMunmap, b, 0x1000), 0u);
  EXPECT_EQ(m_mem->read_le<uint64_t>(b), 0u);
  EXPECT_EQ(call(Sysno::kMunmap, b + 1, 0x1000), neg(EINVAL));
}

TEST_F(LinuxSyscallsTest, WhatGlibcStartupAsksFor) {
  const uint64_t buf = kBase + 0x2000;
  EXPECT_EQ(call(Sysno::kPrlimit64, 0, 3, 0, buf), 0u);  // RLIMIT_STACK
  EXPECT_EQ(m_mem->read_le<uint64_t>(buf), 0x800000u);
  EXPECT_EQ(call(Sysno::kPrlimit64, 0, 3, buf, 0), neg(EPERM));
  put(kBase + 0x3000, std::string("/proc/self/exe") + '\0');
  EXPECT_EQ(call(Sysno::kReadlinkat, static_cast<uint64_t>(-100), kBase + 0x3000, buf, 64), 9u);
  char name[10] = {};
  ASSERT_TRUE(m_mem->read(buf, {reinterpret_cast<uint8_t*>(name), 9}));
  EXPECT_STREQ(name, "/bin/prog");
  put(kBase + 0x3000, std::string("/etc/passwd") + '\0');
  EXPECT_EQ(call(Sysno::kReadlinkat, static_cast<uint64_t>(-100), kBase + 0x3000, buf, 64), neg(ENOENT));
  EXPECT_EQ(call(Sysno::kGetrandom, buf, 16), 16u);
  EXPECT_EQ(call(Sysno::kGetrandom, 0, 16), neg(EFAULT));
  EXPECT_EQ(call(Sysno::kClockGettime, 1, buf), 0u);  // CLOCK_MONOTONIC
  EXPECT_EQ(call(Sysno::kClockGettime, 1, 8), neg(EFAULT));
  EXPECT_EQ(call(Sysno::kMprotect, kBase, 0x1000, 1), 0u);
  EXPECT_EQ(call(Sysno::kMprotect, kBase + 1, 0x1000, 1), neg(EINVAL));
  EXPECT_EQ(call(Sysno::kMprotect, 0x100000000, 0x1000, 1), neg(ENOMEM));
}

}  // namespace
}  // namespace doppel::rv64::user
