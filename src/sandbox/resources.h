// What a cgroup limits (the OCI spec's linux.resources, and a VM's --cpu-quota,
// --memory-limit, --io-limit, --pids-limit), and device nodes. Shared by the container
// runtime (src/oci) and the jailer.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace doppel::sandbox {

struct Device {
  char type = 'c';  // 'c', 'b', 'p' ('u' is read as 'c')
  std::string path;
  int64_t major = 0;
  int64_t minor = 0;
  uint32_t file_mode = 0666;
  uint32_t uid = 0;
  uint32_t gid = 0;
};

struct DeviceRule {
  bool allow = false;
  char type = 'a';  // 'a', 'c', 'b'
  int64_t major = -1;  // -1: any ('*')
  int64_t minor = -1;
  std::string access = "rwm";
};

// Throttling of one block device (v2 io.max, v1 blkio.throttle.*); unset: no limit.
struct IoThrottle {
  uint32_t major = 0, minor = 0;
  std::optional<uint64_t> read_bps, write_bps, read_iops, write_iops;
};

struct Resources {
  std::optional<int64_t> memory_limit, memory_reservation, memory_swap;
  std::optional<uint64_t> cpu_shares;
  std::optional<int64_t> cpu_quota;
  std::optional<uint64_t> cpu_period;
  std::string cpuset_cpus, cpuset_mems;
  std::optional<int64_t> pids_limit;
  std::optional<uint16_t> blkio_weight;
  std::vector<IoThrottle> io_throttle;
  std::vector<DeviceRule> devices;
  std::map<std::string, std::string> unified;  // cgroup v2 files, written as given
};

}  // namespace doppel::sandbox
