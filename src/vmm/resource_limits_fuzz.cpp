// libFuzzer: the resource limits' texts as a flag or a VM file gives them (--cpu-quota,
// --memory-limit, --io-limit, --pids-limit, "limits"). Beyond "no crash, no UB": what parses
// prints back to the same values, and a quota is within 1% to 800% of a CPU.
#include <cstdlib>
#include <string>

#include <nlohmann/json.hpp>

#include "vmm/resource_limits.h"
#include "vmm/vm_config.h"

using namespace doppel;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  if (auto q = parse_cpu_quota(text); q.ok()) {
    if (*q < 1000 || *q > 800000) std::abort();
    auto again = parse_cpu_quota(cpu_quota_text(*q));
    if (!again.ok() || *again != *q) std::abort();
  }
  (void)parse_memory_limit(text);
  (void)parse_pids_limit(text);
  if (auto io = parse_io_limit(text); io.ok()) {
    auto again = parse_io_limit(io_limit_text(*io));
    if (!again.ok() || again->read_bps != io->read_bps || again->write_bps != io->write_bps ||
        again->read_iops != io->read_iops || again->write_iops != io->write_iops)
      std::abort();
  }
  const auto doc = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object()) return 0;
  VmConfig config;
  nlohmann::json limits_only = nlohmann::json::object();
  if (doc.contains("limits")) limits_only["limits"] = doc["limits"];
  (void)apply_json(config, limits_only);
  return 0;
}
