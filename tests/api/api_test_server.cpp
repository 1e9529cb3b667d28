// The API server over a FakeVmControl, for api_curl_test.sh: real HTTP on a real socket,
// with no VM behind it. Usage: api_test_server SOCKET. Serves until SIGTERM or SIGINT,
// then stops the server (which removes SOCKET) and exits 0.
#include <signal.h>

#include <cstdio>

#include "api/api_server.h"
#include "api/fake_vm_control.h"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s SOCKET\n", argv[0]);
    return 2;
  }
  // Blocked before the server's thread exists, so that only sigwait sees them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  doppel::FakeVmControl control;
  auto server = doppel::ApiServer::create(argv[1], control);
  if (!server) {
    std::fprintf(stderr, "api_test_server: %s\n", server.error().message().c_str());
    return 1;
  }
  int signal_number = 0;
  sigwait(&stop_signals, &signal_number);
  (*server)->stop();
  return 0;
}
