// doppel-user: runs a static riscv64 Linux executable on doppel's emulated hart.
//
//   doppel-user [--report-instret] [--max-instructions N] [--trace] [--state-trace] PROGRAM [ARGS...]
//
// The program gets doppel-user's environment. DOPPEL_LOG=debug|info|warn|error sets the
// log level (stderr). Exit status: the program's, or 128 + signal if it died of a fault (as a shell reports
// it), 1 if doppel-user could not start it, 124 if --max-instructions ran out.
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include <fmt/format.h>

#include "base/log.h"
#include "engines/emu/riscv64/user/user_process.h"

extern char** environ;

namespace {

int usage(const char* why) {
  if (why) fmt::print(stderr, "doppel-user: {}\n", why);
  fmt::print(stderr,
             "usage: doppel-user [--report-instret] [--max-instructions N] [--trace] PROGRAM [ARGS...]\n"
             "  runs a static riscv64 Linux executable in doppel's user-mode emulator\n"
             "  --report-instret       print 'doppel-user: instret N' to stderr at exit\n"
             "  --max-instructions N   stop (exit 124) after N instructions\n"
             "  --trace                disassemble every executed instruction to stderr\n"
             "  --state-trace          print pc and all x/f registers before every instruction to stderr\n");
  return why ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  using doppel::rv64::user::UserExit;
  // Diagnostics go to stderr: the program's stdout is the output under test.
  const char* level = std::getenv("DOPPEL_LOG");
  doppel::log::init(level ? level : "warn");
  doppel::rv64::user::UserProcessConfig config;
  bool report_instret = false;
  bool state_trace = false;
  int i = 1;
  for (; i < argc; ++i) {
    const std::string_view a = argv[i];
    if (a == "--report-instret") {
      report_instret = true;
    } else if (a == "--trace") {
      config.trace = true;
    } else if (a == "--state-trace") {
      state_trace = true;
    } else if (a == "--max-instructions") {
      if (i + 1 >= argc) return usage("--max-instructions needs a number");
      char* end = nullptr;
      config.max_instructions = std::strtoull(argv[++i], &end, 0);
      if (!end || *end || config.max_instructions == 0)
        return usage(fmt::format("--max-instructions '{}': not a positive number", argv[i]).c_str());
    } else if (a == "-h" || a == "--help") {
      return usage(nullptr);
    } else if (a == "--") {
      ++i;
      break;
    } else if (a.starts_with("-")) {
      return usage(fmt::format("unknown option '{}'", a).c_str());
    } else {
      break;
    }
  }
  if (i >= argc) return usage("no program given");
  config.path = argv[i];
  for (; i < argc; ++i) config.argv.emplace_back(argv[i]);
  for (char** e = environ; e && *e; ++e) config.envp.emplace_back(*e);  // as execve would
  if (const char* t = std::getenv("DOPPEL_TRACE"); t && std::string_view(t) == "1") config.trace = true;

  auto process = doppel::rv64::user::UserProcess::create(config);
  if (!process.ok()) {
    fmt::print(stderr, "doppel-user: {}\n", process.error().message());
    return 1;
  }
  // DOPPEL_JIT=on: the same run on the block translator, every block translated at once.
  if (const char* jit = std::getenv("DOPPEL_JIT"); jit && std::string_view(jit) == "on") {
    if (auto r = (*process)->hart().enable_jit(16 << 20, 0); !r) {
      fmt::print(stderr, "doppel-user: {}\n", r.error().message());
      return 1;
    }
  }
  if (state_trace) {
    // Before each instruction: "pc P", then x0..x31 and f0..f31 in hex (stderr).
    (*process)->set_observer([](const doppel::rv64::Hart& h) {
      std::string line = fmt::format("pc {:016x}\nx", h.pc());
      for (unsigned r = 0; r < 32; ++r) line += fmt::format(" {:016x}", h.x(r));
      line += "\nf";
      for (unsigned r = 0; r < 32; ++r) line += fmt::format(" {:016x}", h.f(r));
      line += "\n";
      std::fputs(line.c_str(), stderr);
    });
  }
  auto result = (*process)->run();
  std::fflush(stdout);
  if (report_instret) fmt::print(stderr, "doppel-user: instret {}\n", (*process)->instret());
  if (!result.ok()) {
    fmt::print(stderr, "doppel-user: {}\n", result.error().message());
    return 1;
  }
  const UserExit& e = *result;
  switch (e.kind) {
    case UserExit::Kind::kExited: return e.status;
    case UserExit::Kind::kInstructionLimit:
      fmt::print(stderr, "doppel-user: stopped after {} instructions (--max-instructions)\n",
                 (*process)->instret());
      return 124;
    case UserExit::Kind::kSignaled:
      fmt::print(stderr, "doppel-user: {}: killed by signal {}: {}\n", config.path, e.status, e.detail);
      return e.shell_status();
  }
  return 1;
}
