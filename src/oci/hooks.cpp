#include "oci/hooks.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

#include <cerrno>
#include <chrono>
#include <thread>

#include "base/unique_fd.h"

namespace doppel::oci {
namespace {

Result<void> run_hook(const Hook& hook, const std::string& state_json, const char* phase) {
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) return Error::from_errno("pipe");
  UniqueFd rd(p[0]), wr(p[1]);
  std::vector<std::string> args = hook.args;
  if (args.empty()) args.push_back(hook.path);
  std::vector<char*> argv, envp;
  for (auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  for (auto& e : hook.env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);
  // A hook without "env" inherits the runtime's environment, as runc's (Go's exec) does.
  char** env = hook.env.empty() ? environ : envp.data();
  pid_t pid = ::fork();
  if (pid < 0) return Error::from_errno("fork");
  if (pid == 0) {
    ::dup2(rd.get(), 0);
    ::execve(hook.path.c_str(), argv.data(), env);
    ::_exit(127);
  }
  rd.reset();
  // A hook that does not read its stdin must not block us: ignore EPIPE.
  auto old = ::signal(SIGPIPE, SIG_IGN);
  size_t done = 0;
  while (done < state_json.size()) {
    ssize_t n = ::write(wr.get(), state_json.data() + done, state_json.size() - done);
    if (n <= 0) break;
    done += static_cast<size_t>(n);
  }
  wr.reset();
  ::signal(SIGPIPE, old);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(hook.timeout.value_or(0));
  int status = 0;
  for (;;) {
    pid_t r = ::waitpid(pid, &status, hook.timeout ? WNOHANG : 0);
    if (r == pid) break;
    if (r < 0 && errno != EINTR) return Error::from_errno(fmt::format("{} hook {}: waitpid", phase, hook.path));
    if (hook.timeout && std::chrono::steady_clock::now() > deadline) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      return Error::format("{} hook {}: timed out after {} s", phase, hook.path, *hook.timeout);
    }
    if (r == 0) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return ok();
  if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
    return Error::format("{} hook {}: could not be executed (exit status 127)", phase, hook.path);
  if (WIFEXITED(status)) return Error::format("{} hook {}: exit status {}", phase, hook.path, WEXITSTATUS(status));
  return Error::format("{} hook {}: killed by signal {}", phase, hook.path, WTERMSIG(status));
}

}  // namespace

Result<void> run_hooks(const std::vector<Hook>& hooks, const std::string& state_json, const char* phase) {
  for (auto& h : hooks) TRY(run_hook(h, state_json, phase));
  return ok();
}

}  // namespace doppel::oci
