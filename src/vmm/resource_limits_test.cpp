#include "vmm/resource_limits.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "vmm/vm_config.h"

namespace doppel {
namespace {

TEST(ResourceLimits, CpuQuotaIsAShareOfOneCpu) {
  EXPECT_EQ(parse_cpu_quota("50%").value(), 50000u);
  EXPECT_EQ(parse_cpu_quota("12.5%").value(), 12500u);
  EXPECT_EQ(parse_cpu_quota("250%").value(), 250000u);
  EXPECT_EQ(parse_cpu_quota("25").value(), 25000u);
  EXPECT_FALSE(parse_cpu_quota("0%").ok());
  EXPECT_FALSE(parse_cpu_quota("fast").ok());
  EXPECT_FALSE(parse_cpu_quota("5000%").ok());
  EXPECT_EQ(cpu_quota_text(25000), "25%");
}

TEST(ResourceLimits, MemoryAndPids) {
  EXPECT_EQ(parse_memory_limit("512M").value(), 512ull << 20);
  EXPECT_EQ(parse_memory_limit("1G").value(), 1ull << 30);
  EXPECT_EQ(parse_memory_limit("96").value(), 96ull << 20);  // bare: MiB, as --memory
  EXPECT_FALSE(parse_memory_limit("1K").ok());
  EXPECT_FALSE(parse_memory_limit("lots").ok());
  EXPECT_EQ(parse_pids_limit("64").value(), 64u);
  EXPECT_FALSE(parse_pids_limit("2").ok());
  EXPECT_FALSE(parse_pids_limit("-1").ok());
}

TEST(ResourceLimits, IoLimitKeys) {
  IoLimits io = parse_io_limit("bw=10M,iops=1000").value();
  EXPECT_EQ(io.read_bps, 10u << 20);
  EXPECT_EQ(io.write_bps, 10u << 20);
  EXPECT_EQ(io.read_iops, 1000u);
  EXPECT_EQ(io.write_iops, 1000u);
  io = parse_io_limit("wbw=1M").value();
  EXPECT_FALSE(io.read_bps);
  EXPECT_EQ(io.write_bps, 1u << 20);
  EXPECT_EQ(io_limit_text(io), "wbw=1048576");
  auto bad = parse_io_limit("speed=3");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message().find("unknown key 'speed'"), std::string::npos);
  EXPECT_FALSE(parse_io_limit("bw=0").ok());
  EXPECT_FALSE(parse_io_limit("iops").ok());
}

TEST(ResourceLimits, VmFileRoundTrip) {
  VmConfig config;
  auto doc = nlohmann::json::parse(
      R"({"limits": {"cpu_quota": "25%", "memory_limit": "96M", "io_limit": "rbw=2M", "pids_limit": 100}})");
  ASSERT_TRUE(apply_json(config, doc).ok());
  EXPECT_EQ(config.limits.cpu_quota_us, 25000u);
  EXPECT_EQ(config.limits.memory_bytes, 96ull << 20);
  EXPECT_EQ(config.limits.io.read_bps, 2u << 20);
  EXPECT_EQ(config.limits.pids, 100u);
  VmConfig again;
  ASSERT_TRUE(apply_json(again, nlohmann::json{{"limits", to_json(config)["limits"]}}).ok());
  EXPECT_EQ(again.limits.cpu_quota_us, 25000u);
  EXPECT_EQ(again.limits.memory_bytes, 96ull << 20);
  EXPECT_EQ(again.limits.io.read_bps, 2u << 20);
  EXPECT_EQ(again.limits.pids, 100u);
  auto bad = apply_json(config, nlohmann::json::parse(R"({"limits": {"cpu_quota": "x"}})"));
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message().find("limits.cpu_quota"), std::string::npos) << bad.error().message();
}

}  // namespace
}  // namespace doppel
