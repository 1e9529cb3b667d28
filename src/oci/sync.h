// The runtime <-> container-init handshake: a SOCK_SEQPACKET socketpair carrying one small
// message per step. The init reports failures as text so the runtime can print them
// runc-style and clean up.
#pragma once

#include <sys/types.h>

#include <string>

#include "base/result.h"

namespace doppel::oci {

enum class SyncKind : char {
  kGo = 'G',         // runtime -> init: continue (maps written, cgroup joined, hooks run)
  kPid = 'P',        // stage1 -> runtime: the init's pid (as seen by the runtime)
  kHooks = 'H',      // init -> runtime: run prestart/createRuntime hooks now
  kReady = 'R',      // init -> runtime: set up; waiting on exec.fifo (or about to exec)
  kError = 'E',      // init -> runtime: failed; the text says why
};

struct SyncMessage {
  SyncKind kind;
  std::string text;  // kError: the message; kPid: the pid in decimal
};

[[nodiscard]] Result<void> sync_send(int fd, SyncKind kind, const std::string& text = "");
// Waits for the next message; EOF (the peer died) is an error.
[[nodiscard]] Result<SyncMessage> sync_recv(int fd);
// Sends an fd over a Unix socket (SCM_RIGHTS), as --console-socket wants.
[[nodiscard]] Result<void> send_fd(int socket_fd, int fd, const std::string& name);

}  // namespace doppel::oci
