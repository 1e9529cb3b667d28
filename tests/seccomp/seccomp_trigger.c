// Test-only (never linked into doppel): an LD_PRELOAD library that interposes libseccomp's
// seccomp_load(), which each of doppel's threads calls to install its filter
// (sandbox/vmm_seccomp.cpp). Right after the filter is in place, in the thread whose name
// (prctl PR_GET_NAME: "vcpu0", "blk-io", "api", ... or "doppel" for the main thread) is
// $DOPPEL_SECCOMP_TEST_THREAD, it makes the system call $DOPPEL_SECCOMP_TEST_CALL
// (execve by default), which that thread's filter must refuse.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <seccomp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <unistd.h>

static void forbidden_call(const char* call) {
  if (strcmp(call, "openat") == 0) {
    // A file the VMM has no business with.
    (void)open("/etc/passwd", O_RDONLY);
  } else if (strcmp(call, "ptrace") == 0) {
    (void)ptrace(PTRACE_TRACEME, 0, NULL, NULL);
  } else if (strcmp(call, "socket") == 0) {
    (void)socket(AF_INET, SOCK_STREAM, 0);
  } else {
    // If the filter let this through, doppel would become /bin/true: no report, exit 0.
    char* const argv[] = {"/bin/true", NULL};
    char* const envp[] = {NULL};
    (void)execve("/bin/true", argv, envp);
  }
}

int seccomp_load(const scmp_filter_ctx ctx) {
  int (*real)(const scmp_filter_ctx) = (int (*)(const scmp_filter_ctx))dlsym(RTLD_NEXT, "seccomp_load");
  char name[17] = {0};
  prctl(PR_GET_NAME, name);
  const char* want = getenv("DOPPEL_SECCOMP_TEST_THREAD");
  const char* call = getenv("DOPPEL_SECCOMP_TEST_CALL");
  const int rc = real(ctx);
  if (rc == 0 && want && strcmp(name, want) == 0) forbidden_call(call ? call : "execve");
  return rc;
}
