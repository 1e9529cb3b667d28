#include "vmm/vm_config.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <charconv>
#include <filesystem>
#include <fstream>
#include <limits>

#include <nlohmann/json.hpp>

#include "base/bits.h"
#include "vmm/rate_limiter_config.h"

namespace doppel {

using json = nlohmann::json;

std::string_view to_string(Arch arch) {
  switch (arch) {
    case Arch::kRiscv64: return "riscv64";
    case Arch::kX86_64: return "x86_64";
  }
  return "?";
}

std::string_view to_string(EngineKind engine) {
  switch (engine) {
    case EngineKind::kEmu: return "emu";
    case EngineKind::kKvm: return "kvm";
  }
  return "?";
}

Result<Arch> parse_arch(std::string_view text) {
  if (text == "riscv64") return Arch::kRiscv64;
  if (text == "x86_64" || text == "x86-64") return Arch::kX86_64;
  return Error::format("unknown architecture '{}' (riscv64, x86_64)", text);
}

Result<EngineKind> parse_engine(std::string_view text) {
  if (text == "emu") return EngineKind::kEmu;
  if (text == "kvm") return EngineKind::kKvm;
  return Error::format("unknown engine '{}' (emu, kvm)", text);
}

static Result<OnReboot> parse_on_reboot(std::string_view text) {
  if (text == "exit") return OnReboot::kExit;
  if (text == "restart") return OnReboot::kRestart;
  return Error::format("unknown value '{}' (exit, restart)", text);
}

Result<BootFrom> parse_boot_from(std::string_view text) {
  if (text == "kernel") return BootFrom::kKernel;
  if (text == "disk") return BootFrom::kDisk;
  return Error::format("unknown boot source '{}' (kernel, disk)", text);
}

std::string_view to_string(BootFrom from) { return from == BootFrom::kDisk ? "disk" : "kernel"; }

std::string firmware_to_load(const VmConfig& config) {
  return config.firmware == kFirmwareNone ? std::string() : config.firmware;
}

Result<void> apply_boot_from(VmConfig& config) {
  if (config.boot_from != BootFrom::kDisk) return {};
  if (config.arch != Arch::kRiscv64) return Error("--boot disk: riscv64 only (U-Boot on OpenSBI)");
  if (config.disks.empty()) return Error("--boot disk: no disk to boot from; give --disk PATH");
  if (config.firmware == kFirmwareNone)
    return Error("--boot disk: U-Boot runs in S-mode and needs firmware (OpenSBI), not 'none'");
  if (config.kernel.empty()) {
    if (::access(kUbootSmode, R_OK) != 0)
      return Error::from_errno(fmt::format("--boot disk: U-Boot {} (Debian package u-boot-qemu)",
                                           kUbootSmode));
    config.kernel = kUbootSmode;
  }
  return {};
}

Result<uint64_t> parse_memory_size(std::string_view text) {
  uint64_t number = 0;
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, number);
  if (ec != std::errc() || ptr == text.data())
    return Error::format("'{}' is not a size (a number with an optional K, M or G suffix)", text);
  std::string_view suffix(ptr, static_cast<size_t>(end - ptr));
  uint64_t unit = MiB;  // a bare number is MiB, as in QEMU's -m
  if (suffix == "K" || suffix == "k" || suffix == "KiB") unit = KiB;
  else if (suffix == "M" || suffix == "m" || suffix == "MiB") unit = MiB;
  else if (suffix == "G" || suffix == "g" || suffix == "GiB") unit = GiB;
  else if (!suffix.empty())
    return Error::format("'{}' has an unknown suffix '{}' (K, M or G)", text, suffix);
  if (number > std::numeric_limits<uint64_t>::max() / unit)
    return Error::format("'{}' is too large", text);
  return number * unit;
}

Result<uint64_t> parse_disk_size(std::string_view text) {
  uint64_t number = 0;
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, number);
  if (ec != std::errc() || ptr == text.data())
    return Error::format("'{}' is not a size (a number of bytes with an optional K, M, G or T suffix)", text);
  std::string_view suffix(ptr, static_cast<size_t>(end - ptr));
  uint64_t unit = 1;
  if (suffix == "K" || suffix == "k" || suffix == "KiB") unit = KiB;
  else if (suffix == "M" || suffix == "m" || suffix == "MiB") unit = MiB;
  else if (suffix == "G" || suffix == "g" || suffix == "GiB") unit = GiB;
  else if (suffix == "T" || suffix == "t" || suffix == "TiB") unit = 1024 * GiB;
  else if (!suffix.empty() && suffix != "B")
    return Error::format("'{}' has an unknown suffix '{}' (K, M, G or T)", text, suffix);
  if (number > std::numeric_limits<uint64_t>::max() / unit) return Error::format("'{}' is too large", text);
  return number * unit;
}

Result<MacAddress> parse_mac(std::string_view text) {
  MacAddress mac{};
  const auto bad = [&] { return Error::format("'{}' is not a MAC address (aa:bb:cc:dd:ee:ff)", text); };
  if (text.size() != 17) return bad();
  for (size_t i = 0; i < 6; ++i) {
    const char* p = text.data() + i * 3;
    if (i < 5 && p[2] != ':') return bad();
    auto [ptr, ec] = std::from_chars(p, p + 2, mac[i], 16);
    if (ec != std::errc() || ptr != p + 2) return bad();
  }
  if (mac[0] & 1) return Error::format("'{}' is a multicast MAC address", text);
  if (mac == MacAddress{})
    return Error::format("'{}' is the all-zero MAC address, which no interface can use", text);
  return mac;
}

// Splits "a,b,c" on commas.
static std::vector<std::string_view> split_commas(std::string_view text) {
  std::vector<std::string_view> parts;
  size_t start = 0;
  while (true) {
    const size_t comma = text.find(',', start);
    parts.push_back(text.substr(start, comma == std::string_view::npos ? comma : comma - start));
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  return parts;
}

Result<DiskConfig> parse_disk_spec(std::string_view text) {
  const auto parts = split_commas(text);
  DiskConfig disk;
  disk.path = std::string(parts[0]);
  if (disk.path.empty()) return Error::format("'{}': the path is empty", text);
  for (size_t i = 1; i < parts.size(); ++i) {
    if (parts[i] == "ro") {
      disk.read_only = true;
    } else if (parts[i] == "rw") {
      disk.read_only = false;
    } else if (parts[i].starts_with("format=")) {
      auto f = parse_disk_format(parts[i].substr(7));
      if (!f) return f.error().context(text);
      disk.format = *f;
    } else if (parts[i] == "locking=off" || parts[i] == "locking=on") {
      disk.locking = parts[i] == "locking=on";
    } else if (auto rate = parse_rate_option(parts[i], "", disk.rate_limiter); !rate || *rate) {
      if (!rate) return rate.error().context(text);
    } else {
      return Error::format("'{}': unknown option '{}' (ro, rw, format=raw|qcow2, locking=on|off, bw=SIZE/MS, "
                           "ops=N/MS)", text, parts[i]);
    }
  }
  return disk;
}

Result<NetConfig> parse_net_spec(std::string_view text) {
  NetConfig net;
  const auto parts = split_commas(text);
  if (parts[0] == "user") {
    net.user = true;
    for (size_t i = 1; i < parts.size(); ++i) {
      const auto part = parts[i];
      if (part.starts_with("hostfwd=")) {
        auto fwd = parse_hostfwd(part.substr(8));
        if (!fwd) return fwd.error().context(text);
        net.hostfwds.push_back(*fwd);
      } else if (part.starts_with("mac=")) {
        auto mac = parse_mac(part.substr(4));
        if (!mac) return mac.error().context(text);
        net.mac = *mac;
      } else {
        return Error::format("'{}': unknown option '{}' for a user network (hostfwd=..., mac=MAC)",
                             text, part);
      }
    }
    return net;
  }
  for (auto part : parts) {
    if (part.starts_with("tap=")) {
      net.tap = std::string(part.substr(4));
    } else if (part.starts_with("mac=")) {
      auto mac = parse_mac(part.substr(4));
      if (!mac) return mac.error().context(text);
      net.mac = *mac;
    } else if (auto rate = parse_rate_option(part, part.starts_with("rx_") ? "rx_" : "tx_",
                                             part.starts_with("rx_") ? net.rx_rate_limiter : net.tx_rate_limiter);
               !rate || *rate) {
      if (!rate) return rate.error().context(text);
    } else {
      return Error::format("'{}': unknown option '{}' (tap=NAME or user[,hostfwd=...], mac=MAC, rx_bw=, "
                           "rx_ops=, tx_bw=, tx_ops=)", text, part);
    }
  }
  if (net.tap.empty()) return Error::format("'{}': tap=NAME or user is required", text);
  if (net.tap.size() >= 16) return Error::format("'{}': TAP name '{}' is longer than 15 characters", text, net.tap);
  return net;
}

static Result<void> check_vsock(const VsockConfig& v) {
  if (v.cid < 3 || v.cid == UINT32_MAX)
    return Error::format("cid {} is reserved: give 3 to {}", v.cid, UINT32_MAX - 1);
  // Guest connections to port P go to "<uds>_P": room for "_4294967295" in sun_path (108).
  if (v.uds.empty() || v.uds.size() > 96)
    return Error::format("uds '{}': the path must be 1 to 96 bytes", v.uds);
  return {};
}

Result<VsockConfig> parse_vsock_spec(std::string_view text) {
  VsockConfig v;
  bool have_cid = false, have_uds = false;
  for (auto part : split_commas(text)) {
    if (part.starts_with("cid=")) {
      const auto num = part.substr(4);
      uint64_t cid = 0;
      const auto [p, ec] = std::from_chars(num.data(), num.data() + num.size(), cid);
      if (num.empty() || ec != std::errc() || p != num.data() + num.size() || cid > UINT32_MAX)
        return Error::format("'{}': cid '{}' is not a number from 3 to {}", text, num, UINT32_MAX - 1);
      v.cid = static_cast<uint32_t>(cid);
      have_cid = true;
    } else if (part.starts_with("uds=")) {
      v.uds = std::string(part.substr(4));
      have_uds = true;
    } else {
      return Error::format("'{}': unknown option '{}' (cid=N, uds=PATH)", text, part);
    }
  }
  if (!have_cid || !have_uds) return Error::format("'{}': needs cid=N and uds=PATH", text);
  if (auto r = check_vsock(v); !r) return r.error().context(text);
  return v;
}

static Result<void> check_cpus(uint64_t cpus) {
  if (cpus < 1 || cpus > kMaxCpus)
    return Error::format("must be between 1 and {}, got {}", kMaxCpus, cpus);
  return {};
}

static Result<void> check_memory(uint64_t bytes, uint64_t host_memory) {
  if (bytes < kMinMemory)
    return Error::format("{} bytes is too little: at least {} MiB", bytes, kMinMemory >> 20);
  if (bytes % (4 * KiB)) return Error::format("{} bytes is not a multiple of 4 KiB", bytes);
  if (host_memory && bytes > host_memory)
    return Error::format("{} MiB is more than the host's {} MiB", bytes >> 20, host_memory >> 20);
  return {};
}

// label names the thing: "--disk /x.img", or just the path inside a VM file's key.
static Result<void> check_readable(const std::string& path, bool need_write,
                                   std::string_view label = {}) {
  const std::string what = label.empty() ? path : fmt::format("{} {}", label, path);
  if (::access(path.c_str(), need_write ? (R_OK | W_OK) : R_OK) != 0) return Error::from_errno(what);
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) return Error::format("{}: Is a directory", what);
  return {};
}

// ---- JSON ----

namespace {

// Reads one JSON object, remembering its key path for messages, and refusing unknown keys.
class JsonReader {
 public:
  JsonReader(const json& node, std::string path) : m_node(node), m_path(std::move(path)) {}

  Result<void> expect_object() const {
    if (!m_node.is_object()) return fail("", fmt::format("must be an object, got {}", m_node.type_name()));
    return {};
  }
  Result<void> only_keys(std::initializer_list<std::string_view> allowed) const {
    for (const auto& [key, value] : m_node.items()) {
      bool known = false;
      for (auto a : allowed) known |= (a == key);
      if (!known) {
        std::string list;
        for (auto a : allowed) list += fmt::format("{}{}", list.empty() ? "" : ", ", a);
        return fail(key, fmt::format("unknown key (known: {})", list));
      }
    }
    return {};
  }
  bool has(const char* key) const { return m_node.contains(key); }
  const json& at(const char* key) const { return m_node.at(key); }
  std::string path(std::string_view key) const {
    return m_path.empty() ? std::string(key) : fmt::format("{}.{}", m_path, key);
  }
  Error fail(std::string_view key, std::string_view why) const {
    return Error::format("{}: {}", key.empty() ? m_path : path(key), why);
  }

  Result<std::string> string(const char* key) const {
    const json& v = at(key);
    if (!v.is_string()) return fail(key, fmt::format("must be a string, got {}", v.type_name()));
    return v.get<std::string>();
  }
  Result<bool> boolean(const char* key) const {
    const json& v = at(key);
    if (!v.is_boolean()) return fail(key, fmt::format("must be true or false, got {}", v.type_name()));
    return v.get<bool>();
  }
  Result<uint64_t> unsigned_int(const char* key) const {
    const json& v = at(key);
    if (!v.is_number_unsigned())
      return fail(key, fmt::format("must be a non-negative integer, got {}",
                                   v.is_number() ? v.dump() : std::string(v.type_name())));
    return v.get<uint64_t>();
  }

 private:
  const json& m_node;
  std::string m_path;
};

std::string resolve(const std::string& base_dir, const std::string& path) {
  if (path.empty() || base_dir.empty() || path.front() == '/') return path;
  return (std::filesystem::path(base_dir) / path).lexically_normal().string();
}

}  // namespace

static Result<void> apply_json_in(VmConfig& config, const json& doc, const std::string& base_dir) {
  JsonReader top(doc, "");
  if (!doc.is_object()) return Error::format("the top level must be an object, got {}", doc.type_name());
  TRY(top.only_keys({"machine", "boot", "disks", "nets", "console", "vsock", "limits"}));

  if (top.has("machine")) {
    JsonReader m(top.at("machine"), "machine");
    TRY(m.expect_object());
    TRY(m.only_keys({"arch", "engine", "cpus", "memory", "memory_shared", "on_reboot", "seccomp",
                     "jit", "jit_cache"}));
    if (m.has("arch")) {
      auto arch = parse_arch(TRY(m.string("arch")));
      if (!arch) return m.fail("arch", arch.error().message());
      config.arch = *arch;
    }
    if (m.has("engine")) {
      auto engine = parse_engine(TRY(m.string("engine")));
      if (!engine) return m.fail("engine", engine.error().message());
      config.engine = *engine;
    }
    if (m.has("cpus")) {
      const uint64_t cpus = TRY(m.unsigned_int("cpus"));
      if (auto r = check_cpus(cpus); !r) return m.fail("cpus", r.error().message());
      config.cpus = static_cast<unsigned>(cpus);
    }
    if (m.has("memory")) {
      const json& v = m.at("memory");
      uint64_t bytes = 0;
      if (v.is_string()) {
        auto parsed = parse_memory_size(v.get<std::string>());
        if (!parsed) return m.fail("memory", parsed.error().message());
        bytes = *parsed;
      } else if (v.is_number_unsigned()) {
        bytes = v.get<uint64_t>() * MiB;  // a bare number is MiB, as on the command line
      } else {
        return m.fail("memory", fmt::format("must be a size such as \"512M\" or a number of MiB, got {}",
                                            v.type_name()));
      }
      if (auto r = check_memory(bytes, 0); !r) return m.fail("memory", r.error().message());
      config.memory = bytes;
    }
    if (m.has("memory_shared")) config.memory_shared = TRY(m.boolean("memory_shared"));
    if (m.has("jit")) {
      auto v = parse_jit(TRY(m.string("jit")));
      if (!v) return m.fail("jit", v.error().message());
      config.jit = *v;
    }
    if (m.has("jit_cache")) {
      auto v = parse_memory_size(TRY(m.string("jit_cache")));
      if (!v) return m.fail("jit_cache", v.error().message());
      if (auto r = check_jit_cache(*v); !r) return m.fail("jit_cache", r.error().message());
      config.jit_cache = *v;
    }
    if (m.has("seccomp")) config.seccomp = TRY(m.boolean("seccomp"));
    if (m.has("on_reboot")) {
      auto v = parse_on_reboot(TRY(m.string("on_reboot")));
      if (!v) return m.fail("on_reboot", v.error().message());
      config.on_reboot = *v;
    }
  }

  if (top.has("boot")) {
    JsonReader b(top.at("boot"), "boot");
    TRY(b.expect_object());
    TRY(b.only_keys({"kernel", "initrd", "firmware", "cmdline", "from"}));
    for (auto [key, field] : {std::pair{"kernel", &config.kernel}, std::pair{"initrd", &config.initrd},
                              std::pair{"firmware", &config.firmware}}) {
      if (!b.has(key)) continue;
      const std::string value = TRY(b.string(key));
      if (field == &config.firmware && value == kFirmwareNone) {
        config.firmware = value;
        continue;
      }
      *field = resolve(base_dir, value);
      if (field->empty()) continue;
      if (auto r = check_readable(*field, false); !r) return b.fail(key, r.error().message());
    }
    if (b.has("cmdline")) config.cmdline = TRY(b.string("cmdline"));
    if (b.has("from")) {
      auto from = parse_boot_from(TRY(b.string("from")));
      if (!from) return b.fail("from", from.error().message());
      config.boot_from = *from;
    }
  }

  if (top.has("disks")) {
    const json& list = top.at("disks");
    if (!list.is_array()) return top.fail("disks", fmt::format("must be an array, got {}", list.type_name()));
    config.disks.clear();
    for (size_t i = 0; i < list.size(); ++i) {
      JsonReader d(list[i], fmt::format("disks[{}]", i));
      TRY(d.expect_object());
      TRY(d.only_keys({"path", "read_only", "format", "locking", "rate_limiter"}));
      if (!d.has("path")) return d.fail("path", "is required");
      DiskConfig disk;
      disk.path = resolve(base_dir, TRY(d.string("path")));
      if (d.has("read_only")) disk.read_only = TRY(d.boolean("read_only"));
      if (d.has("locking")) disk.locking = TRY(d.boolean("locking"));
      if (d.has("format")) {
        auto f = parse_disk_format(TRY(d.string("format")));
        if (!f) return d.fail("format", f.error().message());
        disk.format = *f;
      }
      if (d.has("rate_limiter")) disk.rate_limiter = TRY(rate_limiter_from_json(d.at("rate_limiter"), d.path("rate_limiter")));
      if (auto r = check_readable(disk.path, !disk.read_only); !r) return d.fail("path", r.error().message());
      config.disks.push_back(std::move(disk));
    }
  }

  if (top.has("nets")) {
    const json& list = top.at("nets");
    if (!list.is_array()) return top.fail("nets", fmt::format("must be an array, got {}", list.type_name()));
    config.nets.clear();
    for (size_t i = 0; i < list.size(); ++i) {
      JsonReader n(list[i], fmt::format("nets[{}]", i));
      TRY(n.expect_object());
      TRY(n.only_keys({"tap", "mac", "user", "hostfwd", "rx_rate_limiter", "tx_rate_limiter"}));
      NetConfig net;
      if (n.has("user")) net.user = TRY(n.boolean("user"));
      if (net.user == n.has("tap")) return n.fail("", "needs exactly one of \"tap\" or \"user\": true");
      if (net.user) {
        if (n.has("hostfwd")) {
          const json& fwds = n.at("hostfwd");
          if (!fwds.is_array()) return n.fail("hostfwd", fmt::format("must be an array, got {}", fwds.type_name()));
          for (size_t j = 0; j < fwds.size(); ++j) {
            const std::string key = fmt::format("hostfwd[{}]", j);
            if (!fwds[j].is_string()) return n.fail(key, fmt::format("must be a string, got {}", fwds[j].type_name()));
            auto fwd = parse_hostfwd(fwds[j].get<std::string>());
            if (!fwd) return n.fail(key, fwd.error().message());
            net.hostfwds.push_back(*fwd);
          }
        }
      } else {
        if (n.has("hostfwd")) return n.fail("hostfwd", "only for a user network (\"user\": true)");
        net.tap = TRY(n.string("tap"));
        if (net.tap.empty() || net.tap.size() >= 16) return n.fail("tap", "must be 1 to 15 characters");
      }
      if (n.has("mac")) {
        auto mac = parse_mac(TRY(n.string("mac")));
        if (!mac) return n.fail("mac", mac.error().message());
        net.mac = *mac;
      }
      for (auto [key, field] : {std::pair{"rx_rate_limiter", &net.rx_rate_limiter},
                                std::pair{"tx_rate_limiter", &net.tx_rate_limiter}})
        if (n.has(key)) *field = TRY(rate_limiter_from_json(n.at(key), n.path(key)));
      config.nets.push_back(std::move(net));
    }
  }

  if (top.has("vsock")) {
    // Firecracker's names: {"guest_cid": 3, "uds_path": "/tmp/v.sock"}.
    JsonReader v(top.at("vsock"), "vsock");
    TRY(v.expect_object());
    TRY(v.only_keys({"guest_cid", "uds_path"}));
    if (!v.has("guest_cid")) return v.fail("guest_cid", "is required");
    if (!v.has("uds_path")) return v.fail("uds_path", "is required");
    const uint64_t cid = TRY(v.unsigned_int("guest_cid"));
    if (cid > UINT32_MAX) return v.fail("guest_cid", fmt::format("{} is more than {}", cid, UINT32_MAX - 1));
    VsockConfig vsock{static_cast<uint32_t>(cid), resolve(base_dir, TRY(v.string("uds_path")))};
    if (auto r = check_vsock(vsock); !r) return v.fail("", r.error().message());
    config.vsock = std::move(vsock);
  }

  if (top.has("limits")) {
    // {"cpu_quota": "50%", "memory_limit": "512M", "io_limit": "bw=10M,iops=1000", "pids_limit": 64}
    JsonReader l(top.at("limits"), "limits");
    TRY(l.expect_object());
    TRY(l.only_keys({"cpu_quota", "memory_limit", "io_limit", "pids_limit"}));
    if (l.has("cpu_quota")) {
      auto q = parse_cpu_quota(TRY(l.string("cpu_quota")));
      if (!q) return l.fail("cpu_quota", q.error().message());
      config.limits.cpu_quota_us = *q;
    }
    if (l.has("memory_limit")) {
      auto m = parse_memory_limit(TRY(l.string("memory_limit")));
      if (!m) return l.fail("memory_limit", m.error().message());
      config.limits.memory_bytes = *m;
    }
    if (l.has("io_limit")) {
      auto io = parse_io_limit(TRY(l.string("io_limit")));
      if (!io) return l.fail("io_limit", io.error().message());
      config.limits.io = *io;
    }
    if (l.has("pids_limit")) {
      auto p = parse_pids_limit(std::to_string(TRY(l.unsigned_int("pids_limit"))));
      if (!p) return l.fail("pids_limit", p.error().message());
      config.limits.pids = *p;
    }
  }

  if (top.has("console")) {
    JsonReader c(top.at("console"), "console");
    TRY(c.expect_object());
    TRY(c.only_keys({"file", "socket"}));
    if (c.has("file") == c.has("socket")) return c.fail("", "needs exactly one of \"file\" or \"socket\"");
    ConsoleConfig console;
    console.kind = c.has("file") ? ConsoleConfig::Kind::kFile : ConsoleConfig::Kind::kSocket;
    console.path = resolve(base_dir, TRY(c.string(c.has("file") ? "file" : "socket")));
    config.console2 = std::move(console);
  }
  return {};
}

Result<void> apply_json(VmConfig& config, const json& doc) { return apply_json_in(config, doc, ""); }

Result<VmConfig> load_vm_file(const std::string& path, VmConfig defaults) {
  std::ifstream in(path);
  if (!in) return Error::from_errno(path);
  json doc;
  try {
    doc = json::parse(in, nullptr, /*allow_exceptions=*/true, /*ignore_comments=*/true);
  } catch (const json::parse_error& e) {
    // "[json.exception.parse_error.101] parse error at line 3, column 5: ...": the position
    // is what a user needs; the exception's id is not.
    std::string what = e.what();
    if (const size_t end = what.find("] "); what.starts_with("[json.exception") && end != std::string::npos)
      what.erase(0, end + 2);
    return Error::format("{}: not valid JSON: {}", path, what);
  }
  const std::string base_dir = std::filesystem::path(path).parent_path().string();
  if (auto r = apply_json_in(defaults, doc, base_dir); !r) return r.error().context(path);
  return defaults;
}

// One image twice in one VM, written through either: two writers corrupt it as two VMs
// would. And --console2 file= must not overwrite one of the VM's own disks.
static Result<void> check_files_distinct(const VmConfig& config) {
  std::vector<struct stat> disks(config.disks.size());
  for (size_t i = 0; i < config.disks.size(); ++i) {
    if (::stat(config.disks[i].path.c_str(), &disks[i]) != 0)
      return Error::from_errno(fmt::format("--disk {}", config.disks[i].path));
    for (size_t j = 0; j < i; ++j) {
      if (disks[i].st_dev != disks[j].st_dev || disks[i].st_ino != disks[j].st_ino) continue;
      if (config.disks[i].read_only && config.disks[j].read_only) continue;
      return Error::format("--disk {}: the same image as --disk #{} ({}); a VM writing one image "
                           "through two disks corrupts it (give it once, or both ,ro)",
                           config.disks[i].path, j + 1, config.disks[j].path);
    }
  }
  if (config.console2 && config.console2->kind == ConsoleConfig::Kind::kFile) {
    struct stat st {};
    if (::stat(config.console2->path.c_str(), &st) == 0) {
      for (size_t i = 0; i < disks.size(); ++i)
        if (st.st_dev == disks[i].st_dev && st.st_ino == disks[i].st_ino)
          return Error::format("--console2 file={}: is the VM's --disk #{}; refusing to overwrite it "
                               "with console output",
                               config.console2->path, i + 1);
    }
  }
  return {};
}

// The kernel reads at most COMMAND_LINE_SIZE - 1 bytes and stops at a NUL: anything beyond
// would be cut without a word. riscv64 Linux: 1024 (arch/riscv/include/uapi/asm/setup.h);
// x86_64: 2048, and the bzImage's own cmdline_size is checked again when it is loaded.
static Result<void> check_cmdline(const VmConfig& config) {
  const std::string& c = config.cmdline;
  if (const size_t nul = c.find('\0'); nul != std::string::npos)
    return Error::format("--cmdline: contains a NUL byte at offset {}; the kernel would read only "
                         "what comes before it", nul);
  const size_t limit = config.arch == Arch::kRiscv64 ? 1023 : 2047;
  if (c.size() > limit)
    return Error::format("--cmdline: {} bytes is too long: a {} Linux kernel reads at most {} "
                         "(COMMAND_LINE_SIZE {})",
                         c.size(), to_string(config.arch), limit, limit + 1);
  return {};
}

Result<void> validate_ranges(const VmConfig& config, uint64_t host_memory) {
  if (auto r = check_cpus(config.cpus); !r) return r.error().context(fmt::format("--cpus {}", config.cpus));
  if (auto r = check_memory(config.memory, host_memory); !r) return r.error().context("--memory");
  for (size_t i = 0; i < config.nets.size(); ++i)
    for (size_t j = 0; j < i; ++j)
      if (!config.nets[i].user && !config.nets[j].user && config.nets[i].tap == config.nets[j].tap)
        return Error::format("--net tap={}: given twice", config.nets[i].tap);
  // Two forwards of one host port cannot both listen (SO_REUSEADDR would let the second
  // silently share it on some hosts): refuse before anything is opened.
  std::vector<const HostFwd*> fwds;
  for (const auto& n : config.nets)
    for (const auto& f : n.hostfwds) {
      for (const HostFwd* g : fwds)
        if (g->udp == f.udp && g->host_port == f.host_port &&
            (g->host_addr.s_addr == f.host_addr.s_addr || g->host_addr.s_addr == INADDR_ANY ||
             f.host_addr.s_addr == INADDR_ANY))
          return Error::format("--net user,hostfwd={}: the host port is forwarded twice", to_string(f));
      fwds.push_back(&f);
    }
  if (config.arch == Arch::kRiscv64 && config.engine == EngineKind::kKvm)
    return Error("--engine kvm runs x86_64 guests; riscv64 runs on --engine emu");
  TRY(check_cmdline(config));
  if (config.arch != Arch::kRiscv64 && !config.firmware.empty())
    return Error::format("--firmware {}: riscv64 only; an x86_64 kernel is booted directly (the Linux "
                         "boot protocol, as Firecracker does), with no firmware",
                         config.firmware);
  return {};
}

Result<void> validate(const VmConfig& config, uint64_t host_memory) {
  TRY(validate_ranges(config, host_memory));
  if (config.kernel.empty()) return Error("no kernel: give --kernel or build the guest kit");
  TRY(check_readable(config.kernel, false, "--kernel"));
  if (!config.initrd.empty()) TRY(check_readable(config.initrd, false, "--initrd"));
  if (config.arch == Arch::kRiscv64 && config.firmware.empty())
    return Error("riscv64 needs firmware: give --firmware (OpenSBI fw_dynamic.bin, or none)");
  if (config.arch != Arch::kRiscv64 && config.firmware == kFirmwareNone)
    return Error("--firmware none: riscv64 only");
  if (!firmware_to_load(config).empty()) TRY(check_readable(config.firmware, false, "--firmware"));
  for (const auto& disk : config.disks) TRY(check_readable(disk.path, !disk.read_only, "--disk"));
  TRY(check_files_distinct(config));
  return {};
}

Result<bool> parse_jit(std::string_view text) {
  if (text == "on") return true;
  if (text == "off") return false;
  return Error::format("'{}': must be on or off", text);
}

Result<void> check_jit_cache(uint64_t bytes) {
  if (bytes < MiB || bytes > 1024 * MiB)
    return Error::format("{} bytes: the JIT cache must be between 1M and 1G", bytes);
  return {};
}

json to_json(const VmConfig& config) {
  json doc;
  doc["machine"] = {{"arch", to_string(config.arch)},
                    {"engine", to_string(config.engine)},
                    {"cpus", config.cpus},
                    {"memory", fmt::format("{}K", config.memory / KiB)},
                    {"memory_shared", config.memory_shared},
                    {"jit", config.jit ? "on" : "off"},
                    {"jit_cache", fmt::format("{}K", config.jit_cache / KiB)},
                    {"on_reboot", config.on_reboot == OnReboot::kExit ? "exit" : "restart"}};
  if (!config.seccomp) doc["machine"]["seccomp"] = false;  // the default (on) goes unsaid
  doc["boot"] = {{"kernel", config.kernel}, {"initrd", config.initrd},
                 {"firmware", config.firmware}, {"cmdline", config.cmdline},
                 {"from", to_string(config.boot_from)}};
  doc["disks"] = json::array();
  for (const auto& d : config.disks) {
    json disk = {{"path", d.path}, {"read_only", d.read_only}};
    if (d.format != DiskFormat::kAuto) disk["format"] = to_string(d.format);
    if (d.rate_limiter.enabled()) disk["rate_limiter"] = rate_limiter_to_json(d.rate_limiter);
    if (!d.locking) disk["locking"] = false;
    doc["disks"].push_back(disk);
  }
  doc["nets"] = json::array();
  for (const auto& n : config.nets) {
    json net = n.user ? json{{"user", true}} : json{{"tap", n.tap}};
    if (n.user) {
      net["hostfwd"] = json::array();
      for (const auto& f : n.hostfwds) net["hostfwd"].push_back(to_string(f));
    }
    if (n.mac)
      net["mac"] = fmt::format("{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", (*n.mac)[0], (*n.mac)[1],
                               (*n.mac)[2], (*n.mac)[3], (*n.mac)[4], (*n.mac)[5]);
    if (n.rx_rate_limiter.enabled()) net["rx_rate_limiter"] = rate_limiter_to_json(n.rx_rate_limiter);
    if (n.tx_rate_limiter.enabled()) net["tx_rate_limiter"] = rate_limiter_to_json(n.tx_rate_limiter);
    doc["nets"].push_back(net);
  }
  if (config.vsock) doc["vsock"] = {{"guest_cid", config.vsock->cid}, {"uds_path", config.vsock->uds}};
  if (config.console2)
    doc["console"][config.console2->kind == ConsoleConfig::Kind::kFile ? "file" : "socket"] =
        config.console2->path;
  if (config.limits.cpu_quota_us) doc["limits"]["cpu_quota"] = cpu_quota_text(*config.limits.cpu_quota_us);
  if (config.limits.memory_bytes) {
    const uint64_t bytes = *config.limits.memory_bytes;  // parse_memory_limit's units: K at least
    doc["limits"]["memory_limit"] = bytes % MiB == 0 ? fmt::format("{}M", bytes / MiB) : fmt::format("{}K", bytes / KiB);
  }
  if (config.limits.io.any()) doc["limits"]["io_limit"] = io_limit_text(config.limits.io);
  if (config.limits.pids) doc["limits"]["pids_limit"] = *config.limits.pids;
  return doc;
}

EngineKind natural_engine(Arch arch) {
  return arch == Arch::kX86_64 ? EngineKind::kKvm : EngineKind::kEmu;
}

std::string default_cmdline(Arch arch) {
  switch (arch) {
    case Arch::kRiscv64: return "console=ttyS0 earlycon panic=-1";
    // Firecracker's i8042 options: a keyboard only (no mouse port, no multiplexer), found
    // without PNP, and not probed (no LEDs, no scan code set changes).
    case Arch::kX86_64:
      return "console=ttyS0 reboot=k panic=-1 i8042.noaux i8042.nomux i8042.nopnp i8042.dumbkbd";
  }
  return "";
}

uint64_t host_memory_bytes() {
  const long pages = sysconf(_SC_PHYS_PAGES);
  const long page_size = sysconf(_SC_PAGESIZE);
  return pages > 0 && page_size > 0 ? static_cast<uint64_t>(pages) * static_cast<uint64_t>(page_size) : 0;
}

}  // namespace doppel
