#include "base/thread_seal.h"

#include <pthread.h>

#include <atomic>
#include <cstdio>
#include <cstring>

namespace doppel {

namespace {

// Set once before any thread that calls enter_thread() starts; read by those threads.
std::atomic<ThreadSealer> g_sealer{nullptr};
// Per thread; a plain array so that a SIGSYS handler can read it.
thread_local char t_name[16] = "";

}  // namespace

const char* thread_kind_name(ThreadKind kind) {
  switch (kind) {
    case ThreadKind::kMain: return "main";
    case ThreadKind::kVcpu: return "vcpu";
    case ThreadKind::kTimer: return "clint-timer";
    case ThreadKind::kBlockIo: return "blk-io";
    case ThreadKind::kThrottle: return "throttle";
    case ThreadKind::kNetRx: return "net-rx";
    case ThreadKind::kConsoleRx: return "console-rx";
    case ThreadKind::kVsock: return "vsock";
    case ThreadKind::kSlirp: return "slirp";
    case ThreadKind::kIoeventfd: return "ioeventfd";
    case ThreadKind::kStdin: return "stdin";
    case ThreadKind::kApi: return "api";
    case ThreadKind::kApiJob: return "api-job";
    case ThreadKind::kGdb: return "gdb";
  }
  return "?";
}

void enter_thread(ThreadKind kind, int index, const char* name) {
  if (name) std::snprintf(t_name, sizeof t_name, "%s", name);
  else if (index >= 0) std::snprintf(t_name, sizeof t_name, "%s%d", thread_kind_name(kind), index);
  else std::snprintf(t_name, sizeof t_name, "%s", thread_kind_name(kind));
  // The main thread keeps the process's name in ps; the others are named after their kind.
  if (kind != ThreadKind::kMain) pthread_setname_np(pthread_self(), t_name);
  if (const ThreadSealer sealer = g_sealer.load(std::memory_order_acquire)) sealer(kind);
}

const char* current_thread_name() { return t_name; }

void set_thread_sealer(ThreadSealer sealer) { g_sealer.store(sealer, std::memory_order_release); }

}  // namespace doppel
