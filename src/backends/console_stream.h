// The host end of virtio-console: a file (output only) or a listening Unix socket (one
// client at a time, both directions; output is dropped while no client is connected, and
// waits for a connected client that reads slowly: write_some()).
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
  // Creates or truncates the file, as QEMU's -chardev file does; refuses a block device, a
  // directory and a disk image some VM has open (an image lock on it: this VM's own too).
  static Result<std::unique_ptr<ConsoleStream>> open_file(const std::string& path);
  // Listens on a Unix stream socket at path (a stale socket file there, with no listener, is
  // replaced; a live one, or any other existing file, is an error).
  static Result<std::unique_ptr<ConsoleStream>> listen_unix(const std::string& path);
  ~ConsoleStream();

  bool is_socket() const { return m_listen.valid(); }
  const std::string& path() const { return m_path; }

  // Writes everything or drops it (no client, or the client is not reading).
  void write(std::span<const iovec> iov);

  struct WriteResult {
    size_t written = 0;        // bytes taken (or dropped: no client, a client gone)
    bool would_block = false;  // a socket client took less: wait for POLLOUT on client_fd()
  };
  // A file: writes everything. A socket: what the client takes now, without waiting.
  WriteResult write_some(std::span<const iovec> iov);

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
