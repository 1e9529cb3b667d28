// libFuzzer: parse_endpoint() on arbitrary text, as `--migrate-from` and PUT /migrate's
// "destination" give it. Beyond "no crash, no UB": what parses is TCP with a port from 1 to
// 65535 or Unix with a path that fits sockaddr_un.
#include <cstdlib>
#include <string>

#include <sys/un.h>

#include "backends/endpoint.h"

using namespace doppel;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  auto e = parse_endpoint(text);
  if (!e.ok()) return 0;
  if (e->kind == Endpoint::Kind::kTcp && e->port == 0) std::abort();
  if (e->kind == Endpoint::Kind::kUnix && (e->path.empty() || e->path.size() >= sizeof(sockaddr_un{}.sun_path)))
    std::abort();
  return 0;
}
