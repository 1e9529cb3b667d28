// A VM's resource limits (--cpu-quota, --memory-limit, --io-limit, --pids-limit, and the VM
// file's "limits"), enforced by a per-VM cgroup around the whole doppel process (src/cli's
// supervisor, src/sandbox/cgroup.h). This file only parses and prints them.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "base/result.h"

namespace doppel {

// Per block device holding one of the VM's disk images; unset: no limit.
struct IoLimits {
  std::optional<uint64_t> read_bps, write_bps, read_iops, write_iops;
  bool any() const { return read_bps || write_bps || read_iops || write_iops; }
};

struct ResourceLimits {
  // CPU time per 100 ms period, in microseconds: 50% is 50000, 200% two whole CPUs.
  std::optional<uint64_t> cpu_quota_us;
  std::optional<uint64_t> memory_bytes;  // the VMM's memory, guest RAM and overhead together
  IoLimits io;
  std::optional<uint64_t> pids;          // tasks (the VMM's threads count)
  bool any() const { return cpu_quota_us || memory_bytes || io.any() || pids; }
};

constexpr uint64_t kCpuPeriodUs = 100000;

// "50%", "12.5%" (a share of one CPU; more than 100% is more than one CPU).
Result<uint64_t> parse_cpu_quota(std::string_view text);
// "512M", "1G", a bare number is MiB (as --memory).
Result<uint64_t> parse_memory_limit(std::string_view text);
// "bw=10M,iops=1000": bw/rbw/wbw are bytes per second (K, M, G suffixes), iops/riops/wiops
// operations per second; bw and iops set both directions.
Result<IoLimits> parse_io_limit(std::string_view text);
Result<uint64_t> parse_pids_limit(std::string_view text);

// The texts the parsers read back: "50%", "536870912", "rbw=10485760,wbw=10485760".
std::string cpu_quota_text(uint64_t quota_us);
std::string io_limit_text(const IoLimits& io);

}  // namespace doppel
