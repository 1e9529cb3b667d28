#include "backends/rate_limiter.h"

#include <time.h>

#include <algorithm>

namespace doppel {

namespace {
constexpr uint64_t kNsPerMs = 1'000'000;
}

uint64_t monotonic_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ull + static_cast<uint64_t>(ts.tv_nsec);
}

// ---- TokenBucket ----

TokenBucket::TokenBucket(const TokenBucketConfig& config, uint64_t now_ns) {
  if (!config.enabled()) return;
  m_size = config.size;
  m_refill_ns = config.refill_time_ms * kNsPerMs;
  m_burst = config.one_time_burst;
  m_scaled = static_cast<__int128>(m_size) * m_refill_ns;  // starts full, as Firecracker's
  m_last_ns = now_ns;
}

void TokenBucket::refill(uint64_t now_ns) {
  if (now_ns <= m_last_ns) return;
  const __int128 full = static_cast<__int128>(m_size) * m_refill_ns;
  // Unsigned: up to (2^64-1)^2, which a signed 128-bit product could overflow.
  const unsigned __int128 gained = static_cast<unsigned __int128>(now_ns - m_last_ns) * m_size;
  const auto room = static_cast<unsigned __int128>(full - m_scaled);  // m_scaled <= full
  m_scaled = gained >= room ? full : m_scaled + static_cast<__int128>(gained);
  m_last_ns = now_ns;
}

uint64_t TokenBucket::needed(uint64_t n) const { return std::min(n, m_size); }

bool TokenBucket::try_consume(uint64_t n, uint64_t now_ns) {
  if (!enabled()) return true;
  refill(now_ns);
  const uint64_t from_burst = std::min(m_burst, n);
  const uint64_t rest = n - from_burst;
  if (rest != 0 && m_scaled < static_cast<__int128>(needed(rest)) * m_refill_ns) return false;
  m_burst -= from_burst;
  m_scaled -= static_cast<__int128>(rest) * m_refill_ns;
  return true;
}

void TokenBucket::consume_anyway(uint64_t n, uint64_t now_ns) {
  if (!enabled()) return;
  refill(now_ns);
  const uint64_t from_burst = std::min(m_burst, n);
  m_burst -= from_burst;
  m_scaled -= static_cast<__int128>(n - from_burst) * m_refill_ns;
}

uint64_t TokenBucket::wait_ns(uint64_t n, uint64_t now_ns) {
  if (!enabled()) return 0;
  refill(now_ns);
  const uint64_t rest = n - std::min(m_burst, n);
  if (rest == 0) return 0;
  const __int128 deficit = static_cast<__int128>(needed(rest)) * m_refill_ns - m_scaled;
  if (deficit <= 0) return 0;
  // A deep debt on a slow bucket could exceed 64 bits of nanoseconds: 2^62 ns is 146 years.
  return static_cast<uint64_t>(std::min<__int128>((deficit + m_size - 1) / m_size, __int128{1} << 62));
}

int64_t TokenBucket::budget(uint64_t now_ns) {
  if (!enabled()) return INT64_MAX;
  refill(now_ns);
  // Floor division, so a debt of a fraction of a token shows as -1.
  __int128 tokens = m_scaled / m_refill_ns;
  if (m_scaled < 0 && m_scaled % m_refill_ns != 0) tokens -= 1;
  return static_cast<int64_t>(std::clamp<__int128>(tokens + m_burst, INT64_MIN, INT64_MAX));
}

TokenBucketState TokenBucket::save(uint64_t now_ns) {
  if (!enabled()) return {};
  TokenBucketState s;
  s.config = {m_size, m_refill_ns / kNsPerMs, m_burst};
  s.budget = budget(now_ns) - static_cast<int64_t>(m_burst);  // budget() counts the burst
  return s;
}

Result<TokenBucket> TokenBucket::restore(const TokenBucketState& state, uint64_t now_ns) {
  const TokenBucketConfig& c = state.config;
  if (!c.enabled()) {
    if (state.budget != 0 || c != TokenBucketConfig{})
      return Error("a disabled bucket (size or refill_time 0) has no budget or burst");
    return TokenBucket();
  }
  if (c.refill_time_ms > kMaxRefillTimeMs)
    return Error::format("refill_time: {} ms is more than {} ms", c.refill_time_ms, kMaxRefillTimeMs);
  if (state.budget > 0 && static_cast<uint64_t>(state.budget) > c.size)
    return Error::format("budget: {} is more than the size {}", state.budget, c.size);
  TokenBucket b(c, now_ns);
  // |budget| < 2^63 and refill_ns < 2^47: the product fits in 128 bits.
  b.m_scaled = static_cast<__int128>(state.budget) * b.m_refill_ns;
  return b;
}

RateLimiterConfig patched(RateLimiterConfig config, const RateLimiterPatch& patch) {
  if (patch.bandwidth) config.bandwidth = *patch.bandwidth;
  if (patch.ops) config.ops = *patch.ops;
  return config;
}

// ---- RateLimiter ----

RateLimiter::RateLimiter(const RateLimiterConfig& config, uint64_t now_ns)
    : m_bytes(config.bandwidth, now_ns), m_ops(config.ops, now_ns) {}

bool RateLimiter::try_consume(uint64_t bytes, uint64_t now_ns) {
  // Check both before taking from either, so a refusal leaves both untouched.
  if (m_ops.wait_ns(1, now_ns) != 0 || m_bytes.wait_ns(bytes, now_ns) != 0) return false;
  m_ops.consume_anyway(1, now_ns);
  m_bytes.consume_anyway(bytes, now_ns);
  return true;
}

void RateLimiter::consume_anyway(uint64_t bytes, uint64_t now_ns) {
  m_ops.consume_anyway(1, now_ns);
  m_bytes.consume_anyway(bytes, now_ns);
}

void RateLimiter::apply(const RateLimiterPatch& patch, uint64_t now_ns) {
  if (patch.bandwidth) m_bytes = TokenBucket(*patch.bandwidth, now_ns);
  if (patch.ops) m_ops = TokenBucket(*patch.ops, now_ns);
}

RateLimiterState RateLimiter::save(uint64_t now_ns) {
  return {m_bytes.save(now_ns), m_ops.save(now_ns)};
}

Result<RateLimiter> RateLimiter::restore(const RateLimiterState& state, uint64_t now_ns) {
  RateLimiter l;
  l.m_bytes = TRY(TokenBucket::restore(state.bandwidth, now_ns).context("bandwidth"));
  l.m_ops = TRY(TokenBucket::restore(state.ops, now_ns).context("ops"));
  return l;
}

uint64_t RateLimiter::wait_ns(uint64_t bytes, uint64_t now_ns) {
  return std::max(m_ops.wait_ns(1, now_ns), m_bytes.wait_ns(bytes, now_ns));
}

}  // namespace doppel
