#include "oci/cgroup.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

namespace doppel::oci {
namespace {

// A directory that looks like a cgroup v2 hierarchy to the writer: the interface files
// the kernel would make, empty. The writer opens them without O_CREAT, as cgroupfs files.
class FakeCgroup2 : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/doppel-fake-cgroup2.XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    m_root = tmpl;
    touch(m_root + "/cgroup.controllers", "cpu memory pids io\n");
    touch(m_root + "/cgroup.subtree_control", "");
  }
  void TearDown() override { std::filesystem::remove_all(m_root); }
  static void touch(const std::string& path, const std::string& text) { std::ofstream(path) << text; }
  static std::string read(const std::string& path) {
    std::ifstream f(path);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
  }
  // The container's directory with the files a v2 cgroup with those controllers has.
  void make_container_dir(const std::string& name) {
    ASSERT_EQ(::mkdir((m_root + name).c_str(), 0755), 0);
    for (const char* f : {"memory.max", "memory.low", "memory.swap.max", "cpu.max", "cpu.weight", "pids.max",
                          "io.weight", "cgroup.procs"})
      touch(m_root + name + "/" + f, "");
  }
  std::string m_root;
};

TEST_F(FakeCgroup2, WritesTheLimitsInV2Terms) {
  make_container_dir("/box");
  Resources r;
  r.memory_limit = 64 << 20;
  r.memory_swap = 96 << 20;  // memory+swap in the spec; swap alone in memory.swap.max
  r.cpu_quota = 50000;
  r.cpu_period = 100000;
  r.cpu_shares = 1024;
  r.pids_limit = 10;
  Cgroup cg = Cgroup::unified_at("/box", m_root);
  auto made = cg.create(r);
  ASSERT_TRUE(made.ok()) << made.error().message();
  EXPECT_EQ(read(m_root + "/box/memory.max"), "67108864");
  EXPECT_EQ(read(m_root + "/box/memory.swap.max"), "33554432");
  EXPECT_EQ(read(m_root + "/box/cpu.max"), "50000 100000");
  EXPECT_EQ(read(m_root + "/box/cpu.weight"), "39");  // runc's shares-to-weight
  EXPECT_EQ(read(m_root + "/box/pids.max"), "10");
  // The parent is asked to hand its controllers down.
  EXPECT_NE(read(m_root + "/cgroup.subtree_control"), "");
}

TEST_F(FakeCgroup2, UnlimitedIsMax) {
  make_container_dir("/box");
  Resources r;
  r.memory_limit = -1;
  r.pids_limit = -1;
  r.cpu_period = 200000;  // a period without a quota: no limit
  Cgroup cg = Cgroup::unified_at("/box", m_root);
  ASSERT_TRUE(cg.create(r).ok());
  EXPECT_EQ(read(m_root + "/box/memory.max"), "max");
  EXPECT_EQ(read(m_root + "/box/pids.max"), "max");
  EXPECT_EQ(read(m_root + "/box/cpu.max"), "max 200000");
}

TEST_F(FakeCgroup2, AFailedWriteNamesTheFileAndLeavesNoDirectory) {
  // mkdir makes a directory without the interface files: the hierarchy lacks the memory
  // controller, as a hybrid host's empty v2 tree does.
  Resources r;
  r.memory_limit = 1 << 20;
  Cgroup cg = Cgroup::unified_at("/a/b", m_root);
  auto made = cg.create(r);
  ASSERT_FALSE(made.ok());
  EXPECT_EQ(made.error().message(), "cgroup: " + m_root + "/a/b/memory.max: No such file or directory");
  struct stat st {};
  EXPECT_NE(::stat((m_root + "/a").c_str(), &st), 0) << "left behind";
}

}  // namespace
}  // namespace doppel::oci
