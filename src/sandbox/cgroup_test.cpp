// The cgroup v2 path against a fake cgroupfs directory: the files a pure-v2 host's kernel
// would make, and what doppel writes into them.
#include "sandbox/cgroup.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "sandbox/files.h"

namespace doppel::sandbox {
namespace {

class FakeCgroupV2 : public ::testing::Test {
 protected:
  void SetUp() override {
    m_root = std::filesystem::temp_directory_path() /
             ("doppel-cgroup-test-" + std::to_string(::getpid()));
    std::filesystem::create_directories(m_root / "doppel" / "vm1");
    for (const std::string dir : {"", "doppel"}) {
      put(dir + "/cgroup.controllers", "cpuset cpu io memory pids\n");
      put(dir + "/cgroup.subtree_control", "");
    }
    // The kernel makes these when the cgroup's directory is made.
    for (const char* f : {"cpu.max", "cpu.weight", "memory.max", "memory.low", "memory.swap.max", "io.max",
                          "io.weight", "pids.max", "cgroup.procs"})
      put(std::string("doppel/vm1/") + f, "");
    put("doppel/vm1/memory.events", "low 0\nhigh 0\nmax 7\noom 2\noom_kill 1\noom_group_kill 0\n");
    put("doppel/vm1/cpu.stat", "usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\n");
  }
  void TearDown() override { std::filesystem::remove_all(m_root); }

  void put(const std::string& rel, const std::string& text) { std::ofstream(m_root / rel) << text; }
  std::string get(const std::string& rel) { return read_file((m_root / rel).string()).value(); }

  std::filesystem::path m_root;
};

TEST_F(FakeCgroupV2, WritesTheVmLimitsIntoTheV2Files) {
  Cgroup cg = Cgroup::unified_at("/doppel/vm1", m_root.string());
  EXPECT_TRUE(cg.unified());
  Resources r;
  r.cpu_quota = 25000;
  r.cpu_period = 100000;
  r.memory_limit = 512ll << 20;
  r.memory_swap = 512ll << 20;
  r.pids_limit = 64;
  r.io_throttle.push_back({254, 0, 10u << 20, 10u << 20, std::nullopt, 1000});
  ASSERT_TRUE(cg.create(r).ok());
  EXPECT_EQ(get("doppel/vm1/cpu.max"), "25000 100000");
  EXPECT_EQ(get("doppel/vm1/memory.max"), "536870912");
  EXPECT_EQ(get("doppel/vm1/memory.swap.max"), "0");  // memory+swap == memory: no swap
  EXPECT_EQ(get("doppel/vm1/pids.max"), "64");
  EXPECT_EQ(get("doppel/vm1/io.max"), "254:0 rbps=10485760 wbps=10485760 riops=max wiops=1000");
  // The controllers were delegated down to the VM's parent.
  EXPECT_NE(get("doppel/cgroup.subtree_control"), "");
  ASSERT_TRUE(cg.add_process(1234).ok());
  EXPECT_EQ(get("doppel/vm1/cgroup.procs"), "1234");
}

TEST_F(FakeCgroupV2, ReadsOomKillsAndCpuUsage) {
  Cgroup cg = Cgroup::unified_at("/doppel/vm1", m_root.string());
  EXPECT_EQ(cg.oom_kills().value(), 1u);
  EXPECT_EQ(cg.cpu_usage_usec().value(), 2500000u);
  put("doppel/vm1/memory.events", "low 0\n");
  EXPECT_FALSE(cg.oom_kills().ok());
}

TEST_F(FakeCgroupV2, AMissingFileIsAnErrorNamingIt) {
  std::filesystem::remove(m_root / "doppel/vm1/io.max");
  Cgroup cg = Cgroup::unified_at("/doppel/vm1", m_root.string());
  Resources r;
  r.io_throttle.push_back({8, 0, 1000, std::nullopt, std::nullopt, std::nullopt});
  auto result = cg.create(r);
  ASSERT_FALSE(result.ok());
  EXPECT_NE(result.error().message().find("io.max"), std::string::npos) << result.error().message();
}

// A container's resources (the OCI spec's terms) in v2 terms.
TEST_F(FakeCgroupV2, WritesContainerLimitsInV2Terms) {
  Resources r;
  r.memory_limit = 64 << 20;
  r.memory_swap = 96 << 20;  // memory+swap in the spec; swap alone in memory.swap.max
  r.cpu_quota = 50000;
  r.cpu_period = 100000;
  r.cpu_shares = 1024;
  r.pids_limit = 10;
  Cgroup cg = Cgroup::unified_at("/doppel/vm1", m_root.string());
  auto made = cg.create(r);
  ASSERT_TRUE(made.ok()) << made.error().message();
  EXPECT_EQ(get("doppel/vm1/memory.max"), "67108864");
  EXPECT_EQ(get("doppel/vm1/memory.swap.max"), "33554432");
  EXPECT_EQ(get("doppel/vm1/cpu.max"), "50000 100000");
  EXPECT_EQ(get("doppel/vm1/cpu.weight"), "39");  // runc's shares-to-weight
  EXPECT_EQ(get("doppel/vm1/pids.max"), "10");
}

TEST_F(FakeCgroupV2, UnlimitedIsMax) {
  Resources r;
  r.memory_limit = -1;
  r.pids_limit = -1;
  r.cpu_period = 200000;  // a period without a quota: no limit
  Cgroup cg = Cgroup::unified_at("/doppel/vm1", m_root.string());
  ASSERT_TRUE(cg.create(r).ok());
  EXPECT_EQ(get("doppel/vm1/memory.max"), "max");
  EXPECT_EQ(get("doppel/vm1/pids.max"), "max");
  EXPECT_EQ(get("doppel/vm1/cpu.max"), "max 200000");
}

TEST_F(FakeCgroupV2, AFailedWriteNamesTheFileAndLeavesNoDirectory) {
  // mkdir makes a directory without the interface files: the hierarchy lacks the memory
  // controller, as a hybrid host's empty v2 tree does.
  Resources r;
  r.memory_limit = 1 << 20;
  Cgroup cg = Cgroup::unified_at("/a/b", m_root.string());
  auto made = cg.create(r);
  ASSERT_FALSE(made.ok());
  EXPECT_EQ(made.error().message(), "cgroup: " + (m_root / "a/b/memory.max").string() + ": No such file or directory");
  EXPECT_FALSE(std::filesystem::exists(m_root / "a")) << "left behind";
}

}  // namespace
}  // namespace doppel::sandbox
