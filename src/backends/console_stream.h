// The host end of virtio-console: a file (output only) or a listening Unix socket (one
// client at a time, both directions; output is dropped while no client is connected).
//
// Threads: write() from any thread; the accept/client calls from the device's RX worker.
// m_lock guards m_client.
#pragma once

#include <sys/uio.h>

#include <memory>
#include <mutex>
#include <span>
#include <string>

#include "base/result.h"
#include "base/unique_fd.h"

namespace doppel {

class ConsoleStream {
 public:
  // Creates or truncates the file.
  static Result<std::unique_ptr<ConsoleStream>> open_file(const std::string& path);
  // Listens on a Unix stream socket at path (a stale socket file there is replaced; any
  // other existing file is an error).
  static Result<std::unique_ptr<ConsoleStream>> listen_unix(const std::string& path);
  ~ConsoleStream();

  bool is_socket() const { return m_listen.valid(); }
  const std::string& path() const { return m_path; }

  // Writes everything or drops it (no client, or the client is not reading).
  void write(std::span<const iovec> iov);

  // Socket only.
  int listen_fd() const { return m_listen.get(); }
  void accept_client();   // replaces the current client, if any
  int client_fd() const;  // -1 if none
  void drop_client();

 private:
  ConsoleStream() = default;
  std::string m_path;
  UniqueFd m_file;
  UniqueFd m_listen;
  mutable std::mutex m_lock;
  UniqueFd m_client;  // GUARDED_BY(m_lock)
};

}  // namespace doppel
