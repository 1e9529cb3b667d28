#include "backends/rate_limiter.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "backends/throttle_queue.h"

namespace doppel {
namespace {

constexpr uint64_t kMs = 1'000'000;  // ns

TEST(TokenBucket, DisabledPassesEverything) {
  TokenBucket b({0, 100, 0}, 0);
  EXPECT_FALSE(b.enabled());
  EXPECT_TRUE(b.try_consume(UINT64_MAX, 0));
  EXPECT_EQ(b.wait_ns(UINT64_MAX, 0), 0u);
  TokenBucket c({1000, 0, 0}, 0);  // refill time 0 disables too
  EXPECT_FALSE(c.enabled());
}

TEST(TokenBucket, StartsFullAndRefillsLinearly) {
  TokenBucket b({1000, 100, 0}, 0);  // 1000 tokens per 100 ms
  EXPECT_EQ(b.budget(0), 1000);
  EXPECT_TRUE(b.try_consume(1000, 0));
  EXPECT_FALSE(b.try_consume(1, 0));
  EXPECT_EQ(b.budget(0), 0);
  // 10 tokens per ms.
  EXPECT_EQ(b.wait_ns(1, 0), 100'000u);  // 0.1 ms for one token
  EXPECT_EQ(b.wait_ns(500, 0), 50 * kMs);
  EXPECT_FALSE(b.try_consume(500, 50 * kMs - 1));
  EXPECT_TRUE(b.try_consume(500, 50 * kMs));
  EXPECT_EQ(b.budget(50 * kMs), 0);
  // It never holds more than its size.
  EXPECT_EQ(b.budget(10'000 * kMs), 1000);
}

TEST(TokenBucket, NoDriftOverManySmallRefills) {
  // 3 tokens per 7 ms cannot be represented as whole tokens per ns; a million 1 ns steps
  // plus the rest must still add up exactly.
  TokenBucket b({3, 7, 0}, 0);
  ASSERT_TRUE(b.try_consume(3, 0));
  uint64_t now = 0;
  for (int i = 0; i < 1000; i++) b.budget(now += 1000);  // 1 ms in 1 us steps
  EXPECT_EQ(b.budget(7 * kMs - 1), 2);
  EXPECT_EQ(b.budget(7 * kMs), 3);
}

TEST(TokenBucket, OneTimeBurstIsSpentFirstAndNotRefilled) {
  TokenBucket b({100, 1000, 500}, 0);
  EXPECT_EQ(b.budget(0), 600);
  EXPECT_TRUE(b.try_consume(450, 0));  // all from the burst
  EXPECT_EQ(b.one_time_burst(), 50u);
  EXPECT_TRUE(b.try_consume(120, 0));  // 50 from the burst, 70 from the bucket
  EXPECT_EQ(b.one_time_burst(), 0u);
  EXPECT_EQ(b.budget(0), 30);
  EXPECT_FALSE(b.try_consume(31, 0));
  EXPECT_EQ(b.budget(10'000 * kMs), 100);  // the burst does not come back
}

TEST(TokenBucket, RefusalChangesNothing) {
  TokenBucket b({100, 1000, 10}, 0);
  ASSERT_TRUE(b.try_consume(100, 0));  // burst 10 + 90 of the bucket
  EXPECT_FALSE(b.try_consume(50, 0));
  EXPECT_EQ(b.budget(0), 10);
  EXPECT_EQ(b.one_time_burst(), 0u);
}

TEST(TokenBucket, RequestLargerThanTheBucketGoesWhenFullAndLeavesDebt) {
  TokenBucket b({1000, 1000, 0}, 0);  // 1 token per ms
  ASSERT_TRUE(b.try_consume(1, 0));
  EXPECT_FALSE(b.try_consume(3000, 0));       // not full
  EXPECT_EQ(b.wait_ns(3000, 0), 1 * kMs);     // full again after 1 ms
  EXPECT_TRUE(b.try_consume(3000, 1 * kMs));  // goes, 2000 in debt
  EXPECT_EQ(b.budget(1 * kMs), -2000);
  // The next one-token request waits for the debt plus one token: 2001 ms.
  EXPECT_EQ(b.wait_ns(1, 1 * kMs), 2001 * kMs);
}

TEST(TokenBucket, LongRunRateIsExact) {
  // Greedy consumer of 4 KiB requests against 1 MiB per 100 ms, for 10 simulated seconds:
  // it gets the initial bucket plus exactly 100 refills.
  TokenBucket b({1 << 20, 100, 0}, 0);
  uint64_t now = 0, bytes = 0;
  while (now <= 10'000 * kMs) {
    if (b.try_consume(4096, now)) bytes += 4096;
    else now += b.wait_ns(4096, now);
  }
  EXPECT_EQ(bytes, (1ull << 20) * 101);
}

TEST(RateLimiter, BothBucketsMustAgreeAndARefusalTakesFromNeither) {
  RateLimiter l({{10000, 1000, 0}, {2, 1000, 0}}, 0);  // 10000 B/s, 2 ops/s
  EXPECT_TRUE(l.try_consume(4000, 0));
  EXPECT_FALSE(l.try_consume(8000, 0));  // ops would allow, bytes not
  EXPECT_EQ(l.ops().budget(0), 1);       // the refused request took no op
  EXPECT_TRUE(l.try_consume(0, 0));      // a flush: one op, no bytes
  EXPECT_FALSE(l.try_consume(0, 0));     // out of ops
  EXPECT_EQ(l.wait_ns(0, 0), 500 * kMs);
  EXPECT_EQ(l.wait_ns(8000, 0), 500 * kMs);  // the later of the two buckets decides
  EXPECT_EQ(l.bandwidth().wait_ns(8000, 0), 200 * kMs);
}

TEST(ThrottleQueue, RunsInOrderAndNeverDrops) {
  // 100 ops per 100 ms: 250 requests need about 150 ms beyond the first 100.
  ThrottleQueue q({{}, {100, 100, 0}}, "test-throttle");
  std::mutex m;
  std::vector<int> order;
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 250; i++)
    q.submit(0, [&, i] {
      std::lock_guard lock(m);
      order.push_back(i);
    });
  EXPECT_GT(q.throttled(), 0u);
  for (int tries = 0; tries < 500; tries++) {
    {
      std::lock_guard lock(m);
      if (order.size() == 250) break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  const auto elapsed = std::chrono::steady_clock::now() - start;
  std::lock_guard lock(m);
  ASSERT_EQ(order.size(), 250u);
  for (int i = 0; i < 250; i++) EXPECT_EQ(order[static_cast<size_t>(i)], i);
  // Not a timing assertion on speed: the limit must have held them back at least this long.
  EXPECT_GE(elapsed, std::chrono::milliseconds(140));
}

TEST(ThrottleQueue, DrainNowRunsEverythingQueued) {
  ThrottleQueue q({{}, {1, 10'000, 0}}, "test-throttle");  // 1 op per 10 s
  std::atomic<int> ran{0};
  for (int i = 0; i < 5; i++) q.submit(0, [&] { ran++; });
  EXPECT_EQ(ran.load(), 1);
  q.drain_now();
  EXPECT_EQ(ran.load(), 5);
}

// Rule 9: a snapshot keeps each bucket's configuration (as PATCHed), its budget (a debt
// included) and what is left of its one-time burst; the restored bucket refills from then.
TEST(TokenBucket, SaveAndRestoreKeepBudgetBurstAndDebt) {
  TokenBucket b({1000, 100, 300}, 0);
  EXPECT_TRUE(b.try_consume(1100, 0));  // the 300 burst, then 800 of the 1000
  TokenBucketState s = b.save(0);
  EXPECT_EQ(s.config, (TokenBucketConfig{1000, 100, 0}));
  EXPECT_EQ(s.budget, 200);
  auto r = TokenBucket::restore(s, 5'000 * kMs);  // another clock: the restoring process's
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(r->budget(5'000 * kMs), 200);
  EXPECT_EQ(r->budget(5'010 * kMs), 300);  // 10 tokens per ms from the restore on

  TokenBucket debt({1000, 100, 0}, 0);
  debt.consume_anyway(2500, 0);  // 1500 in debt
  s = debt.save(0);
  EXPECT_EQ(s.budget, -1500);
  r = TokenBucket::restore(s, 0);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->wait_ns(1, 0), 150 * kMs + 100'000);  // the debt, then one token

  TokenBucket off;
  EXPECT_EQ(off.save(0), TokenBucketState{});
  r = TokenBucket::restore({}, 0);
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->enabled());
}

TEST(TokenBucket, RestoreRefusesImpossibleStates) {
  EXPECT_EQ(TokenBucket::restore({{1000, 100, 0}, 1001}, 0).error().message(),
            "budget: 1001 is more than the size 1000");
  EXPECT_EQ(TokenBucket::restore({{1000, kMaxRefillTimeMs + 1, 0}, 0}, 0).error().message(),
            "refill_time: 86400001 ms is more than 86400000 ms");
  EXPECT_FALSE(TokenBucket::restore({{0, 100, 0}, 5}, 0).ok());
  // The deepest debt a file can hold still gives a bounded wait.
  auto r = TokenBucket::restore({{1, kMaxRefillTimeMs, 0}, INT64_MIN}, 0);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->wait_ns(1, 0), uint64_t{1} << 62);
}

TEST(ThrottleQueue, SavedBucketsComeBackWithTheirPatch) {
  ThrottleQueue q({{1'000'000, 1000, 0}, {}}, "test-throttle");
  q.set_limits({TokenBucketConfig{5000, 1000, 0}, TokenBucketConfig{10, 1000, 0}});
  q.submit(4000, [] {});
  const RateLimiterState s = q.save();
  EXPECT_EQ(s.bandwidth.config, (TokenBucketConfig{5000, 1000, 0}));
  EXPECT_NEAR(static_cast<double>(s.bandwidth.budget), 1000, 50);  // refilled a little since
  EXPECT_EQ(s.ops.config, (TokenBucketConfig{10, 1000, 0}));
  ThrottleQueue fresh({}, "test-throttle2");
  ASSERT_TRUE(fresh.restore(s).ok());
  EXPECT_EQ(fresh.save().bandwidth.config, s.bandwidth.config);
  EXPECT_FALSE(fresh.restore({{{10, 10, 0}, 11}, {}}).ok());
}

}  // namespace
}  // namespace doppel
