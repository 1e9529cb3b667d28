// Host socket endpoints named the way QEMU names them: "tcp:HOST:PORT" or "unix:PATH"
// (live migration's source and destination; the gdb stub's listener).
//
// Threads: plain functions.
#pragma once

#include <cstdint>
#include <string>

#include "base/result.h"
#include "base/unique_fd.h"

namespace doppel {

struct Endpoint {
  enum class Kind { kTcp, kUnix } kind = Kind::kTcp;
  std::string host;  // kTcp: a name or address ("" or "0.0.0.0": any, to listen)
  uint16_t port = 0;
  std::string path;  // kUnix
  std::string text;  // as given, for messages
};

// "tcp:HOST:PORT", "tcp::PORT", "unix:PATH"; anything else is an error naming the text.
Result<Endpoint> parse_endpoint(const std::string& text);
// A listening socket (SO_REUSEADDR for TCP; an existing Unix socket file is replaced).
Result<UniqueFd> listen_endpoint(const Endpoint& endpoint);
// Waits for one connection on a listening socket.
Result<UniqueFd> accept_one(int listen_fd, const Endpoint& endpoint);
// A connected socket (TCP_NODELAY for TCP).
Result<UniqueFd> connect_endpoint(const Endpoint& endpoint);

}  // namespace doppel
