// doppel's gdb stub (--gdb tcp:HOST:PORT|unix:PATH, --gdb-wait), as QEMU's -gdb / -s -S:
// it listens from the start, serves one debugger connection at a time (GdbSession) on
// its own thread, and debugs whichever Machine the process runs now.
//
// Threads: create(), attach_machine(), detach_machine() and the destructor on the main
// thread (the one that runs Machine::run()); the server's thread does the socket I/O and
// all calls into the Machine, with m_mutex held, so that detach_machine() cannot take a
// machine from under it.
#pragma once

#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "backends/endpoint.h"
#include "base/result.h"
#include "base/unique_fd.h"
#include "vmm/machine.h"

namespace doppel::gdb {

class GdbServer {
 public:
  // Listens on `endpoint`. wait: the first machine holds before its first instruction
  // until a debugger resumes it.
  static Result<std::unique_ptr<GdbServer>> create(const std::string& endpoint, bool wait);
  ~GdbServer();
  GdbServer(const GdbServer&) = delete;
  GdbServer& operator=(const GdbServer&) = delete;

  // Before machine.run(): the debugger may stop and inspect it from now on. An engine with
  // no debugger support is an error.
  Result<void> attach_machine(Machine& machine);
  // After machine.run() returned `exit_code`, before the machine is destroyed.
  void detach_machine(int exit_code);

 private:
  struct Impl;
  explicit GdbServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> m_impl;
};

}  // namespace doppel::gdb
