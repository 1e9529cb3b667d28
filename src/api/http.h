// HTTP/1.1 over a Unix stream socket, for the control API: a server, the per-connection
// request parser it uses, and a one-request client. Boost.Beast parses and writes the
// messages, Boost.Asio moves the bytes; both stay inside http.cpp, the layer's only
// translation unit that includes them (they compile slowly). Callers see plain structs.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "base/result.h"

namespace doppel {

// Firecracker's limit (HTTP_MAX_PAYLOAD_SIZE). A larger body is refused with 400 as soon as
// its Content-Length is seen (or, when chunked, as soon as it grows past the limit), and
// the connection is closed without reading the rest.
constexpr size_t kMaxRequestBodyBytes = 50 * 1024;
constexpr size_t kMaxRequestHeaderBytes = 8 * 1024;

struct HttpRequest {
  std::string method;  // as sent: "GET", "PUT", ...
  std::string target;  // "/drives/rootfs"
  std::string body;
};

struct HttpResponse {
  unsigned status = 200;
  std::string body;   // JSON when not empty (Content-Type: application/json)
  std::string allow;  // the Allow header of a 405, e.g. "GET, PUT"
  // A request that takes long (PUT /migrate): the handler returns at once with `deferred`
  // set and the other fields unused; the server runs it on a thread of its own and sends
  // what it returns. Other connections are served meanwhile (GET /migrate follows the
  // migration); this connection's next request waits, since answers go in order.
  std::function<HttpResponse()> deferred;
};

// Called once per complete request, on the server's thread. Must not throw; if it does, the
// client gets a 500 and the connection stays open.
using HttpHandler = std::function<HttpResponse(const HttpRequest&)>;

// One connection's HTTP state, without I/O: bytes in, responses out. The server feeds it
// what it reads; the fuzzer feeds it arbitrary bytes. Requests on one connection are
// answered in order (pipelining is allowed). Not thread-safe: one thread per connection.
class HttpConnection {
 public:
  explicit HttpConnection(HttpHandler handler);
  ~HttpConnection();
  HttpConnection(const HttpConnection&) = delete;
  HttpConnection& operator=(const HttpConnection&) = delete;

  // Parses `bytes` after whatever was left over and answers every request completed by
  // them, appending the responses (and "100 Continue" lines) to `out`. Returns false when the
  // connection must be closed once `out` is sent: a malformed request (answered with 400),
  // a body over the limit, or a request that asked for Connection: close. Once it returned
  // false it ignores further bytes.
  bool feed(std::string_view bytes, std::string& out);

  // After a handler answered with `deferred`: feed() stops parsing (it keeps what it is
  // given) until complete(). take_deferred() hands the job out once; complete() appends
  // its response to `out`, goes on with the requests that came after it, and returns what
  // feed() would.
  std::function<HttpResponse()> take_deferred();
  bool complete(HttpResponse response, std::string& out);

 private:
  struct Impl;
  std::unique_ptr<Impl> m_impl;
};

// Serves HttpHandler on a Unix socket, on a thread of its own; requests are handled one
// at a time on that thread (several connections may be open).
class HttpServer {
 public:
  // Binds `socket_path`. A stale socket file (nobody accepting on it) is replaced; a live
  // one, or a path that exists and is not a socket, is an error naming the path.
  static Result<std::unique_ptr<HttpServer>> create(const std::string& socket_path, HttpHandler handler);
  ~HttpServer();  // stop()
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Closes the listening socket and every connection, waits for the request being handled
  // (if any), deferred ones included, and the thread, and removes the socket file. Idempotent. Any thread except the
  // server's own (not from inside the handler).
  void stop();

  const std::string& socket_path() const;

 private:
  struct Impl;
  explicit HttpServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> m_impl;
};

struct HttpReply {
  unsigned status = 0;
  std::string body;
};

// Client: connects to `socket_path`, sends one request (Content-Type: application/json
// when `body` is not empty), and returns the response. Blocking; errors name the socket.
Result<HttpReply> http_request(const std::string& socket_path, std::string_view method,
                               std::string_view target, std::string_view body = {});

}  // namespace doppel
