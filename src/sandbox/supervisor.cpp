#include "sandbox/supervisor.h"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "base/unique_fd.h"

namespace doppel::sandbox {
namespace {

// The child to forward signals to; set once, before the handlers are installed.
volatile pid_t g_child = 0;
// The child is a PID namespace's init, which the kernel spares every signal it has no
// handler for: forward SIGTERM and SIGHUP as SIGKILL, their default action.
volatile bool g_child_is_init = false;

void forward_signal(int sig) {
  if (g_child > 0) ::kill(g_child, g_child_is_init ? SIGKILL : sig);
}

}  // namespace

Result<int> run_supervised(const SupervisorOptions& options, const std::function<int()>& body) {
  Cgroup cgroup = TRY(Cgroup::open(options.cgroup_path, options.cgroup_root));
  TRY(cgroup.create(options.resources));
  auto fail = [&](Error e) -> Result<int> {
    (void)cgroup.destroy();
    return e;
  };

  int sync[2];
  if (::pipe2(sync, O_CLOEXEC) != 0) return fail(Error::from_errno("pipe"));
  UniqueFd sync_read(sync[0]), sync_write(sync[1]);

  struct termios saved {};
  const bool tty = ::isatty(STDIN_FILENO) && ::tcgetattr(STDIN_FILENO, &saved) == 0;

  const pid_t pid = static_cast<pid_t>(
      ::syscall(SYS_clone, options.clone_flags | SIGCHLD, nullptr, nullptr, nullptr, nullptr));
  if (pid < 0) return fail(Error::from_errno("clone"));
  if (pid == 0) {
    sync_write.reset();
    char go = 0;
    // EOF without the byte: the parent could not place this process; it reports why.
    if (::read(sync_read.get(), &go, 1) != 1) ::_exit(1);
    sync_read.reset();
    ::_exit(body());
  }
  sync_read.reset();
  if (auto r = cgroup.add_process(pid); !r) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    return fail(r.error());
  }
  g_child = pid;
  g_child_is_init = (options.clone_flags & CLONE_NEWPID) != 0;
  struct sigaction forward {};
  forward.sa_handler = forward_signal;
  ::sigemptyset(&forward.sa_mask);
  forward.sa_flags = SA_RESTART;
  ::sigaction(SIGTERM, &forward, nullptr);
  ::sigaction(SIGHUP, &forward, nullptr);
  // The terminal's Ctrl-C and Ctrl-\ reach the child directly (same process group).
  ::signal(SIGINT, SIG_IGN);
  ::signal(SIGQUIT, SIG_IGN);
  if (options.on_started) options.on_started(pid);
  const char go = 1;
  if (::write(sync_write.get(), &go, 1) != 1) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    return fail(Error::from_errno("start the child"));
  }
  sync_write.reset();

  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  g_child = 0;
  int code = 1;
  if (WIFEXITED(status)) {
    code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    const int sig = WTERMSIG(status);
    if (tty) ::tcsetattr(STDIN_FILENO, TCSANOW, &saved);
    auto kills = cgroup.oom_kills();
    if (sig == SIGKILL && kills.ok() && *kills > 0) {
      fmt::print(stderr,
                 "\r\ndoppel: {} was ended by the kernel's OOM killer: it exceeded its memory limit{} "
                 "(cgroup {}: oom_kill {})\r\n",
                 options.label, options.memory_limit_text.empty() ? "" : " of " + options.memory_limit_text,
                 cgroup.dir_of("memory"), *kills);
      code = kExitOutOfMemory;
    } else {
      fmt::print(stderr, "\r\ndoppel: {} was killed by signal {} ({})\r\n", options.label, sig, strsignal(sig));
      code = 128 + sig;
    }
  }
  if (auto r = cgroup.destroy(); !r) fmt::print(stderr, "doppel: {}\n", r.error().message());
  return code;
}

}  // namespace doppel::sandbox
