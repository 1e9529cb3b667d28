// Every thread doppel's VMM starts says what kind of thread it is, once its set-up is done
// (enter_thread). That names the thread (ps, gdb, the seccomp report) and, when the process
// runs with seccomp (sandbox/vmm_seccomp.h, on by default), installs that kind's filter:
// an allow-list of exactly the system calls the kind needs from then on.
//
// Filters are per thread, inherited by the threads a thread creates and stacked
// (intersection): a thread started by a vCPU (a virtio device's worker, started when the
// guest's driver sets DRIVER_OK) or by an API job (a device restarted by resume) runs under
// its parent's filter and its own. The lists in sandbox/vmm_seccomp.cpp are made for that.
#pragma once

#include <cstdint>
#include <string_view>

namespace doppel {

enum class ThreadKind : uint8_t {
  kMain,       // the process's first thread, once its VM runs (Machine::run)
  kVcpu,       // one per vCPU, both engines: runs the guest and the devices' MMIO/PIO
  kTimer,      // the emulator's CLINT timer
  kBlockIo,    // virtio-blk's worker pool (backends/worker_pool.h)
  kThrottle,   // a rate limiter's timer (backends/throttle_queue.h)
  kNetRx,      // virtio-net's receive thread
  kConsoleRx,  // virtio-console's socket/file thread
  kVsock,      // virtio-vsock's worker
  kSlirp,      // user networking's poll loop
  kIoeventfd,  // the KVM board's ioeventfd thread
  kStdin,      // the console's input thread
  kApi,        // the control API's server thread
  kApiJob,     // a deferred API request (snapshot, migration, pause, start)
  kGdb,        // the gdb stub's server thread
};
inline constexpr int kThreadKinds = static_cast<int>(ThreadKind::kGdb) + 1;

// The thread's name as ps shows it (at most 15 characters): "vcpu0", "blk-io", "api"...
const char* thread_kind_name(ThreadKind kind);

// Called by the thread itself. index numbers threads of one kind (vCPUs); -1: none.
// name, if given, names the thread instead of its kind (its first 15 characters:
// "virtio-blk0-rl").
void enter_thread(ThreadKind kind, int index = -1, const char* name = nullptr);

// The name enter_thread gave the calling thread, or "" (readable from a signal handler).
const char* current_thread_name();

// What enter_thread does beyond naming: set once, before the first thread is started
// (the process's one sandbox decision). Null: nothing.
using ThreadSealer = void (*)(ThreadKind kind);
void set_thread_sealer(ThreadSealer sealer);

}  // namespace doppel
