#include "vmm/rate_limiter_config.h"

#include <charconv>

#include <nlohmann/json.hpp>

#include "vmm/vm_config.h"

namespace doppel {

using json = nlohmann::json;

namespace {

Result<uint64_t> parse_ms(std::string_view text) {
  uint64_t ms = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), ms);
  if (ec != std::errc() || ptr != text.data() + text.size())
    return Error::format("refill time '{}' is not a number of milliseconds", text);
  if (ms > kMaxRefillTimeMs) return Error::format("refill time {} ms is more than a day ({} ms)", ms, kMaxRefillTimeMs);
  return ms;
}

}  // namespace

Result<TokenBucketConfig> parse_bucket_spec(std::string_view text) {
  const size_t slash = text.find('/');
  if (slash == std::string_view::npos)
    return Error::format("'{}' is not SIZE/MS[+BURST] (e.g. 10M/1000: 10 MiB per second)", text);
  TokenBucketConfig b;
  b.size = TRY(parse_disk_size(text.substr(0, slash)));
  std::string_view rest = text.substr(slash + 1);
  const size_t plus = rest.find('+');
  if (plus != std::string_view::npos) {
    b.one_time_burst = TRY(parse_disk_size(rest.substr(plus + 1)));
    rest = rest.substr(0, plus);
  }
  b.refill_time_ms = TRY(parse_ms(rest));
  return b;
}

Result<bool> parse_rate_option(std::string_view option, std::string_view prefix, RateLimiterConfig& limits) {
  if (!option.starts_with(prefix)) return false;
  const std::string_view o = option.substr(prefix.size());
  TokenBucketConfig* bucket = nullptr;
  std::string_view value;
  if (o.starts_with("bw=")) {
    bucket = &limits.bandwidth;
    value = o.substr(3);
  } else if (o.starts_with("ops=")) {
    bucket = &limits.ops;
    value = o.substr(4);
  } else {
    return false;
  }
  *bucket = TRY(parse_bucket_spec(value));
  return true;
}

static Result<TokenBucketConfig> bucket_from_json(const json& node, const std::string& path) {
  if (!node.is_object()) return Error::format("{}: must be an object, got {}", path, node.type_name());
  TokenBucketConfig b;
  for (const auto& [key, value] : node.items()) {
    uint64_t* field = key == "size"             ? &b.size
                      : key == "refill_time"    ? &b.refill_time_ms
                      : key == "one_time_burst" ? &b.one_time_burst
                                                : nullptr;
    if (!field) return Error::format("{}.{}: unknown key (known: size, refill_time, one_time_burst)", path, key);
    if (!value.is_number_unsigned())
      return Error::format("{}.{}: must be a non-negative integer, got {}", path, key,
                           value.is_number() ? value.dump() : std::string(value.type_name()));
    *field = value.get<uint64_t>();
  }
  if (!node.contains("size") || !node.contains("refill_time"))
    return Error::format("{}: needs size and refill_time", path);
  if (b.refill_time_ms > kMaxRefillTimeMs)
    return Error::format("{}.refill_time: {} ms is more than a day ({} ms)", path, b.refill_time_ms, kMaxRefillTimeMs);
  return b;
}

Result<RateLimiterConfig> rate_limiter_from_json(const json& node, std::string_view path) {
  if (!node.is_object()) return Error::format("{}: must be an object, got {}", path, node.type_name());
  RateLimiterConfig limits;
  for (const auto& [key, value] : node.items()) {
    if (key == "bandwidth") limits.bandwidth = TRY(bucket_from_json(value, fmt::format("{}.bandwidth", path)));
    else if (key == "ops") limits.ops = TRY(bucket_from_json(value, fmt::format("{}.ops", path)));
    else return Error::format("{}.{}: unknown key (known: bandwidth, ops)", path, key);
  }
  return limits;
}

Result<RateLimiterPatch> rate_limiter_patch_from_json(const json& node, std::string_view path) {
  const RateLimiterConfig limits = TRY(rate_limiter_from_json(node, path));
  RateLimiterPatch patch;
  if (node.contains("bandwidth")) patch.bandwidth = limits.bandwidth;
  if (node.contains("ops")) patch.ops = limits.ops;
  return patch;
}

json rate_limiter_to_json(const RateLimiterConfig& limits) {
  json out = json::object();
  auto bucket = [](const TokenBucketConfig& b) {
    json j = {{"size", b.size}, {"refill_time", b.refill_time_ms}};
    if (b.one_time_burst) j["one_time_burst"] = b.one_time_burst;
    return j;
  };
  if (limits.bandwidth.enabled()) out["bandwidth"] = bucket(limits.bandwidth);
  if (limits.ops.enabled()) out["ops"] = bucket(limits.ops);
  return out;
}

}  // namespace doppel
