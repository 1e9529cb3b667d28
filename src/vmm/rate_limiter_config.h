// Rate limiter settings (backends/rate_limiter.h) as the command line and VM files give them.
//
// Command line, inside --disk and --net: `bw=SIZE/MS[+BURST]` (bytes: SIZE and BURST take
// K, M, G suffixes, binary units) and `ops=N/MS[+BURST]`; --net has rx_bw, rx_ops, tx_bw,
// tx_ops. `bw=10M/1000` is 10 MiB per second. A size or refill time of 0 is no limit.
//
// VM file: Firecracker's shape,
//   "rate_limiter": {"bandwidth": {"size": N, "refill_time": MS, "one_time_burst": N},
//                    "ops": {...}}
// with "rx_rate_limiter" / "tx_rate_limiter" on a net.
#pragma once

#include <string_view>

#include <nlohmann/json_fwd.hpp>

#include "backends/rate_limiter.h"
#include "base/result.h"

namespace doppel {

// "SIZE/MS[+BURST]".
Result<TokenBucketConfig> parse_bucket_spec(std::string_view text);
// If `option` is `<prefix>bw=...` or `<prefix>ops=...`, parses it into `limits` and returns
// true; returns false for any other option.
Result<bool> parse_rate_option(std::string_view option, std::string_view prefix, RateLimiterConfig& limits);

// A rate_limiter object; `path` names it in messages ("disks[0].rate_limiter").
Result<RateLimiterConfig> rate_limiter_from_json(const nlohmann::json& node, std::string_view path);
nlohmann::json rate_limiter_to_json(const RateLimiterConfig& limits);
// The same object in a PATCH: only the buckets it names change.
Result<RateLimiterPatch> rate_limiter_patch_from_json(const nlohmann::json& node, std::string_view path);

}  // namespace doppel
