#include "api/api_client.h"

#include <cstdio>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "api/http.h"
#include "vmm/exit_codes.h"

namespace doppel {

using json = nlohmann::json;

namespace {

// One request; the response body of a 2xx, or the server's fault_message as the Error.
Result<std::string> call(const std::string& socket_path, std::string_view method, std::string_view target,
                         const std::string& body = {}) {
  const HttpReply reply = TRY(http_request(socket_path, method, target, body));
  if (reply.status >= 200 && reply.status < 300) return reply.body;
  const json doc = json::parse(reply.body, nullptr, /*allow_exceptions=*/false);
  if (doc.is_object() && doc.contains("fault_message") && doc["fault_message"].is_string())
    return Error(doc["fault_message"].get<std::string>());
  return Error::format("{} {}: HTTP {}{}{}", method, target, reply.status, reply.body.empty() ? "" : ": ",
                       reply.body);
}

std::string pretty(const std::string& body) {
  const json doc = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return body.ends_with('\n') ? body : body + "\n";
  return doc.dump(2, ' ', false, json::error_handler_t::replace) + "\n";
}

Result<std::string> snapshot(const CtlOptions& options) {
  namespace fs = std::filesystem;
  std::error_code ec;
  // The server resolves paths against its own working directory, not ours.
  const fs::path dir = fs::absolute(options.snapshot_dir, ec);
  if (ec) return Error::format("snapshot {}: {}", options.snapshot_dir, ec.message());
  fs::create_directories(dir, ec);
  if (ec) return Error::format("snapshot {}: {}", dir.string(), ec.message());
  const json body = {{"snapshot_type", options.diff ? "Diff" : "Full"},
                     {"snapshot_path", (dir / "state").string()},
                     {"mem_file_path", (dir / (options.diff ? "memory.diff" : "memory")).string()}};
  TRY(call(options.socket_path, "PUT", "/snapshot/create",
           body.dump(-1, ' ', false, json::error_handler_t::replace)));
  return std::string();
}

Result<std::string> migrate(const CtlOptions& options) {
  json body = {{"destination", options.destination}};
  if (options.downtime_ms) body["downtime_ms"] = options.downtime_ms;
  if (options.max_bandwidth) body["max_bandwidth"] = options.max_bandwidth;
  return pretty(TRY(call(options.socket_path, "PUT", "/migrate",
                         body.dump(-1, ' ', false, json::error_handler_t::replace))));
}

}  // namespace

Result<std::string> run_ctl(const CtlOptions& options) {
  using Command = CtlOptions::Command;
  switch (options.command) {
    case Command::kPause:
      TRY(call(options.socket_path, "PATCH", "/vm", R"({"state":"Paused"})"));
      return std::string();
    case Command::kResume:
      TRY(call(options.socket_path, "PATCH", "/vm", R"({"state":"Resumed"})"));
      return std::string();
    case Command::kInfo: return pretty(TRY(call(options.socket_path, "GET", "/")));
    case Command::kMetrics: return pretty(TRY(call(options.socket_path, "GET", "/metrics")));
    case Command::kSnapshot: return snapshot(options);
    case Command::kMigrate: return migrate(options);
    case Command::kCtrlAltDel:
      TRY(call(options.socket_path, "PUT", "/actions", R"({"action_type":"SendCtrlAltDel"})"));
      return std::string();
  }
  return Error("ctl: unknown command");
}

int ctl_main(const CtlOptions& options) {
  auto output = run_ctl(options);
  if (!output) {
    fmt::print(stderr, "doppel: {}\n", output.error().message());
    return kExitError;
  }
  fmt::print("{}", *output);
  return 0;
}

}  // namespace doppel
