// Rate limiters with Firecracker's semantics: a token bucket for bandwidth (bytes) and one
// for operations, each with a size, a refill time (the time to refill `size` tokens from
// empty, in ms) and an optional one-time burst (extra tokens at start, not refilled). A
// bucket with size 0 or refill time 0 is no limit.
//
// A request costs 1 op and its data bytes. A request larger than the bucket goes through
// when the bucket is full and leaves it in debt, so the long-run rate is exact whatever the
// request sizes (Firecracker's "over-consumption").
//
// Pure classes: the clock is a parameter (monotonic nanoseconds), so tests drive time.
// Threads: none of their own; the owner serializes calls (ThrottleQueue holds a mutex).
#pragma once

#include <cstdint>
#include <optional>

#include "base/result.h"

namespace doppel {

// Largest refill time accepted (a day), which keeps the arithmetic far from overflow.
constexpr uint64_t kMaxRefillTimeMs = 86'400'000;

struct TokenBucketConfig {
  uint64_t size = 0;            // tokens (bytes or ops)
  uint64_t refill_time_ms = 0;  // time to refill `size` tokens from empty
  uint64_t one_time_burst = 0;  // extra tokens available once, at start
  bool enabled() const { return size != 0 && refill_time_ms != 0; }
  bool operator==(const TokenBucketConfig&) const = default;
};

struct RateLimiterConfig {
  TokenBucketConfig bandwidth;  // bytes
  TokenBucketConfig ops;        // requests
  bool enabled() const { return bandwidth.enabled() || ops.enabled(); }
  bool operator==(const RateLimiterConfig&) const = default;
};

// A change of a running limiter (Firecracker's PATCH): the buckets given are replaced (by
// full new ones; size 0 removes that limit), the others kept as they are.
struct RateLimiterPatch {
  std::optional<TokenBucketConfig> bandwidth, ops;
};
// The configuration after a patch: what a VM file would say to build that limiter.
RateLimiterConfig patched(RateLimiterConfig config, const RateLimiterPatch& patch);

// A bucket as a snapshot saves it (Firecracker's TokenBucketState): its configuration, with
// the one-time burst that is left, and its budget of whole tokens (negative in debt). A
// restored bucket goes on from that budget, refilling from the moment it is restored.
struct TokenBucketState {
  TokenBucketConfig config;  // config.one_time_burst: what is left of it
  int64_t budget = 0;
  bool operator==(const TokenBucketState&) const = default;
};

struct RateLimiterState {
  TokenBucketState bandwidth, ops;
  bool operator==(const RateLimiterState&) const = default;
};

class TokenBucket {
 public:
  TokenBucket() = default;  // disabled: every request passes
  TokenBucket(const TokenBucketConfig& config, uint64_t now_ns);

  bool enabled() const { return m_size != 0; }
  // Consumes n tokens if the bucket allows it now; otherwise changes nothing.
  bool try_consume(uint64_t n, uint64_t now_ns);
  // Consumes n tokens whatever the budget (it may go into debt).
  void consume_anyway(uint64_t n, uint64_t now_ns);
  // Nanoseconds until try_consume(n) would succeed (0: now).
  uint64_t wait_ns(uint64_t n, uint64_t now_ns);
  // Tokens available now (the one-time burst included); negative when in debt.
  int64_t budget(uint64_t now_ns);
  uint64_t one_time_burst() const { return m_burst; }

  TokenBucketState save(uint64_t now_ns);
  // Refuses a state no bucket could be in (a refill time over kMaxRefillTimeMs, a budget
  // over the size), naming the field.
  static Result<TokenBucket> restore(const TokenBucketState& state, uint64_t now_ns);

 private:
  void refill(uint64_t now_ns);
  // The budget the bucket needs before n tokens may go: n, or a full bucket for n > size.
  uint64_t needed(uint64_t n) const;

  uint64_t m_size = 0;
  uint64_t m_refill_ns = 0;
  uint64_t m_burst = 0;
  // The budget scaled by m_refill_ns (tokens * refill_ns), so that refilling elapsed_ns
  // adds exactly elapsed_ns * size with no rounding drift. Capped at size * refill_ns.
  __int128 m_scaled = 0;
  uint64_t m_last_ns = 0;
};

class RateLimiter {
 public:
  RateLimiter() = default;
  RateLimiter(const RateLimiterConfig& config, uint64_t now_ns);

  bool enabled() const { return m_bytes.enabled() || m_ops.enabled(); }
  // One request of `bytes` data bytes: consumed from both buckets if both allow it now.
  bool try_consume(uint64_t bytes, uint64_t now_ns);
  void consume_anyway(uint64_t bytes, uint64_t now_ns);
  void apply(const RateLimiterPatch& patch, uint64_t now_ns);
  // Nanoseconds until try_consume(bytes) would succeed.
  uint64_t wait_ns(uint64_t bytes, uint64_t now_ns);

  TokenBucket& bandwidth() { return m_bytes; }
  TokenBucket& ops() { return m_ops; }

  RateLimiterState save(uint64_t now_ns);
  static Result<RateLimiter> restore(const RateLimiterState& state, uint64_t now_ns);

 private:
  TokenBucket m_bytes, m_ops;
};

// CLOCK_MONOTONIC in nanoseconds.
uint64_t monotonic_ns();

}  // namespace doppel
