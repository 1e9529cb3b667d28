#include "api/api_client.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <mutex>
#include <optional>
#include <thread>

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

// Waits for PUT /migrate's answer on one connection while it polls GET /migrate on
// others, and shows the progress on stderr: a bar redrawn in place on a terminal, a line per
// round otherwise.
Result<std::string> migrate(const CtlOptions& options) {
  json body = {{"destination", options.destination}};
  if (options.downtime_ms) body["downtime_ms"] = options.downtime_ms;
  if (options.max_bandwidth) body["max_bandwidth"] = options.max_bandwidth;
  if (options.compress) body["compress"] = "zstd";
  std::mutex mutex;
  std::condition_variable done_cv;
  std::optional<Result<std::string>> outcome;  // GUARDED_BY(mutex)
  std::thread request([&] {
    auto r = call(options.socket_path, "PUT", "/migrate", body.dump(-1, ' ', false, json::error_handler_t::replace));
    std::lock_guard lock(mutex);
    outcome = std::move(r);
    done_cv.notify_all();
  });
  const bool terminal = ::isatty(STDERR_FILENO) == 1;
  unsigned last_round = 0;
  bool drawn = false;
  for (;;) {
    {
      std::unique_lock lock(mutex);
      if (done_cv.wait_for(lock, std::chrono::milliseconds(200), [&] { return outcome.has_value(); })) break;
    }
    auto reply = call(options.socket_path, "GET", "/migrate");
    if (!reply) continue;
    const json status = json::parse(*reply, nullptr, /*allow_exceptions=*/false);
    if (!status.is_object() || status.value("status", "") != "active") continue;
    if (terminal) {
      fmt::print(stderr, "\r{}\x1b[K", migration_progress_line(status, 30));
      drawn = true;
    } else if (const unsigned round = status.value("rounds", 0u); round != last_round) {
      fmt::print(stderr, "{}\n", migration_progress_line(status, 0));
      last_round = round;
    }
  }
  request.join();
  if (drawn) fmt::print(stderr, "\n");
  return pretty(TRY(std::move(*outcome)));
}

}  // namespace

std::string migration_progress_line(const json& status, unsigned bar_width) {
  const auto num = [&](const char* key) { return status.contains(key) && status[key].is_number() ? status[key].get<double>() : 0.0; };
  const double pages = num("round_pages"), sent = num("round_pages_sent");
  const double fraction = pages > 0 ? std::clamp(sent / pages, 0.0, 1.0) : 0.0;
  std::string line;
  if (bar_width) {
    const auto filled = static_cast<unsigned>(fraction * bar_width + 0.5);
    line = fmt::format("[{}{}] ", std::string(filled, '#'), std::string(bar_width - filled, ' '));
  }
  line += fmt::format("round {}: {:.0f}/{:.0f} pages ({:.0f}%), {:.1f} MiB sent", num("rounds"), sent, pages,
                      fraction * 100, num("bytes_sent") / (1 << 20));
  if (num("rounds") > 1)
    line += fmt::format(", dirtied {:.0f} pages/s, expected downtime {:.1f} ms", num("dirty_pages_per_s"),
                        num("expected_downtime_ms"));
  return line;
}

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
