#include "api/api_router.h"

#include <unistd.h>

#include <algorithm>
#include <exception>
#include <filesystem>
#include <initializer_list>
#include <optional>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "base/bits.h"
#include "vmm/rate_limiter_config.h"

namespace doppel {

using json = nlohmann::json;

namespace {

constexpr uint64_t kMaxMemoryMib = 1ull << 24;  // 16 TiB: keeps mem_size_mib * MiB far from overflow
constexpr size_t kMaxIdLength = 64;             // Firecracker's limit on drive and interface ids

// Never throws: strings from the request may hold invalid UTF-8.
std::string dump(const json& value) { return value.dump(-1, ' ', false, json::error_handler_t::replace); }

HttpResponse fault(unsigned status, std::string_view message) {
  return {status, dump(json{{"fault_message", message}}), "", {}};
}
HttpResponse ok_json(const json& value) { return {200, dump(value), "", {}}; }
HttpResponse no_content() { return {204, "", "", {}}; }
HttpResponse not_allowed(std::string_view method, std::string_view path, std::string_view allow) {
  HttpResponse response =
      fault(405, fmt::format("{} is not allowed on {} (allowed: {})", method, path, allow));
  response.allow = std::string(allow);
  return response;
}

// GET /migrate, and PUT /migrate's answer.
json migration_json(const MigrationStatus& s) {
  json j = {{"status", to_string(s.state)}};
  if (s.state == MigrationStatus::State::kNone) return j;
  j.update({{"destination", s.destination},
            {"shared_memory", s.shared_memory},
            {"rounds", s.rounds},
            {"ram_bytes", s.ram_bytes},
            {"bytes_sent", s.bytes},
            {"pages_sent", s.pages},
            {"zero_pages", s.zero_pages},
            {"round_pages", s.round_pages},
            {"round_pages_sent", s.round_pages_sent},
            {"bandwidth_bytes_per_s", s.bandwidth},
            {"dirty_pages_per_s", s.dirty_rate},
            {"expected_downtime_ms", s.expected_downtime_ms},
            {"downtime_ms", s.downtime_ms},
            {"total_ms", s.total_ms}});
  if (s.state == MigrationStatus::State::kFailed) j["error"] = s.error;
  return j;
}

// A value as an error message shows it: scalars as JSON, short; containers by kind only
// (dumping a deeply nested one would recurse).
std::string describe(const json& value) {
  switch (value.type()) {
    case json::value_t::object: return "an object";
    case json::value_t::array: return "an array";
    default: {
      std::string text = dump(value);
      if (text.size() > 64) text = text.substr(0, 60) + "...";
      return text;
    }
  }
}

// The same defaults as `doppel run` without --cmdline.
// The fields of one JSON object in a request body. Errors name the resource and the field
// ("machine-config: vcpu_count: expected an integer, got \"two\""). A null value counts as
// absent, as serde's Option does in Firecracker.
class Fields {
 public:
  Fields(std::string_view resource, const json& object, std::string prefix = {})
      : m_resource(resource), m_object(object), m_prefix(std::move(prefix)) {}

  Error fail(std::string_view key, std::string_view why) const {
    return Error::format("{}: {}{}: {}", m_resource, m_prefix, key, why);
  }

  Result<void> only(std::initializer_list<std::string_view> known) const {
    for (const auto& [key, value] : m_object.items()) {
      if (std::find(known.begin(), known.end(), key) != known.end()) continue;
      std::string list;
      for (auto k : known) list += fmt::format("{}{}{}", list.empty() ? "" : ", ", m_prefix, k);
      return Error::format("{}: unknown field '{}{}' (known: {})", m_resource, m_prefix, key, list);
    }
    return {};
  }

  bool has(const char* key) const {
    const auto it = m_object.find(key);
    return it != m_object.end() && !it->is_null();
  }
  const json& at(const char* key) const { return m_object.at(key); }

  Result<std::string> string(const char* key) const {
    if (!has(key)) return fail(key, "is required");
    const json& v = at(key);
    if (!v.is_string()) return fail(key, fmt::format("expected a string, got {}", describe(v)));
    std::string text = v.get<std::string>();
    if (text.empty()) return fail(key, "is empty");
    return text;
  }
  Result<std::optional<std::string>> optional_string(const char* key) const {
    if (!has(key)) return std::optional<std::string>();
    const json& v = at(key);
    if (!v.is_string()) return fail(key, fmt::format("expected a string, got {}", describe(v)));
    return std::optional<std::string>(v.get<std::string>());
  }
  Result<bool> boolean(const char* key, bool absent) const {
    if (!has(key)) return absent;
    const json& v = at(key);
    if (!v.is_boolean()) return fail(key, fmt::format("expected true or false, got {}", describe(v)));
    return v.get<bool>();
  }
  // A required integer in [low, high].
  Result<uint64_t> integer(const char* key, uint64_t low, uint64_t high) const {
    if (!has(key)) return fail(key, "is required");
    const json& v = at(key);
    if (!v.is_number_integer()) return fail(key, fmt::format("expected an integer, got {}", describe(v)));
    if (v.is_number_unsigned()) {
      const uint64_t n = v.get<uint64_t>();
      if (n >= low && n <= high) return n;
    }
    return fail(key, fmt::format("expected an integer from {} to {}, got {}", low, high, describe(v)));
  }
  // A nested object, for a Fields of its own.
  Result<const json*> object(const char* key) const {
    if (!has(key)) return fail(key, "is required");
    const json& v = at(key);
    if (!v.is_object()) return fail(key, fmt::format("expected an object, got {}", describe(v)));
    return &v;
  }
  Result<const json*> array(const char* key) const {
    const json& v = at(key);
    if (!v.is_array()) return fail(key, fmt::format("expected an array, got {}", describe(v)));
    return &v;
  }

 private:
  std::string_view m_resource;
  const json& m_object;
  std::string m_prefix;  // "mem_backend." for a nested object, "drives[1]." for an element
};

Result<json> parse_object(std::string_view resource, const std::string& body) {
  if (body.empty()) return Error::format("{}: the request needs a JSON body", resource);
  json doc;
  try {
    doc = json::parse(body);
  } catch (const json::exception& e) {
    // "[json.exception.parse_error.101] parse error at line 1, column 2: ..." without the tag.
    std::string_view what = e.what();
    if (const size_t end = what.find("] "); what.starts_with("[json.exception") && end != what.npos)
      what.remove_prefix(end + 2);
    return Error::format("{}: malformed JSON: {}", resource, what);
  }
  if (!doc.is_object())
    return Error::format("{}: the body must be a JSON object, got {}", resource, describe(doc));
  return doc;
}

// A file the VM will open, checked when it is configured so that the error names the field.
Result<void> check_file(const Fields& fields, const char* key, const std::string& path, bool need_write) {
  if (::access(path.c_str(), need_write ? (R_OK | W_OK) : R_OK) != 0)
    return fields.fail(key, Error::from_errno(path).message());
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec))
    return fields.fail(key, fmt::format("{}: Is a directory", path));
  return {};
}

Result<void> check_id(std::string_view resource, std::string_view what, std::string_view id) {
  const bool valid =
      !id.empty() && id.size() <= kMaxIdLength && std::all_of(id.begin(), id.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
      });
  if (!valid)
    return Error::format("{}: {} must be 1 to {} letters, digits or '_'", resource, what, kMaxIdLength);
  return {};
}

Result<std::string> tap_name(const Fields& fields, const char* key) {
  std::string name = TRY(fields.string(key));
  if (name.size() >= 16) return fields.fail(key, fmt::format("'{}' is longer than 15 characters", name));
  return name;
}

Result<std::optional<MacAddress>> guest_mac(const Fields& fields, const char* key) {
  const auto text = TRY(fields.optional_string(key));
  if (!text) return std::optional<MacAddress>();
  auto mac = parse_mac(*text);
  if (!mac) return fields.fail(key, mac.error().message());
  return std::optional<MacAddress>(*mac);
}

}  // namespace

HttpResponse ApiRouter::handle(const HttpRequest& request) {
  std::string_view path = request.target;
  path = path.substr(0, path.find_first_of("?#"));  // a query string is ignored
  try {
    auto response = route(request.method, path, request.body);
    if (!response) {
      spdlog::debug("api: {} {}: {}", request.method, path, response.error().message());
      return fault(400, response.error().message());
    }
    return response.release_value();
  } catch (const std::exception& e) {
    return fault(500, fmt::format("internal error: {}", e.what()));
  }
}

Result<HttpResponse> ApiRouter::route(std::string_view method, std::string_view path,
                                      const std::string& body) {
  const auto action = [](Result<void> result) -> Result<HttpResponse> {
    TRY(std::move(result));
    return no_content();
  };
  const bool get = method == "GET", put = method == "PUT", patch = method == "PATCH";

  if (path == "/") return get ? get_root() : not_allowed(method, path, "GET");
  if (path == "/version")
    return get ? ok_json({{"vmm_version", m_control.info().vmm_version}}) : not_allowed(method, path, "GET");
  if (path == "/vm/config") return get ? get_vm_config() : not_allowed(method, path, "GET");
  if (path == "/metrics") return get ? ok_json(m_control.metrics()) : not_allowed(method, path, "GET");
  if (path == "/machine-config") {
    if (get) return get_machine_config();
    if (put) return action(put_machine_config(body));
    return not_allowed(method, path, "GET, PUT");
  }
  if (path == "/vm") return patch ? action(patch_vm(body)) : not_allowed(method, path, "PATCH");
  if (path == "/snapshot/create")
    return put ? action(put_snapshot_create(body)) : not_allowed(method, path, "PUT");
  if (path == "/snapshot/load")
    return put ? action(put_snapshot_load(body)) : not_allowed(method, path, "PUT");
  if (path == "/actions") return put ? action(put_actions(body)) : not_allowed(method, path, "PUT");
  if (path == "/migrate") {
    if (get) return ok_json(migration_json(m_control.migration_status()));
    if (put) return put_migrate(body);
    return not_allowed(method, path, "GET, PUT");
  }
  if (path == "/boot-source") return put ? action(put_boot_source(body)) : not_allowed(method, path, "PUT");
  if (path == "/vsock") return put ? action(put_vsock(body)) : not_allowed(method, path, "PUT");

  for (std::string_view collection : {"/drives", "/network-interfaces"}) {
    if (!path.starts_with(collection)) continue;
    std::string_view id = path.substr(collection.size());
    if (!id.empty() && id.front() != '/') break;  // "/drivesX": unknown
    if (!id.empty()) id.remove_prefix(1);
    if (id.find('/') != id.npos) break;
    if (!put && !patch) return not_allowed(method, path, "PUT, PATCH");
    const bool drives = collection == "/drives";
    if (id.empty())
      return Error::format("{}: the path needs an id: {} {}/{{{}}}", collection.substr(1), method, collection,
                           drives ? "drive_id" : "iface_id");
    if (patch) return action(patch_rate_limiters(drives, id, body));
    return action(drives ? put_drive(id, body) : put_network_interface(id, body));
  }
  return fault(404, fmt::format("no such resource: {}", path));
}

// ---- GET ----

HttpResponse ApiRouter::get_root() {
  const InstanceInfo info = m_control.info();
  return ok_json({{"id", info.id},
                  {"state", to_string(info.state)},
                  {"vmm_version", info.vmm_version},
                  {"app_name", info.app_name}});
}

HttpResponse ApiRouter::get_vm_config() {
  // Before boot the control has no VM; what a client configured so far is more useful.
  if (m_configured && m_control.info().state == VmState::kNotStarted)
    return ok_json(to_json(pending_config()));
  return ok_json(m_control.vm_config());
}

Result<HttpResponse> ApiRouter::get_machine_config() {
  uint64_t cpus = m_pending.cpus;
  uint64_t memory = m_pending.memory;
  Arch arch = m_pending.arch;
  EngineKind engine = m_pending.engine;
  if (m_control.info().state != VmState::kNotStarted) {
    // The VM's own configuration, in the VM file's shape (to_json).
    const json doc = m_control.vm_config();
    const auto machine = doc.find("machine");
    const auto bad = [] {
      return Error("machine-config: the VM's configuration has no usable machine section");
    };
    if (machine == doc.end() || !machine->is_object()) return bad();
    const auto c = machine->find("cpus");
    const auto m = machine->find("memory");
    if (c == machine->end() || !c->is_number_unsigned() || m == machine->end() || !m->is_string())
      return bad();
    cpus = c->get<uint64_t>();
    auto bytes = parse_memory_size(m->get<std::string>());
    if (!bytes) return bad();
    memory = *bytes;
    if (const auto a = machine->find("arch"); a != machine->end() && a->is_string())
      if (auto parsed = parse_arch(a->get<std::string>())) arch = *parsed;
    if (const auto e = machine->find("engine"); e != machine->end() && e->is_string())
      if (auto parsed = parse_engine(e->get<std::string>())) engine = *parsed;
  }
  return ok_json({{"vcpu_count", cpus},
                  {"mem_size_mib", memory / MiB},
                  {"smt", false},
                  {"arch", to_string(arch)},
                  {"engine", to_string(engine)}});
}

// ---- actions ----

Result<void> ApiRouter::patch_vm(const std::string& body) {
  const json doc = TRY(parse_object("vm", body));
  const Fields fields("vm", doc);
  TRY(fields.only({"state"}));
  const std::string state = TRY(fields.string("state"));
  if (state == "Paused") return m_control.pause();
  if (state == "Resumed") return m_control.resume();
  return fields.fail("state",
                     fmt::format("expected \"Paused\" or \"Resumed\", got {}", describe(fields.at("state"))));
}

Result<void> ApiRouter::put_snapshot_create(const std::string& body) {
  constexpr std::string_view kResource = "snapshot/create";
  const json doc = TRY(parse_object(kResource, body));
  const Fields fields(kResource, doc);
  TRY(fields.only({"snapshot_type", "snapshot_path", "mem_file_path"}));
  SnapshotCreateRequest request;
  if (const auto type = TRY(fields.optional_string("snapshot_type"))) {
    if (*type == "Full")
      request.type = SnapshotType::kFull;
    else if (*type == "Diff")
      request.type = SnapshotType::kDiff;
    else
      return fields.fail("snapshot_type", fmt::format("expected \"Full\" or \"Diff\", got {}",
                                                      describe(fields.at("snapshot_type"))));
  }
  request.snapshot_path = TRY(fields.string("snapshot_path"));
  request.mem_file_path = TRY(fields.string("mem_file_path"));
  return m_control.create_snapshot(request);
}

Result<HttpResponse> ApiRouter::put_migrate(const std::string& body) {
  constexpr std::string_view kResource = "migrate";
  const json doc = TRY(parse_object(kResource, body));
  const Fields fields(kResource, doc);
  TRY(fields.only({"destination", "downtime_ms", "max_bandwidth", "max_rounds", "compress"}));
  MigrationRequest request;
  request.destination = TRY(fields.string("destination"));
  if (fields.has("downtime_ms"))
    request.downtime_ms = static_cast<double>(TRY(fields.integer("downtime_ms", 1, 3'600'000)));
  if (fields.has("max_bandwidth")) request.max_bandwidth = TRY(fields.integer("max_bandwidth", 0, UINT64_MAX));
  if (fields.has("max_rounds"))
    request.max_rounds = static_cast<unsigned>(TRY(fields.integer("max_rounds", 1, 1000)));
  if (auto compress = TRY(fields.optional_string("compress"))) {
    if (*compress != "zstd" && *compress != "none")
      return fields.fail("compress", fmt::format("expected \"zstd\" or \"none\", got {}", describe(*compress)));
    request.compress = *compress == "zstd";
  }
  // The answer comes when the migration is over; GET /migrate follows it meanwhile.
  HttpResponse response;
  response.deferred = [this, request] {
    auto status = m_control.migrate(request);
    if (!status) return fault(400, status.error().message());
    return ok_json(migration_json(*status));
  };
  return response;
}

Result<void> ApiRouter::put_snapshot_load(const std::string& body) {
  constexpr std::string_view kResource = "snapshot/load";
  const json doc = TRY(parse_object(kResource, body));
  const Fields fields(kResource, doc);
  TRY(fields.only(
      {"snapshot_path", "mem_backend", "mem_file_path", "resume_vm", "drives", "network_interfaces"}));
  SnapshotLoadRequest request;
  request.snapshot_path = TRY(fields.string("snapshot_path"));
  if (fields.has("mem_backend") && fields.has("mem_file_path"))
    return Error::format("{}: give mem_backend or mem_file_path, not both", kResource);
  if (fields.has("mem_file_path")) {
    request.mem_file_path = TRY(fields.string("mem_file_path"));  // Firecracker before 1.2
  } else {
    const Fields backend(kResource, *TRY(fields.object("mem_backend")), "mem_backend.");
    TRY(backend.only({"backend_type", "backend_path"}));
    const std::string type = TRY(backend.string("backend_type"));
    if (type != "File")
      return backend.fail("backend_type", fmt::format("{} is not supported (only \"File\")",
                                                      describe(backend.at("backend_type"))));
    request.mem_file_path = TRY(backend.string("backend_path"));
  }
  request.resume_vm = TRY(fields.boolean("resume_vm", false));

  if (fields.has("drives")) {
    const json& list = *TRY(fields.array("drives"));
    std::vector<DiskConfig> disks;
    for (size_t i = 0; i < list.size(); ++i) {
      const std::string prefix = fmt::format("drives[{}].", i);
      if (!list[i].is_object())
        return Error::format("{}: drives[{}]: expected an object, got {}", kResource, i, describe(list[i]));
      const Fields drive(kResource, list[i], prefix);
      TRY(drive.only({"path_on_host", "is_read_only"}));
      DiskConfig disk;
      disk.path = TRY(drive.string("path_on_host"));
      disk.read_only = TRY(drive.boolean("is_read_only", false));
      disks.push_back(std::move(disk));
    }
    request.disks = std::move(disks);
  }
  if (fields.has("network_interfaces")) {
    const json& list = *TRY(fields.array("network_interfaces"));
    std::vector<NetConfig> nets;
    for (size_t i = 0; i < list.size(); ++i) {
      if (!list[i].is_object())
        return Error::format("{}: network_interfaces[{}]: expected an object, got {}", kResource, i,
                             describe(list[i]));
      const Fields iface(kResource, list[i], fmt::format("network_interfaces[{}].", i));
      TRY(iface.only({"host_dev_name", "guest_mac"}));
      NetConfig net;
      net.tap = TRY(tap_name(iface, "host_dev_name"));
      net.mac = TRY(guest_mac(iface, "guest_mac"));
      nets.push_back(std::move(net));
    }
    request.nets = std::move(nets);
  }
  if (m_machine_config_set) {
    request.expect_arch = m_pending.arch;
    request.expect_engine = m_pending.engine;
  }
  return m_control.load_snapshot(request);
}

Result<void> ApiRouter::put_actions(const std::string& body) {
  const json doc = TRY(parse_object("actions", body));
  const Fields fields("actions", doc);
  TRY(fields.only({"action_type"}));
  const std::string type = TRY(fields.string("action_type"));
  if (type == "InstanceStart") return instance_start();
  if (type == "SendCtrlAltDel") return m_control.send_ctrl_alt_del();
  if (type == "FlushMetrics") return {};  // GET /metrics reads the counters directly
  return fields.fail("action_type",
                     fmt::format("expected \"InstanceStart\", \"SendCtrlAltDel\" or \"FlushMetrics\", got {}",
                                 describe(fields.at("action_type"))));
}

// ---- pre-boot configuration ----

Result<void> ApiRouter::check_pre_boot(std::string_view resource) {
  if (m_control.info().state != VmState::kNotStarted)
    return Error::format("{}: the VM is already running; pre-boot configuration is closed", resource);
  return {};
}

Result<void> ApiRouter::put_boot_source(const std::string& body) {
  constexpr std::string_view kResource = "boot-source";
  TRY(check_pre_boot(kResource));
  const json doc = TRY(parse_object(kResource, body));
  const Fields fields(kResource, doc);
  TRY(fields.only({"kernel_image_path", "initrd_path", "boot_args", "firmware_path", "boot_from"}));
  // doppel: boot_from "disk" (riscv64) boots Debian's U-Boot, which boots the first drive:
  // no kernel needed then (as `doppel run --boot disk`).
  const std::string from_text = TRY(fields.optional_string("boot_from")).value_or("kernel");
  auto from = parse_boot_from(from_text);
  if (!from) return from.error().context(fmt::format("{}: boot_from", kResource));
  const std::string kernel = *from == BootFrom::kDisk
                                 ? TRY(fields.optional_string("kernel_image_path")).value_or("")
                                 : TRY(fields.string("kernel_image_path"));
  if (!kernel.empty()) TRY(check_file(fields, "kernel_image_path", kernel, false));
  const std::string initrd = TRY(fields.optional_string("initrd_path")).value_or("");
  if (!initrd.empty()) TRY(check_file(fields, "initrd_path", initrd, false));
  // doppel: "none" runs the kernel itself in M-mode (as --firmware none).
  const std::string firmware = TRY(fields.optional_string("firmware_path")).value_or("");
  if (!firmware.empty() && firmware != kFirmwareNone)
    TRY(check_file(fields, "firmware_path", firmware, false));
  const std::string cmdline = TRY(fields.optional_string("boot_args")).value_or("");
  // A PUT replaces the whole resource, as in Firecracker.
  m_pending.kernel = kernel;
  m_pending.initrd = initrd;
  m_pending.firmware = firmware;
  m_pending.cmdline = cmdline;
  m_pending.boot_from = *from;
  m_boot_source_set = m_configured = true;
  return {};
}

Result<void> ApiRouter::put_machine_config(const std::string& body) {
  constexpr std::string_view kResource = "machine-config";
  TRY(check_pre_boot(kResource));
  const json doc = TRY(parse_object(kResource, body));
  const Fields fields(kResource, doc);
  TRY(fields.only({"vcpu_count", "mem_size_mib", "smt", "arch", "engine"}));
  const uint64_t cpus = TRY(fields.integer("vcpu_count", 1, kMaxCpus));
  const uint64_t mib = TRY(fields.integer("mem_size_mib", kMinMemory / MiB, kMaxMemoryMib));
  if (TRY(fields.boolean("smt", false)))
    return fields.fail("smt", "doppel has no SMT; only false is accepted");
  Arch arch = Arch::kRiscv64;
  if (const auto text = TRY(fields.optional_string("arch"))) {
    auto parsed = parse_arch(*text);
    if (!parsed) return fields.fail("arch", parsed.error().message());
    arch = *parsed;
  }
  EngineKind engine = natural_engine(arch);
  if (const auto text = TRY(fields.optional_string("engine"))) {
    auto parsed = parse_engine(*text);
    if (!parsed) return fields.fail("engine", parsed.error().message());
    engine = *parsed;
  }
  if (arch == Arch::kRiscv64 && engine == EngineKind::kKvm)
    return fields.fail("engine", "kvm runs x86_64 guests; riscv64 runs on emu");
  m_pending.cpus = static_cast<unsigned>(cpus);
  m_pending.memory = mib * MiB;
  m_pending.arch = arch;
  m_pending.engine = engine;
  m_configured = true;
  m_machine_config_set = true;
  return {};
}

Result<void> ApiRouter::put_drive(std::string_view id, const std::string& body) {
  const std::string resource = fmt::format("drives/{}", id);
  TRY(check_id(resource, "a drive id", id));
  TRY(check_pre_boot(resource));
  const json doc = TRY(parse_object(resource, body));
  const Fields fields(resource, doc);
  TRY(fields.only({"drive_id", "path_on_host", "is_read_only", "is_root_device", "rate_limiter"}));
  const std::string drive_id = TRY(fields.string("drive_id"));
  if (drive_id != id)
    return fields.fail("drive_id", fmt::format("'{}' differs from the path's '{}'", drive_id, id));
  Drive drive{std::string(id), {}, false};
  drive.disk.path = TRY(fields.string("path_on_host"));
  drive.disk.read_only = TRY(fields.boolean("is_read_only", false));
  drive.root = TRY(fields.boolean("is_root_device", false));
  if (fields.has("rate_limiter"))
    drive.disk.rate_limiter = TRY(rate_limiter_from_json(doc.at("rate_limiter"), "rate_limiter").context(resource));
  TRY(check_file(fields, "path_on_host", drive.disk.path, !drive.disk.read_only));
  for (const auto& other : m_drives)
    if (drive.root && other.root && other.id != drive.id)
      return fields.fail("is_root_device", fmt::format("drive '{}' is the root device already", other.id));

  const auto it = std::find_if(m_drives.begin(), m_drives.end(), [&](const Drive& d) { return d.id == id; });
  if (it != m_drives.end())
    *it = std::move(drive);
  else
    m_drives.push_back(std::move(drive));
  m_configured = true;
  return {};
}

Result<void> ApiRouter::put_network_interface(std::string_view id, const std::string& body) {
  const std::string resource = fmt::format("network-interfaces/{}", id);
  TRY(check_id(resource, "an interface id", id));
  TRY(check_pre_boot(resource));
  const json doc = TRY(parse_object(resource, body));
  const Fields fields(resource, doc);
  TRY(fields.only({"iface_id", "host_dev_name", "guest_mac", "rx_rate_limiter", "tx_rate_limiter"}));
  const std::string iface_id = TRY(fields.string("iface_id"));
  if (iface_id != id)
    return fields.fail("iface_id", fmt::format("'{}' differs from the path's '{}'", iface_id, id));
  Interface iface{std::string(id), {}};
  iface.net.tap = TRY(tap_name(fields, "host_dev_name"));
  iface.net.mac = TRY(guest_mac(fields, "guest_mac"));
  for (auto [key, field] : {std::pair{"rx_rate_limiter", &iface.net.rx_rate_limiter},
                            std::pair{"tx_rate_limiter", &iface.net.tx_rate_limiter}})
    if (fields.has(key)) *field = TRY(rate_limiter_from_json(doc.at(key), key).context(resource));
  for (const auto& other : m_interfaces)
    if (other.id != iface.id && other.net.tap == iface.net.tap)
      return fields.fail("host_dev_name",
                         fmt::format("'{}' is already used by interface '{}'", iface.net.tap, other.id));

  const auto it =
      std::find_if(m_interfaces.begin(), m_interfaces.end(), [&](const Interface& i) { return i.id == id; });
  if (it != m_interfaces.end())
    *it = std::move(iface);
  else
    m_interfaces.push_back(std::move(iface));
  m_configured = true;
  return {};
}

Result<void> ApiRouter::patch_rate_limiters(bool drive, std::string_view id, const std::string& body) {
  const std::string resource = fmt::format("{}/{}", drive ? "drives" : "network-interfaces", id);
  TRY(check_id(resource, drive ? "a drive id" : "an interface id", id));
  const json doc = TRY(parse_object(resource, body));
  const Fields fields(resource, doc);
  const char* id_key = drive ? "drive_id" : "iface_id";
  if (drive) TRY(fields.only({"drive_id", "rate_limiter"}));
  else TRY(fields.only({"iface_id", "rx_rate_limiter", "tx_rate_limiter"}));
  if (TRY(fields.string(id_key)) != id)
    return fields.fail(id_key, fmt::format("'{}' differs from the path's '{}'", TRY(fields.string(id_key)), id));
  // Which device: by the id it was PUT with (in the order the VM has them: a drive that is
  // the root device is the first disk); on a VM built from the command line or a VM file,
  // which has no ids, by its position: "0" is the first.
  RateLimiterUpdate update;
  update.kind = drive ? RateLimiterUpdate::Kind::kDisk : RateLimiterUpdate::Kind::kNet;
  std::optional<size_t> index;
  if (drive) {
    std::vector<std::string> order;
    for (const auto& d : m_drives)
      if (d.root) order.push_back(d.id);
    for (const auto& d : m_drives)
      if (!d.root) order.push_back(d.id);
    for (size_t i = 0; i < order.size(); i++)
      if (order[i] == id) index = i;
  } else {
    for (size_t i = 0; i < m_interfaces.size(); i++)
      if (m_interfaces[i].id == id) index = i;
  }
  const bool built_by_api = drive ? !m_drives.empty() : !m_interfaces.empty();
  if (!index && !built_by_api && std::all_of(id.begin(), id.end(), [](char c) { return c >= '0' && c <= '9'; }))
    index = static_cast<size_t>(std::stoul(std::string(id)));
  if (!index) return Error::format("{}: no such {}", resource, drive ? "drive" : "network interface");
  update.index = *index;
  if (drive) {
    if (fields.has("rate_limiter"))
      update.disk = TRY(rate_limiter_patch_from_json(doc.at("rate_limiter"), "rate_limiter").context(resource));
  } else {
    if (fields.has("rx_rate_limiter"))
      update.rx = TRY(rate_limiter_patch_from_json(doc.at("rx_rate_limiter"), "rx_rate_limiter").context(resource));
    if (fields.has("tx_rate_limiter"))
      update.tx = TRY(rate_limiter_patch_from_json(doc.at("tx_rate_limiter"), "tx_rate_limiter").context(resource));
  }
  return m_control.update_rate_limiters(update).context(resource);
}

Result<void> ApiRouter::put_vsock(const std::string& body) {
  constexpr std::string_view kResource = "vsock";
  TRY(check_pre_boot(kResource));
  const json doc = TRY(parse_object(kResource, body));
  const Fields fields(kResource, doc);
  TRY(fields.only({"vsock_id", "guest_cid", "uds_path"}));
  VsockConfig vsock;
  vsock.cid = static_cast<uint32_t>(TRY(fields.integer("guest_cid", 3, UINT32_MAX - 1)));
  vsock.uds = TRY(fields.string("uds_path"));
  // Guest connections go to "<uds_path>_<port>": room for the suffix in sun_path.
  if (vsock.uds.empty() || vsock.uds.size() > 96) return fields.fail("uds_path", "must be 1 to 96 bytes");
  m_pending.vsock = std::move(vsock);
  m_configured = true;
  return {};
}

VmConfig ApiRouter::pending_config() const {
  VmConfig config = m_pending;
  config.disks.clear();
  // The root device is the first disk, /dev/vda, as in Firecracker.
  const Drive* root = nullptr;
  for (const auto& d : m_drives)
    if (d.root) root = &d;
  if (root) config.disks.push_back(root->disk);
  for (const auto& d : m_drives)
    if (!d.root) config.disks.push_back(d.disk);
  config.nets.clear();
  for (const auto& i : m_interfaces) config.nets.push_back(i.net);
  if (config.cmdline.empty()) config.cmdline = default_cmdline(config.arch);
  if (root && config.cmdline.find("root=") == std::string::npos)
    config.cmdline += root->disk.read_only ? " root=/dev/vda ro" : " root=/dev/vda rw";
  return config;
}

Result<void> ApiRouter::instance_start() {
  constexpr std::string_view kWhat = "actions: InstanceStart";
  TRY(check_pre_boot(kWhat));
  if (!m_boot_source_set) return Error::format("{}: no kernel: PUT /boot-source first", kWhat);
  VmConfig config = pending_config();
  if (config.arch == Arch::kRiscv64 && config.firmware.empty())
    return Error::format("{}: riscv64 needs firmware_path (OpenSBI fw_dynamic.bin, or none) in /boot-source", kWhat);
  if (auto r = apply_boot_from(config); !r) return r.error().context(kWhat);
  // Files may have gone since their PUT, and the host's memory is checked only here.
  if (auto r = validate(config, host_memory_bytes()); !r) return r.error().context(kWhat);
  return m_control.start(config);
}

}  // namespace doppel
