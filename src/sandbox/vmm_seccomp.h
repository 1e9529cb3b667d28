// Seccomp for doppel's VMM (issue 14 part 2): each kind of thread (base/thread_seal.h)
// installs, once its set-up is done, an allow-list of the system calls that kind needs.
// This is the VMM's own filter; the OCI runtime's container filters (oci/) are another
// thing.
//
// A forbidden call raises SIGSYS in the thread that made it (SECCOMP_RET_TRAP): the
// handler writes "doppel: seccomp: thread 'vcpu0' made a forbidden system call: execve
// (59), arguments 0x..., 0x..., 0x..." (and the path of an open) to stderr with write(2),
// restores the terminal, and ends the process with
// kExitSeccomp (159, what a shell reports for a death by SIGSYS). A trap rather than
// SECCOMP_RET_KILL_PROCESS, so that the process itself can say which thread and which
// call, and hand the terminal back, without a parent watching it.
#pragma once

#include "base/result.h"
#include "base/thread_seal.h"

namespace doppel::sandbox {

inline constexpr int kExitSeccomp = 128 + 31;  // 128 + SIGSYS

// Async-signal-safe work the SIGSYS handler does before exiting (the console's terminal
// restore). Set before enable_vmm_seccomp().
using FatalHook = void (*)();

// Checks that every kind's filter builds and that the kernel takes seccomp filters, installs
// the SIGSYS handler and makes enter_thread() install the filters from now on. Called once,
// on the main thread, before the VMM starts any thread.
Result<void> enable_vmm_seccomp(FatalHook on_fatal);

// The kind's filter on the calling thread (what enter_thread() does once enabled).
Result<void> install_vmm_filter(ThreadKind kind);

}  // namespace doppel::sandbox
