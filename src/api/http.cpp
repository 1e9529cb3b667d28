// The only translation unit of the API layer that includes Boost.Beast and Boost.Asio
// (they take most of a minute to compile on two cores).
#include "api/http.h"
#include "base/thread_seal.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <exception>
#include <mutex>
#include <optional>
#include <sstream>
#include <thread>
#include <utility>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

namespace doppel {

namespace asio = boost::asio;
namespace http = boost::beast::http;
using boost::beast::error_code;
using Local = asio::local::stream_protocol;

namespace {

constexpr size_t kReadChunk = 4096;
constexpr uint64_t kMaxResponseBodyBytes = 64ull << 20;  // the client's limit

std::string fault_body(std::string_view message) {
  return nlohmann::json{{"fault_message", message}}.dump(-1, ' ', false,
                                                         nlohmann::json::error_handler_t::replace);
}

// version: the request's (10 or 11).
std::string serialize(HttpResponse response, unsigned version, bool keep_alive) {
  http::response<http::string_body> message;
  message.version(version == 10 ? 10 : 11);
  message.result(response.status);
  message.set(http::field::server, "doppel");
  if (!response.allow.empty()) message.set(http::field::allow, response.allow);
  // RFC 9110 6.4.1: no body and no Content-Length in a 204.
  if (response.status != 204) {
    if (!response.body.empty()) message.set(http::field::content_type, "application/json");
    message.content_length(response.body.size());
    message.body() = std::move(response.body);
  }
  message.keep_alive(keep_alive);
  std::ostringstream text;
  text << message;
  return std::move(text).str();
}

bool sun_path_fits(const std::string& path) { return path.size() < sizeof(sockaddr_un::sun_path); }

Error socket_error(const std::string& path, std::string_view what, const error_code& ec) {
  return Error(fmt::format("api socket {}: {}: {}", path, what, ec.message()), ec.value());
}

}  // namespace

// ---- HttpConnection ----

struct HttpConnection::Impl {
  HttpHandler handler;
  std::optional<http::request_parser<http::string_body>> parser;
  std::string pending;  // bytes the parser has not consumed yet (a partial header)
  bool continue_sent = false;
  bool closed = false;
  // A deferred answer: the job (until taken), and how to send its response.
  bool waiting = false;
  std::function<HttpResponse()> deferred;
  unsigned deferred_version = 11;
  bool deferred_keep_alive = true;

  void next_request() {
    parser.emplace();
    parser->header_limit(static_cast<std::uint32_t>(kMaxRequestHeaderBytes));
    parser->body_limit(static_cast<std::uint64_t>(kMaxRequestBodyBytes));
    parser->eager(true);
    continue_sent = false;
  }

  // A request Beast could not parse, or one over the limits: answer 400 and close, since
  // where the next request would start is unknown (or its body was not read).
  void refuse(const error_code& ec, std::string& out) {
    std::string message;
    if (ec == http::error::body_limit) {
      // Beast stops at the Content-Length field, before the header is complete.
      message = fmt::format("request body is larger than the limit of {} bytes", kMaxRequestBodyBytes);
    } else if (ec == http::error::header_limit) {
      message = fmt::format("request header is larger than the limit of {} bytes", kMaxRequestHeaderBytes);
    } else {
      message = fmt::format("malformed HTTP request: {}", ec.message());
    }
    spdlog::debug("api: {}", message);
    out += serialize({400, fault_body(message), "", {}}, 11, false);
    closed = true;
  }

  void answer(std::string& out) {
    http::request<http::string_body> message = parser->release();
    const HttpRequest request{std::string(message.method_string()), std::string(message.target()),
                              std::move(message.body())};
    HttpResponse response;
    try {
      response = handler(request);
    } catch (const std::exception& e) {
      response = {500, fault_body(fmt::format("internal error: {}", e.what())), "", {}};
    } catch (...) {
      response = {500, fault_body("internal error"), "", {}};
    }
    const bool keep_alive = message.keep_alive();
    if (response.deferred) {
      waiting = true;
      deferred = std::move(response.deferred);
      deferred_version = message.version();
      deferred_keep_alive = keep_alive;
      return;
    }
    respond(std::move(response), message.version(), keep_alive, out);
  }

  void respond(HttpResponse response, unsigned version, bool keep_alive, std::string& out) {
    out += serialize(std::move(response), version, keep_alive);
    if (keep_alive)
      next_request();
    else
      closed = true;
  }
};

HttpConnection::HttpConnection(HttpHandler handler) : m_impl(std::make_unique<Impl>()) {
  m_impl->handler = std::move(handler);
  m_impl->next_request();
}

HttpConnection::~HttpConnection() = default;

bool HttpConnection::feed(std::string_view bytes, std::string& out) {
  Impl& s = *m_impl;
  if (s.closed) return false;
  s.pending.append(bytes);
  size_t consumed = 0;
  while (!s.closed && !s.waiting && consumed < s.pending.size()) {
    error_code ec;
    const size_t used =
        s.parser->put(asio::buffer(s.pending.data() + consumed, s.pending.size() - consumed), ec);
    consumed += used;
    if (ec == http::error::need_more) break;
    if (ec) {
      s.refuse(ec, out);
      break;
    }
    if (s.parser->is_done()) {
      s.answer(out);
      continue;
    }
    // curl waits a second for this before sending a body over 1 KiB.
    if (s.parser->is_header_done() && !s.continue_sent) {
      const auto& header = s.parser->get();
      if (header.version() == 11 && boost::beast::iequals(header[http::field::expect], "100-continue"))
        out += "HTTP/1.1 100 Continue\r\n\r\n";
      s.continue_sent = true;
    }
    if (used == 0) break;
  }
  s.pending.erase(0, consumed);
  return !s.closed;
}

std::function<HttpResponse()> HttpConnection::take_deferred() { return std::exchange(m_impl->deferred, {}); }

bool HttpConnection::complete(HttpResponse response, std::string& out) {
  Impl& s = *m_impl;
  if (!s.waiting) return !s.closed;
  s.waiting = false;
  response.deferred = nullptr;
  s.respond(std::move(response), s.deferred_version, s.deferred_keep_alive, out);
  return feed({}, out);
}

// ---- HttpServer ----

namespace {

// The threads that run deferred requests (HttpResponse::deferred). stop() joins them
// before it closes the connections, so each one's answer is queued before the close.
class DeferredJobs {
 public:
  // False once join_all() began: the server is going away, the request goes unanswered.
  bool spawn(std::function<void()> job) {
    std::lock_guard lock(m_mutex);
    if (m_closed) return false;
    m_threads.emplace_back([job = std::move(job)] {
      enter_thread(ThreadKind::kApiJob);
      job();
    });
    return true;
  }
  void join_all() {
    std::vector<std::thread> threads;
    {
      std::lock_guard lock(m_mutex);
      m_closed = true;
      threads.swap(m_threads);
    }
    for (auto& t : threads) t.join();
  }

 private:
  std::mutex m_mutex;
  std::vector<std::thread> m_threads;  // GUARDED_BY(m_mutex)
  bool m_closed = false;               // GUARDED_BY(m_mutex)
};

HttpResponse run_deferred(const std::function<HttpResponse()>& job) {
  try {
    return job();
  } catch (const std::exception& e) {
    return {500, fault_body(fmt::format("internal error: {}", e.what())), "", {}};
  } catch (...) {
    return {500, fault_body("internal error"), "", {}};
  }
}

// One accepted connection. Lives as long as an operation of it is pending; all of it runs
// on the server's thread, except a deferred request's job.
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(Local::socket socket, const HttpHandler& handler, DeferredJobs& jobs)
      : m_socket(std::move(socket)), m_connection(handler), m_jobs(jobs) {}

  void start() { read(); }

  void close() {
    if (m_closed) return;
    m_closed = true;
    error_code ec;
    m_socket.shutdown(Local::socket::shutdown_both, ec);
    m_socket.close(ec);
  }

 private:
  void read() {
    m_socket.async_read_some(asio::buffer(m_buffer),
                             [self = shared_from_this()](error_code ec, size_t n) { self->on_read(ec, n); });
  }

  void on_read(error_code ec, size_t n) {
    if (m_closed) return;
    if (ec) {  // EOF mid-request included: the client is gone, there is no one to answer
      close();
      return;
    }
    m_keep_open = m_connection.feed(std::string_view(m_buffer.data(), n), m_out);
    next();
  }

  // After the connection produced output: write the answers so far, then run a deferred
  // request (nothing is read meanwhile), then read on.
  void next() {
    if (!m_job) m_job = m_connection.take_deferred();
    if (!m_out.empty()) {
      asio::async_write(
          m_socket, asio::buffer(m_out),
          [self = shared_from_this()](error_code write_ec, size_t) { self->on_written(write_ec); });
      return;
    }
    if (m_job) {
      start_job();
      return;
    }
    if (m_keep_open)
      read();
    else
      close();
  }

  void on_written(error_code ec) {
    m_out.clear();
    if (m_closed) return;
    if (ec) {
      close();
      return;
    }
    next();
  }

  void start_job() {
    auto job = std::exchange(m_job, {});
    const bool started = m_jobs.spawn([self = shared_from_this(), job = std::move(job)] {
      HttpResponse response = run_deferred(job);
      asio::post(self->m_socket.get_executor(), [self, response = std::move(response)]() mutable {
        if (self->m_closed) return;
        self->m_keep_open = self->m_connection.complete(std::move(response), self->m_out);
        self->next();
      });
    });
    if (!started) close();
  }

  Local::socket m_socket;
  HttpConnection m_connection;
  DeferredJobs& m_jobs;
  std::function<HttpResponse()> m_job;  // a deferred request waiting for m_out to be written
  std::array<char, kReadChunk> m_buffer{};
  std::string m_out;  // responses being written; reading waits until they are
  bool m_keep_open = true;
  bool m_closed = false;
};

}  // namespace

struct HttpServer::Impl {
  std::string socket_path;
  HttpHandler handler;
  dev_t socket_dev = 0;  // the socket file we bound, so that stop() removes only that
  ino_t socket_ino = 0;
  asio::io_context io{1};
  Local::acceptor acceptor{io};
  asio::steady_timer retry{io};
  // Server thread only (and stop() once that thread has ended).
  std::vector<std::weak_ptr<Session>> sessions;
  DeferredJobs jobs;
  std::thread thread;
  std::mutex stop_mutex;
  bool stopped = false;  // GUARDED_BY(stop_mutex)

  void accept() {
    acceptor.async_accept([this](error_code ec, Local::socket socket) {
      if (ec == asio::error::operation_aborted || !acceptor.is_open()) return;
      if (ec) {
        // Out of file descriptors, say: try again shortly rather than spin.
        spdlog::warn("api socket {}: accept: {}", socket_path, ec.message());
        retry.expires_after(std::chrono::milliseconds(100));
        retry.async_wait([this](error_code wait_ec) {
          if (!wait_ec) accept();
        });
        return;
      }
      std::erase_if(sessions, [](const std::weak_ptr<Session>& s) { return s.expired(); });
      auto session = std::make_shared<Session>(std::move(socket), handler, jobs);
      sessions.push_back(session);
      session->start();
      accept();
    });
  }

  void run() {
    enter_thread(ThreadKind::kApi);
    for (;;) {
      try {
        io.run();
        return;
      } catch (const std::exception& e) {  // only std::bad_alloc is plausible
        spdlog::error("api socket {}: {}", socket_path, e.what());
      }
    }
  }
};

HttpServer::HttpServer(std::unique_ptr<Impl> impl) : m_impl(std::move(impl)) {}

HttpServer::~HttpServer() { stop(); }

const std::string& HttpServer::socket_path() const { return m_impl->socket_path; }

Result<std::unique_ptr<HttpServer>> HttpServer::create(const std::string& socket_path, HttpHandler handler) {
  if (socket_path.empty()) return Error("api socket: the path is empty");
  if (!sun_path_fits(socket_path))
    return Error::format("api socket {}: the path is longer than {} bytes", socket_path,
                         sizeof(sockaddr_un::sun_path) - 1);
  auto impl = std::make_unique<Impl>();
  impl->socket_path = socket_path;
  impl->handler = std::move(handler);
  const Local::endpoint endpoint(socket_path);
  error_code ec;

  struct stat st {};
  if (::lstat(socket_path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) return Error::format("api socket {}: exists and is not a socket", socket_path);
    // A socket file outlives its process; replace it only if nobody accepts on it.
    Local::socket probe(impl->io);
    probe.connect(endpoint, ec);
    if (!ec) return Error::format("api socket {}: another process is serving on it", socket_path);
    if (ec != asio::error::connection_refused && ec != asio::error::not_found && ec.value() != ENOENT)
      return socket_error(socket_path, "connect", ec);
    if (::unlink(socket_path.c_str()) != 0 && errno != ENOENT)
      return Error::from_errno(fmt::format("api socket {}: removing the stale socket", socket_path));
  } else if (errno != ENOENT) {
    return Error::from_errno(fmt::format("api socket {}", socket_path));
  }

  if (impl->acceptor.open(endpoint.protocol(), ec)) return socket_error(socket_path, "socket", ec);
  if (impl->acceptor.bind(endpoint, ec)) return socket_error(socket_path, "bind", ec);
  if (::lstat(socket_path.c_str(), &st) == 0) {
    impl->socket_dev = st.st_dev;
    impl->socket_ino = st.st_ino;
  }
  if (impl->acceptor.listen(asio::socket_base::max_listen_connections, ec)) {
    ::unlink(socket_path.c_str());
    return socket_error(socket_path, "listen", ec);
  }
  impl->accept();
  impl->thread = std::thread([s = impl.get()] { s->run(); });
  return std::unique_ptr<HttpServer>(new HttpServer(std::move(impl)));
}

void HttpServer::stop() {
  Impl& s = *m_impl;
  std::lock_guard lock(s.stop_mutex);
  if (s.stopped) return;
  s.stopped = true;
  s.jobs.join_all();  // their answers are posted before the close below
  asio::post(s.io, [&s] {
    error_code ec;
    s.acceptor.close(ec);
    s.retry.cancel();
    for (auto& weak : s.sessions)
      if (auto session = weak.lock()) session->close();
    s.sessions.clear();
    s.io.stop();  // what is still queued is destroyed with the io_context
  });
  if (s.thread.joinable()) s.thread.join();
  struct stat st {};
  if (::lstat(s.socket_path.c_str(), &st) == 0 && st.st_dev == s.socket_dev && st.st_ino == s.socket_ino)
    ::unlink(s.socket_path.c_str());
}

// ---- client ----

Result<HttpReply> http_request(const std::string& socket_path, std::string_view method,
                               std::string_view target, std::string_view body) {
  if (!sun_path_fits(socket_path))
    return Error::format("api socket {}: the path is longer than {} bytes", socket_path,
                         sizeof(sockaddr_un::sun_path) - 1);
  asio::io_context io{1};
  Local::socket socket(io);
  error_code ec;
  if (socket.connect(Local::endpoint(socket_path), ec)) return socket_error(socket_path, "connect", ec);

  http::request<http::string_body> request;
  request.method_string({method.data(), method.size()});
  request.target({target.data(), target.size()});
  request.version(11);
  request.set(http::field::host, "localhost");
  if (!body.empty()) request.set(http::field::content_type, "application/json");
  if (!body.empty() || request.method() != http::verb::get) request.content_length(body.size());
  request.body() = std::string(body);
  http::write(socket, request, ec);
  if (ec) return socket_error(socket_path, "sending the request", ec);

  boost::beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(kMaxResponseBodyBytes);
  http::read(socket, buffer, parser, ec);
  if (ec) return socket_error(socket_path, "reading the response", ec);
  return HttpReply{parser.get().result_int(), std::move(parser.get().body())};
}

}  // namespace doppel
