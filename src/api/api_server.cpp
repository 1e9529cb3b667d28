#include "api/api_server.h"

namespace doppel {

Result<std::unique_ptr<ApiServer>> ApiServer::create(const std::string& socket_path, VmControl& control) {
  std::unique_ptr<ApiServer> server(new ApiServer(control));
  ApiRouter* router = &server->m_router;
  server->m_http = TRY(HttpServer::create(
      socket_path, [router](const HttpRequest& request) { return router->handle(request); }));
  return server;
}

void ApiServer::stop() {
  if (m_http) m_http->stop();
}

}  // namespace doppel
