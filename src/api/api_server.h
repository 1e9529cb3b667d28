// The control API server: Firecracker's HTTP API (where doppel has the concept) on a Unix
// socket, translated into VmControl calls by ApiRouter (api_router.h lists the routes).
//
// The vmm creates one after it has a VmControl and keeps it for the process's life:
//   auto server = TRY(ApiServer::create(api_sock, control));
//   ...                     // requests are served on the server's own thread
//   server.reset();         // or server->stop(): closes it and removes the socket file
#pragma once

#include <memory>
#include <string>

#include "api/api_router.h"
#include "api/http.h"
#include "base/result.h"
#include "vmm/vm_control.h"

namespace doppel {

class ApiServer {
 public:
  // Binds `socket_path` (a stale socket file is replaced; a path that is not a socket is an
  // error) and starts serving. `control` must outlive the server; it is called from the
  // server's thread, one request at a time.
  static Result<std::unique_ptr<ApiServer>> create(const std::string& socket_path, VmControl& control);
  ~ApiServer() { stop(); }
  ApiServer(const ApiServer&) = delete;
  ApiServer& operator=(const ApiServer&) = delete;

  // Closes the socket and every connection, waits for a request in progress, removes the
  // socket file. Idempotent. Not from inside a VmControl call made by this server.
  void stop();

  const std::string& socket_path() const { return m_http->socket_path(); }

 private:
  explicit ApiServer(VmControl& control) : m_router(control) {}

  ApiRouter m_router;                  // used only by m_http's thread
  std::unique_ptr<HttpServer> m_http;  // declared after m_router: stops before it goes
};

}  // namespace doppel
