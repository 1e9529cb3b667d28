#include "vmm/resource_limits.h"

#include <charconv>
#include <cmath>
#include <vector>

#include <fmt/format.h>

#include "vmm/vm_config.h"

namespace doppel {
namespace {

Result<uint64_t> parse_count(std::string_view text, std::string_view what) {
  uint64_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size())
    return Error::format("'{}': {} must be a whole number", text, what);
  return v;
}

}  // namespace

Result<uint64_t> parse_cpu_quota(std::string_view text) {
  std::string_view number = text;
  if (number.ends_with('%')) number.remove_suffix(1);
  double percent = 0;
  auto [end, ec] = std::from_chars(number.data(), number.data() + number.size(), percent);
  if (number.empty() || ec != std::errc() || end != number.data() + number.size() || !std::isfinite(percent))
    return Error::format("'{}': expected a share of one CPU such as 50% or 12.5%", text);
  // The kernel's floor is 1 ms per period; more than 8 vCPUs' worth is no limit at all.
  if (percent < 1 || percent > 100.0 * kMaxCpus)
    return Error::format("'{}': must be between 1% and {}%", text, 100 * kMaxCpus);
  return static_cast<uint64_t>(std::llround(percent * static_cast<double>(kCpuPeriodUs) / 100.0));
}

Result<uint64_t> parse_memory_limit(std::string_view text) {
  uint64_t bytes = TRY(parse_memory_size(text));
  if (bytes < (4ull << 20)) return Error::format("'{}': must be at least 4M", text);
  return bytes;
}

Result<IoLimits> parse_io_limit(std::string_view text) {
  IoLimits io;
  size_t start = 0;
  while (start <= text.size()) {
    size_t comma = text.find(',', start);
    std::string_view part = text.substr(start, comma == std::string_view::npos ? std::string_view::npos : comma - start);
    start = comma == std::string_view::npos ? text.size() + 1 : comma + 1;
    size_t eq = part.find('=');
    if (eq == std::string_view::npos)
      return Error::format("'{}': '{}' is not KEY=VALUE (bw, rbw, wbw, iops, riops, wiops)", text, part);
    std::string_view key = part.substr(0, eq), value = part.substr(eq + 1);
    uint64_t v = 0;
    if (key == "bw" || key == "rbw" || key == "wbw") {
      auto size = parse_disk_size(value);
      if (!size) return Error::format("'{}': {}: {}", text, key, size.error().message());
      v = *size;
    } else if (key == "iops" || key == "riops" || key == "wiops") {
      v = TRY(parse_count(value, key));
    } else {
      return Error::format("'{}': unknown key '{}' (bw, rbw, wbw, iops, riops, wiops)", text, key);
    }
    if (v == 0) return Error::format("'{}': {} must be more than 0", text, key);
    if (key == "bw" || key == "rbw") io.read_bps = v;
    if (key == "bw" || key == "wbw") io.write_bps = v;
    if (key == "iops" || key == "riops") io.read_iops = v;
    if (key == "iops" || key == "wiops") io.write_iops = v;
  }
  return io;
}

Result<uint64_t> parse_pids_limit(std::string_view text) {
  uint64_t v = TRY(parse_count(text, "the pids limit"));
  // Each vCPU, device worker and the API are threads: fewer than 8 cannot run a VM.
  if (v < 8 || v > (1u << 22)) return Error::format("'{}': must be between 8 and {}", text, 1u << 22);
  return v;
}

std::string cpu_quota_text(uint64_t quota_us) {
  return fmt::format("{}%", static_cast<double>(quota_us) * 100.0 / static_cast<double>(kCpuPeriodUs));
}

std::string io_limit_text(const IoLimits& io) {
  std::vector<std::string> parts;
  if (io.read_bps) parts.push_back(fmt::format("rbw={}", *io.read_bps));
  if (io.write_bps) parts.push_back(fmt::format("wbw={}", *io.write_bps));
  if (io.read_iops) parts.push_back(fmt::format("riops={}", *io.read_iops));
  if (io.write_iops) parts.push_back(fmt::format("wiops={}", *io.write_iops));
  return fmt::format("{}", fmt::join(parts, ","));
}

}  // namespace doppel
