#include "vmm/rate_limiter_config.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "vmm/vm_config.h"

namespace doppel {
namespace {

using json = nlohmann::json;

TEST(RateLimiterConfig, BucketSpecs) {
  auto b = parse_bucket_spec("10M/1000");
  ASSERT_TRUE(b.ok()) << b.error().message();
  EXPECT_EQ(*b, (TokenBucketConfig{10 * 1024 * 1024, 1000, 0}));
  b = parse_bucket_spec("100/10+2K");
  ASSERT_TRUE(b.ok()) << b.error().message();
  EXPECT_EQ(*b, (TokenBucketConfig{100, 10, 2048}));
  for (const char* bad : {"10M", "10M/", "/100", "x/100", "10/1s", "10/100+", "10/100000000"}) {
    auto r = parse_bucket_spec(bad);
    EXPECT_FALSE(r.ok()) << bad;
  }
  EXPECT_EQ(parse_bucket_spec("10M").error().message(),
            "'10M' is not SIZE/MS[+BURST] (e.g. 10M/1000: 10 MiB per second)");
}

TEST(RateLimiterConfig, DiskAndNetFlags) {
  auto d = parse_disk_spec("/x.img,ro,bw=1000000/100,ops=200/1000+50");
  ASSERT_TRUE(d.ok()) << d.error().message();
  EXPECT_TRUE(d->read_only);
  EXPECT_EQ(d->rate_limiter.bandwidth, (TokenBucketConfig{1000000, 100, 0}));
  EXPECT_EQ(d->rate_limiter.ops, (TokenBucketConfig{200, 1000, 50}));
  auto bad = parse_disk_spec("/x.img,bw=fast");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message().find("bw=fast"), std::string::npos) << bad.error().message();

  auto n = parse_net_spec("tap=t0,rx_bw=1M/100,tx_ops=10/10");
  ASSERT_TRUE(n.ok()) << n.error().message();
  EXPECT_EQ(n->rx_rate_limiter.bandwidth, (TokenBucketConfig{1 << 20, 100, 0}));
  EXPECT_FALSE(n->rx_rate_limiter.ops.enabled());
  EXPECT_EQ(n->tx_rate_limiter.ops, (TokenBucketConfig{10, 10, 0}));
  EXPECT_FALSE(n->tx_rate_limiter.bandwidth.enabled());
  EXPECT_FALSE(parse_net_spec("tap=t0,bw=1M/100").ok());  // a net's limits name a direction
}

TEST(RateLimiterConfig, VmFileInFirecrackersShapeRoundTrips) {
  const json doc = json::parse(R"({
    "disks": [{"path": "/etc/hostname", "read_only": true,
               "rate_limiter": {"bandwidth": {"size": 2000000, "refill_time": 200},
                                "ops": {"size": 100, "refill_time": 1000, "one_time_burst": 500}}}],
    "nets": [{"tap": "t0", "tx_rate_limiter": {"bandwidth": {"size": 1000, "refill_time": 10}}}]
  })");
  VmConfig c;
  auto r = apply_json(c, doc);
  ASSERT_TRUE(r.ok()) << r.error().message();
  ASSERT_EQ(c.disks.size(), 1u);
  EXPECT_EQ(c.disks[0].rate_limiter.bandwidth, (TokenBucketConfig{2000000, 200, 0}));
  EXPECT_EQ(c.disks[0].rate_limiter.ops, (TokenBucketConfig{100, 1000, 500}));
  EXPECT_EQ(c.nets[0].tx_rate_limiter.bandwidth, (TokenBucketConfig{1000, 10, 0}));
  EXPECT_FALSE(c.nets[0].rx_rate_limiter.enabled());
  // to_json (--print-config, a snapshot's vm.config) gives back the same limits.
  VmConfig again;
  ASSERT_TRUE(apply_json(again, to_json(c)).ok());
  EXPECT_EQ(again.disks[0].rate_limiter, c.disks[0].rate_limiter);
  EXPECT_EQ(again.nets[0].tx_rate_limiter, c.nets[0].tx_rate_limiter);
}

TEST(RateLimiterConfig, VmFileErrorsNameTheKey) {
  auto error = [](const char* text) {
    VmConfig c;
    auto r = apply_json(c, json::parse(text));
    return r.ok() ? std::string() : r.error().message();
  };
  EXPECT_EQ(error(R"({"disks": [{"path": "/etc/hostname", "read_only": true,
                     "rate_limiter": {"bandwidth": {"size": -1, "refill_time": 100}}}]})"),
            "disks[0].rate_limiter.bandwidth.size: must be a non-negative integer, got -1");
  EXPECT_EQ(error(R"({"disks": [{"path": "/etc/hostname", "read_only": true,
                     "rate_limiter": {"bandwidth": {"size": 1}}}]})"),
            "disks[0].rate_limiter.bandwidth: needs size and refill_time");
  EXPECT_EQ(error(R"({"disks": [{"path": "/etc/hostname", "read_only": true,
                     "rate_limiter": {"bytes": {}}}]})"),
            "disks[0].rate_limiter.bytes: unknown key (known: bandwidth, ops)");
  EXPECT_EQ(error(R"({"nets": [{"tap": "t0", "rx_rate_limiter": {"ops": {"size": 1, "refill_time": 1, "burst": 2}}}]})"),
            "nets[0].rx_rate_limiter.ops.burst: unknown key (known: size, refill_time, one_time_burst)");
  EXPECT_EQ(error(R"({"nets": [{"tap": "t0", "tx_rate_limiter": []}]})"),
            "nets[0].tx_rate_limiter: must be an object, got array");
}

}  // namespace
}  // namespace doppel
