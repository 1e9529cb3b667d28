// libFuzzer: rate limiter settings as a VM file, an API body or a flag gives them (hostile
// numbers included), then the token bucket driven by the rest of the input. Beyond "no
// crash, no UB (no overflow)": a bucket never holds more than its size and burst, and after
// waiting the time wait_ns() named, the request goes.
#include <cstdlib>
#include <string>

#include <nlohmann/json.hpp>

#include "backends/rate_limiter.h"
#include "vmm/rate_limiter_config.h"

using namespace doppel;

namespace {

void drive(const TokenBucketConfig& config, const uint8_t* data, size_t size) {
  uint64_t now = 1;
  TokenBucket bucket(config, now);
  const auto cap = static_cast<__int128>(config.size) + config.one_time_burst;
  for (size_t i = 0; i + 9 <= size; i += 9) {
    uint64_t n = 0;
    for (int b = 0; b < 8; b++) n = n << 8 | data[i + static_cast<size_t>(b)];
    if (data[i + 8] & 1) n &= 0xffffff;  // mostly request-sized numbers
    switch (data[i + 8] >> 6) {
      case 0: (void)bucket.try_consume(n, now); break;
      case 1: bucket.consume_anyway(n & 0xffffffff, now); break;
      case 2: now += n & 0xffffffffff; break;  // up to ~18 minutes
      case 3: {
        const uint64_t wait = bucket.wait_ns(n, now);
        // Saturated (centuries), or a clock past 2^62 ns (146 years of uptime): not real.
        if (!bucket.enabled() || wait >= (1ull << 62) || now >= (1ull << 62)) break;
        now += wait;
        if (!bucket.try_consume(n, now)) std::abort();
        break;
      }
    }
    if (bucket.enabled() && bucket.budget(now) > cap) std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // The input up to the first newline is the setting; the rest drives the bucket.
  size_t line = 0;
  while (line < size && data[line] != '\n') line++;
  const std::string text(reinterpret_cast<const char*>(data), line);
  const uint8_t* rest = data + std::min(size, line + 1);
  const size_t rest_size = size - std::min(size, line + 1);
  if (auto b = parse_bucket_spec(text); b.ok()) drive(*b, rest, rest_size);
  const auto doc = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return 0;
  if (auto limits = rate_limiter_from_json(doc, "rate_limiter"); limits.ok()) {
    drive(limits->bandwidth, rest, rest_size);
    // What is parsed prints back to the same limits (a disabled bucket is not printed).
    auto again = rate_limiter_from_json(rate_limiter_to_json(*limits), "rate_limiter");
    if (!again.ok()) std::abort();
    for (auto [a, b] : {std::pair{&limits->bandwidth, &again->bandwidth}, std::pair{&limits->ops, &again->ops}})
      if (a->enabled() ? !(*a == *b) : b->enabled()) std::abort();
  }
  (void)rate_limiter_patch_from_json(doc, "rate_limiter");
  return 0;
}
