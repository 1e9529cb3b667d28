// Arbitrary bytes as what a client sends on the API socket, through the server's own code:
// HttpConnection (Beast's parser, the limits, keep-alive and pipelining) into ApiRouter
// (JSON bodies, every route) and a FakeVmControl.
// Input: one selector byte, then the rest.
//   selector bit 7 set: the rest is a JSON body, PUT/PATCHed to the route picked by bits 0-3
//                       (reaches the routes' parsers without first finding HTTP)
//   otherwise:          the rest is the raw byte stream, fed in pieces of (bits 0-3) + 1
//                       bytes, so that every split of a request is exercised
//   bits 4-5:           the VM's state (not started, running, paused)
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "api/api_router.h"
#include "api/fake_vm_control.h"
#include "api/http.h"
#include "base/log.h"

namespace {

constexpr std::string_view kRoutes[] = {
    "PUT /machine-config",
    "PUT /boot-source",
    "PUT /drives/rootfs",
    "PUT /network-interfaces/eth0",
    "PUT /actions",
    "PUT /snapshot/create",
    "PUT /snapshot/load",
    "PATCH /vm",
    "GET /",
    "GET /machine-config",
    "GET /vm/config",
    "PUT /drives/",
    "PUT /migrate",
    "DELETE /vm",
    "GET /metrics",
    "GET /version",
};

void check(std::string_view out) {
  // Whatever came in, what goes out is HTTP responses.
  if (!out.empty() && !out.starts_with("HTTP/1.")) std::abort();
}

// A deferred answer (PUT /migrate) runs here, as the server's job thread would run it.
bool run_deferred(doppel::HttpConnection& connection, std::string& out, bool open) {
  while (auto job = connection.take_deferred()) open = connection.complete(job(), out);
  return open;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const bool quiet = [] {
    spdlog::set_level(spdlog::level::off);
    return true;
  }();
  (void)quiet;
  if (size == 0) return 0;
  const uint8_t selector = data[0];
  const std::string_view rest(reinterpret_cast<const char*>(data + 1), size - 1);

  doppel::FakeVmControl control;
  if ((selector >> 4 & 3) == 1) control.set_state(doppel::VmState::kRunning);
  if ((selector >> 4 & 3) == 2) control.set_state(doppel::VmState::kPaused);
  doppel::ApiRouter router(control);
  doppel::HttpConnection connection([&](const doppel::HttpRequest& r) { return router.handle(r); });
  std::string out;

  if (selector & 0x80) {
    const std::string request = std::string(kRoutes[selector & 15]) +
                                " HTTP/1.1\r\nContent-Length: " + std::to_string(rest.size()) + "\r\n\r\n" +
                                std::string(rest);
    run_deferred(connection, out, connection.feed(request, out));
    check(out);
    return 0;
  }
  const size_t piece = (selector & 15u) + 1;
  for (size_t at = 0; at < rest.size(); at += piece) {
    const bool open = run_deferred(connection, out, connection.feed(rest.substr(at, piece), out));
    check(out);
    out.clear();
    if (!open) break;
  }
  return 0;
}
