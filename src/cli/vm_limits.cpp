#include "cli/vm_limits.h"

#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <filesystem>

#include "sandbox/files.h"
#include "sandbox/supervisor.h"

namespace doppel {
namespace {

// The whole disk of a partition: cgroups throttle whole disks only.
std::pair<uint32_t, uint32_t> whole_disk(uint32_t major, uint32_t minor) {
  const std::string sys = fmt::format("/sys/dev/block/{}:{}", major, minor);
  if (::access((sys + "/partition").c_str(), F_OK) != 0) return {major, minor};
  auto dev = sandbox::read_file(sys + "/../dev");
  unsigned a = 0, b = 0;
  if (dev.ok() && std::sscanf(dev.value().c_str(), "%u:%u", &a, &b) == 2) return {a, b};
  return {major, minor};
}

}  // namespace

Result<void> apply_limit_flags(const LimitFlags& flags, ResourceLimits& limits) {
  auto limit = [](const std::optional<std::string>& flag, const char* name, auto parse,
                  auto& field) -> Result<void> {
    if (!flag) return {};
    auto v = parse(*flag);
    if (!v) return v.error().context(name);
    field = *v;
    return {};
  };
  TRY(limit(flags.cpu_quota, "--cpu-quota", parse_cpu_quota, limits.cpu_quota_us));
  TRY(limit(flags.memory_limit, "--memory-limit", parse_memory_limit, limits.memory_bytes));
  TRY(limit(flags.io_limit, "--io-limit", parse_io_limit, limits.io));
  TRY(limit(flags.pids_limit, "--pids-limit", parse_pids_limit, limits.pids));
  return {};
}

Result<sandbox::Resources> cgroup_resources(const VmConfig& config, bool unified, bool have_memsw) {
  const ResourceLimits& l = config.limits;
  sandbox::Resources r;
  if (l.cpu_quota_us) {
    r.cpu_quota = static_cast<int64_t>(*l.cpu_quota_us);
    r.cpu_period = kCpuPeriodUs;
  }
  if (l.memory_bytes) {
    r.memory_limit = static_cast<int64_t>(*l.memory_bytes);
    // No swap beyond the limit: memory+swap equals memory (v1 memsw, v2 swap.max 0).
    if (unified || have_memsw) r.memory_swap = r.memory_limit;
  }
  if (l.pids) r.pids_limit = static_cast<int64_t>(*l.pids);
  if (l.io.any()) {
    if (config.disks.empty()) return Error("--io-limit: the VM has no --disk to limit");
    for (const DiskConfig& disk : config.disks) {
      struct stat st {};
      if (::stat(disk.path.c_str(), &st) != 0) return Error::from_errno(fmt::format("--io-limit: {}", disk.path));
      if (::major(st.st_dev) == 0)
        return Error::format("--io-limit: {} is on a filesystem without a block device (device 0:{}); cgroups "
                             "throttle block devices only",
                             disk.path, ::minor(st.st_dev));
      auto [maj, min] = whole_disk(::major(st.st_dev), ::minor(st.st_dev));
      bool seen = false;
      for (auto& t : r.io_throttle) seen |= (t.major == maj && t.minor == min);
      if (seen) continue;
      r.io_throttle.push_back({maj, min, l.io.read_bps, l.io.write_bps, l.io.read_iops, l.io.write_iops});
    }
  }
  return r;
}

Result<int> run_limited(const VmConfig& config, const std::string& cgroup_path, const std::string& label,
                        unsigned long clone_flags, const std::function<void(pid_t)>& on_started,
                        const std::function<int()>& body) {
  auto probe = TRY(sandbox::Cgroup::open(cgroup_path));
  bool have_memsw = false;
  if (!probe.unified()) {
    const std::string mem = probe.dir_of("memory");
    // The hierarchy's root (the new cgroup does not exist yet) says whether swap is accounted.
    const std::string root = mem.substr(0, mem.size() - cgroup_path.size());
    have_memsw = !mem.empty() && ::access((root + "/memory.memsw.limit_in_bytes").c_str(), F_OK) == 0;
  }
  sandbox::SupervisorOptions options;
  options.cgroup_path = cgroup_path;
  options.resources = TRY(cgroup_resources(config, probe.unified(), have_memsw));
  options.clone_flags = clone_flags;
  options.label = label;
  if (config.limits.memory_bytes) {
    const uint64_t b = *config.limits.memory_bytes;
    options.memory_limit_text = b % (1u << 20) == 0 ? fmt::format("{}M", b >> 20) : fmt::format("{} bytes", b);
  }
  options.on_started = on_started;
  return sandbox::run_supervised(options, body);
}

}  // namespace doppel
