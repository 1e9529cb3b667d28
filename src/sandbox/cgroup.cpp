#include "sandbox/cgroup.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include <linux/magic.h>

#include "sandbox/device_filter.h"
#include "sandbox/files.h"

namespace doppel::sandbox {
namespace {

// Controllers doppel asks the v2 parent to delegate.
constexpr const char* kV2Controllers[] = {"cpu", "cpuset", "memory", "pids", "io"};

std::string join(const std::string& a, const std::string& b) {
  if (b.empty() || b == "/") return a;
  if (b[0] == '/') return a + b;
  return a + "/" + b;
}

// mkdir -p below `base`; for cpuset (v1) each new level copies its parent's cpus and mems,
// which the kernel leaves empty (an empty cpuset cannot take a process).
Result<std::vector<std::string>> make_dirs(const std::string& base, const std::string& rel, bool cpuset) {
  std::vector<std::string> made;
  std::string cur = base;
  std::stringstream ss(rel);
  std::string part;
  while (std::getline(ss, part, '/')) {
    if (part.empty()) continue;
    std::string parent = cur;
    cur += "/" + part;
    if (mkdir(cur.c_str(), 0755) == 0) {
      made.push_back(cur);
      if (cpuset) {
        for (const char* f : {"cpuset.cpus", "cpuset.mems"}) {
          auto v = read_file(parent + "/" + f);
          if (v.ok()) (void)write_file(cur + "/" + f, trim(v.value()));
        }
      }
    } else if (errno != EEXIST) {
      int e = errno;
      for (auto it = made.rbegin(); it != made.rend(); ++it) rmdir(it->c_str());
      return Error::from_errno(fmt::format("mkdir {}", cur), e);
    }
  }
  return made;
}

uint64_t shares_to_weight(uint64_t shares) {
  if (shares == 0) return 0;
  if (shares < 2) shares = 2;
  if (shares > 262144) shares = 262144;
  return 1 + ((shares - 2) * 9999) / 262142;
}

}  // namespace

namespace {

// The number after `key` in a "key value" per line file (memory.events, cpu.stat).
Result<uint64_t> keyed_value(const std::string& file, const std::string& key) {
  auto text = TRY(read_file(file));
  std::stringstream lines(text);
  std::string k;
  uint64_t v;
  while (lines >> k >> v)
    if (k == key) return v;
  return Error::format("{}: no '{}' line", file, key);
}

}  // namespace

Result<uint64_t> Cgroup::oom_kills() const {
  if (m_unified) return keyed_value(m_dirs[0].second + "/memory.events", "oom_kill");
  std::string dir = dir_of("memory");
  if (dir.empty()) return Error("the memory controller is not mounted");
  return keyed_value(dir + "/memory.oom_control", "oom_kill");
}

Result<uint64_t> Cgroup::cpu_usage_usec() const {
  if (m_unified) return keyed_value(m_dirs[0].second + "/cpu.stat", "usage_usec");
  std::string dir = dir_of("cpuacct");
  if (dir.empty()) return Error("the cpuacct controller is not mounted");
  auto text = TRY(read_file(dir + "/cpuacct.usage"));
  return std::strtoull(trim(text).c_str(), nullptr, 10) / 1000;
}

Result<Cgroup> Cgroup::open(const std::string& path, const std::string& cgroup_root) {
  Cgroup cg;
  cg.m_path = path;
  cg.m_root = cgroup_root;
  struct statfs st {};
  if (statfs(cgroup_root.c_str(), &st) != 0) return Error::from_errno(cgroup_root);
  if (st.f_type == CGROUP2_SUPER_MAGIC) return unified_at(path, cgroup_root);
  // v1 (or hybrid): every cgroup v1 mount below the root, from mountinfo.
  auto info = TRY(read_file("/proc/self/mountinfo"));
  std::stringstream lines(info);
  std::string line;
  while (std::getline(lines, line)) {
    // "id parent maj:min root mountpoint opts ... - fstype source superopts"
    auto dash = line.find(" - ");
    if (dash == std::string::npos) continue;
    std::stringstream head(line.substr(0, dash)), tail(line.substr(dash + 3));
    std::string id, parent, dev, root, mountpoint, fstype, source, superopts;
    head >> id >> parent >> dev >> root >> mountpoint;
    tail >> fstype >> source >> superopts;
    if (fstype != "cgroup") continue;
    if (mountpoint.rfind(cgroup_root + "/", 0) != 0) continue;
    std::string name = mountpoint.substr(cgroup_root.size() + 1);
    cg.m_dirs.emplace_back(name, join(mountpoint, path));
  }
  if (cg.m_dirs.empty()) return Error::format("{}: no cgroup v1 or v2 hierarchy is mounted", cgroup_root);
  return cg;
}

Cgroup Cgroup::unified_at(const std::string& path, const std::string& cgroup_root) {
  Cgroup cg;
  cg.m_path = path;
  cg.m_root = cgroup_root;
  cg.m_unified = true;
  cg.m_dirs.emplace_back("", join(cgroup_root, path));
  return cg;
}

std::string Cgroup::dir_of(const std::string& controller) const {
  for (auto& [name, dir] : m_dirs) {
    if (m_unified) return dir;
    std::stringstream ss(name);
    std::string part;
    while (std::getline(ss, part, ','))
      if (part == controller) return dir;
  }
  return "";
}

Result<void> Cgroup::create(const Resources& resources, const std::vector<Device>& devices) {
  std::vector<std::string> made;
  auto undo = [&] {
    for (auto it = made.rbegin(); it != made.rend(); ++it) rmdir(it->c_str());
  };
  if (m_unified) {
    // Delegate the controllers down to the new cgroup's parent.
    std::string cur = m_root;
    std::stringstream ss(m_path);
    std::string part;
    std::vector<std::string> parts;
    while (std::getline(ss, part, '/'))
      if (!part.empty()) parts.push_back(part);
    for (size_t i = 0; i < parts.size(); i++) {
      auto avail = read_file(cur + "/cgroup.controllers");
      if (avail.ok()) {
        std::set<std::string> have;
        std::stringstream cs(avail.value());
        std::string c;
        while (cs >> c) have.insert(c);
        for (const char* want : kV2Controllers)
          if (have.count(want)) (void)write_file(cur + "/cgroup.subtree_control", fmt::format("+{}", want));
      }
      cur += "/" + parts[i];
      if (mkdir(cur.c_str(), 0755) == 0) {
        made.push_back(cur);
      } else if (errno != EEXIST) {
        int e = errno;
        undo();
        return Error::from_errno(fmt::format("cgroup: mkdir {}", cur), e);
      }
    }
    auto w = write_v2(resources, devices);
    if (!w.ok()) {
      undo();
      return w.release_error().context("cgroup");
    }
    return ok();
  }
  for (auto& [name, dir] : m_dirs) {
    std::string mountpoint = dir.substr(0, dir.size() - (m_path == "/" ? 0 : m_path.size()));
    auto r = make_dirs(mountpoint, m_path, name.find("cpuset") != std::string::npos);
    if (!r.ok()) {
      undo();
      return r.release_error().context("cgroup");
    }
    for (auto& d : r.value()) made.push_back(d);
  }
  auto w = write_v1(resources, devices);
  if (!w.ok()) {
    undo();
    return w.release_error().context("cgroup");
  }
  return ok();
}

Result<void> Cgroup::write_v1(const Resources& r, const std::vector<Device>& spec_devices) const {
  std::string mem = dir_of("memory"), cpu = dir_of("cpu"), cpuset = dir_of("cpuset"),
              pids = dir_of("pids"), blkio = dir_of("blkio"), devices = dir_of("devices");
  auto need = [](const std::string& dir, const char* what) -> Result<void> {
    if (dir.empty()) return Error::format("the {} controller is not mounted", what);
    return ok();
  };
  if (r.memory_limit || r.memory_reservation || r.memory_swap) TRY(need(mem, "memory"));
  if (r.memory_limit) TRY(write_file(mem + "/memory.limit_in_bytes", fmt::format("{}", *r.memory_limit)));
  if (r.memory_swap) TRY(write_file(mem + "/memory.memsw.limit_in_bytes", fmt::format("{}", *r.memory_swap)));
  if (r.memory_reservation)
    TRY(write_file(mem + "/memory.soft_limit_in_bytes", fmt::format("{}", *r.memory_reservation)));
  if (r.cpu_shares || r.cpu_period || r.cpu_quota) TRY(need(cpu, "cpu"));
  if (r.cpu_shares && *r.cpu_shares) TRY(write_file(cpu + "/cpu.shares", fmt::format("{}", *r.cpu_shares)));
  if (r.cpu_period && *r.cpu_period) TRY(write_file(cpu + "/cpu.cfs_period_us", fmt::format("{}", *r.cpu_period)));
  if (r.cpu_quota && *r.cpu_quota) TRY(write_file(cpu + "/cpu.cfs_quota_us", fmt::format("{}", *r.cpu_quota)));
  if (!r.cpuset_cpus.empty() || !r.cpuset_mems.empty()) TRY(need(cpuset, "cpuset"));
  if (!r.cpuset_cpus.empty()) TRY(write_file(cpuset + "/cpuset.cpus", r.cpuset_cpus));
  if (!r.cpuset_mems.empty()) TRY(write_file(cpuset + "/cpuset.mems", r.cpuset_mems));
  if (r.pids_limit) {
    TRY(need(pids, "pids"));
    TRY(write_file(pids + "/pids.max", *r.pids_limit > 0 ? fmt::format("{}", *r.pids_limit) : "max"));
  }
  if (r.blkio_weight && *r.blkio_weight) {
    TRY(need(blkio, "blkio"));
    auto w = write_file(blkio + "/blkio.weight", fmt::format("{}", *r.blkio_weight));
    if (!w.ok()) TRY(write_file(blkio + "/blkio.bfq.weight", fmt::format("{}", *r.blkio_weight)));
  }
  if (!r.io_throttle.empty()) TRY(need(blkio, "blkio"));
  for (const IoThrottle& t : r.io_throttle) {
    auto limit = [&](const char* file, const std::optional<uint64_t>& v) -> Result<void> {
      if (!v) return ok();
      return write_file(blkio + "/" + file, fmt::format("{}:{} {}", t.major, t.minor, *v));
    };
    TRY(limit("blkio.throttle.read_bps_device", t.read_bps));
    TRY(limit("blkio.throttle.write_bps_device", t.write_bps));
    TRY(limit("blkio.throttle.read_iops_device", t.read_iops));
    TRY(limit("blkio.throttle.write_iops_device", t.write_iops));
  }
  if (!r.devices.empty() && !devices.empty()) {
    auto rule_text = [](const DeviceRule& d) {
      auto num = [](int64_t v) { return v < 0 ? std::string("*") : fmt::format("{}", v); };
      if (d.type == 'a') return std::string("a");
      return fmt::format("{} {}:{} {}", d.type, num(d.major), num(d.minor), d.access);
    };
    for (auto& d : container_device_rules(r.devices, spec_devices))
      TRY(write_file(devices + (d.allow ? "/devices.allow" : "/devices.deny"), rule_text(d)));
  }
  return ok();
}

Result<void> Cgroup::write_v2(const Resources& r, const std::vector<Device>& spec_devices) const {
  const std::string& dir = m_dirs[0].second;
  if (!r.devices.empty()) {
    // v2 has no devices.allow: a BPF program made from the same rules as v1's.
    auto program = TRY(device_filter_program(container_device_rules(r.devices, spec_devices)));
    UniqueFd fd = TRY(load_device_filter(program));
    TRY(attach_device_filter(dir, fd.get()));
  }
  if (r.memory_limit)
    TRY(write_file(dir + "/memory.max", *r.memory_limit < 0 ? "max" : fmt::format("{}", *r.memory_limit)));
  if (r.memory_reservation) TRY(write_file(dir + "/memory.low", fmt::format("{}", *r.memory_reservation)));
  if (r.memory_swap) {
    // The spec's swap is memory+swap (v1's memsw); v2's memory.swap.max is swap alone.
    std::string v = "max";
    if (*r.memory_swap >= 0 && r.memory_limit && *r.memory_limit >= 0) {
      if (*r.memory_swap < *r.memory_limit) return Error("memory.swap is below memory.limit");
      v = fmt::format("{}", *r.memory_swap - *r.memory_limit);
    }
    TRY(write_file(dir + "/memory.swap.max", v));
  }
  if (r.cpu_shares && *r.cpu_shares)
    TRY(write_file(dir + "/cpu.weight", fmt::format("{}", shares_to_weight(*r.cpu_shares))));
  if ((r.cpu_quota && *r.cpu_quota) || (r.cpu_period && *r.cpu_period)) {
    std::string quota = r.cpu_quota && *r.cpu_quota > 0 ? fmt::format("{}", *r.cpu_quota) : "max";
    TRY(write_file(dir + "/cpu.max", fmt::format("{} {}", quota, r.cpu_period.value_or(100000))));
  }
  if (!r.cpuset_cpus.empty()) TRY(write_file(dir + "/cpuset.cpus", r.cpuset_cpus));
  if (!r.cpuset_mems.empty()) TRY(write_file(dir + "/cpuset.mems", r.cpuset_mems));
  if (r.pids_limit)
    TRY(write_file(dir + "/pids.max", *r.pids_limit > 0 ? fmt::format("{}", *r.pids_limit) : "max"));
  if (r.blkio_weight && *r.blkio_weight)
    TRY(write_file(dir + "/io.weight", fmt::format("default {}", 1 + (*r.blkio_weight - 10) * 9999 / 990)));
  for (const IoThrottle& t : r.io_throttle) {
    auto limit = [](const char* key, const std::optional<uint64_t>& v) {
      return fmt::format(" {}={}", key, v ? fmt::format("{}", *v) : std::string("max"));
    };
    TRY(write_file(dir + "/io.max", fmt::format("{}:{}{}{}{}{}", t.major, t.minor, limit("rbps", t.read_bps),
                                                limit("wbps", t.write_bps), limit("riops", t.read_iops),
                                                limit("wiops", t.write_iops))));
  }
  for (auto& [file, value] : r.unified) TRY(write_file(dir + "/" + file, value));
  return ok();
}

Result<void> Cgroup::add_process(pid_t pid) const {
  for (auto& [name, dir] : m_dirs)
    TRY(write_file(dir + "/cgroup.procs", fmt::format("{}", pid)).context("cgroup"));
  return ok();
}

Result<void> Cgroup::destroy() const {
  for (auto& [name, dir] : m_dirs) {
    for (int attempt = 0;; attempt++) {
      if (rmdir(dir.c_str()) == 0 || errno == ENOENT) break;
      if (errno != EBUSY || attempt >= 100) return Error::from_errno(fmt::format("cgroup: rmdir {}", dir));
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }
  return ok();
}

Result<void> Cgroup::set_frozen(bool frozen) const {
  if (m_unified) return write_file(m_dirs[0].second + "/cgroup.freeze", frozen ? "1" : "0");
  std::string dir = dir_of("freezer");
  if (dir.empty()) return Error("the freezer controller is not mounted");
  TRY(write_file(dir + "/freezer.state", frozen ? "FROZEN" : "THAWED"));
  // FREEZING becomes FROZEN once every task stopped.
  for (int i = 0; frozen && i < 1000; i++) {
    auto s = read_file(dir + "/freezer.state");
    if (s.ok() && trim(s.value()) == "FROZEN") break;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return ok();
}

bool Cgroup::frozen() const {
  if (m_unified) {
    auto s = read_file(m_dirs[0].second + "/cgroup.events");
    return s.ok() && s.value().find("frozen 1") != std::string::npos;
  }
  std::string dir = dir_of("freezer");
  if (dir.empty()) return false;
  auto s = read_file(dir + "/freezer.state");
  return s.ok() && trim(s.value()) != "THAWED";
}

Result<std::vector<pid_t>> Cgroup::processes() const {
  std::string dir = m_unified ? m_dirs[0].second : dir_of("freezer");
  if (dir.empty()) dir = dir_of("pids");
  if (dir.empty()) dir = m_dirs[0].second;
  auto text = TRY(read_file(dir + "/cgroup.procs"));
  std::vector<pid_t> out;
  std::stringstream ss(text);
  long pid;
  while (ss >> pid) out.push_back(static_cast<pid_t>(pid));
  return out;
}

}  // namespace doppel::sandbox
