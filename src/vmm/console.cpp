#include "vmm/console.h"

#include "base/log.h"
#include "base/thread_seal.h"

#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace doppel {

namespace {

constexpr uint8_t kCtrlA = 0x01;
constexpr size_t kMaxLineLength = 1024;

// The saved terminal state must be reachable from a signal handler and from atexit(), so
// it lives here (the one piece of global state: there is one controlling terminal).
// Written only before the handlers are installed and after they are removed.
int g_tty_fd = -1;
termios g_saved_termios;
volatile sig_atomic_t g_tty_raw = 0;

constexpr int kRestoreSignals[] = {SIGINT,  SIGTERM, SIGHUP, SIGQUIT, SIGABRT,
                                   SIGSEGV, SIGBUS,  SIGFPE, SIGILL};
struct sigaction g_old_actions[std::size(kRestoreSignals)];

void restore_terminal() {
  if (g_tty_raw) {
    tcsetattr(g_tty_fd, TCSAFLUSH, &g_saved_termios);
    g_tty_raw = 0;
  }
}

void restore_terminal_on_signal(int sig) {
  restore_terminal();  // tcsetattr is async-signal-safe
  for (size_t i = 0; i < std::size(kRestoreSignals); ++i) {
    if (kRestoreSignals[i] == sig) sigaction(sig, &g_old_actions[i], nullptr);
  }
  raise(sig);  // delivered once we return, with the previous disposition
}

bool g_atexit_registered = false;

}  // namespace

void Console::restore_terminal_now() { restore_terminal(); }

Result<std::unique_ptr<Console>> Console::create(const Options& options) {
  std::unique_ptr<Console> console(new Console(options));
  TRY(console->init());
  return console;
}

Result<void> Console::init() {
  const int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (efd < 0) return Error::from_errno("console: eventfd");
  m_wake.reset(efd);

  if (m_options.in_fd >= 0 && isatty(m_options.in_fd) && !g_tty_raw) {
    termios t;
    if (tcgetattr(m_options.in_fd, &t) != 0)
      return Error::from_errno(fmt::format("console: tcgetattr on fd {}", m_options.in_fd));
    g_tty_fd = m_options.in_fd;
    g_saved_termios = t;
    cfmakeraw(&t);
    // Keep output post-processing off too: the guest sends its own "\r\n".
    t.c_cc[VMIN] = 1;
    t.c_cc[VTIME] = 0;
    for (size_t i = 0; i < std::size(kRestoreSignals); ++i) {
      struct sigaction sa {};
      sa.sa_handler = restore_terminal_on_signal;
      sigemptyset(&sa.sa_mask);
      sigaction(kRestoreSignals[i], &sa, &g_old_actions[i]);
    }
    if (!g_atexit_registered) {
      std::atexit(restore_terminal);
      g_atexit_registered = true;
    }
    g_tty_raw = 1;
    if (tcsetattr(m_options.in_fd, TCSAFLUSH, &t) != 0) {
      const int e = errno;
      g_tty_raw = 0;
      for (size_t i = 0; i < std::size(kRestoreSignals); ++i)
        sigaction(kRestoreSignals[i], &g_old_actions[i], nullptr);
      return Error::from_errno("console: cannot put the terminal in raw mode", e);
    }
    m_raw_mode = true;
  }
  return {};
}

Console::~Console() {
  stop_input();
  if (m_raw_mode) {
    restore_terminal();
    for (size_t i = 0; i < std::size(kRestoreSignals); ++i)
      sigaction(kRestoreSignals[i], &g_old_actions[i], nullptr);
  }
}

void Console::start_input(Deliver deliver, std::function<void()> on_quit) {
  if (m_thread.joinable() || m_options.in_fd < 0) return;
  m_deliver = std::move(deliver);
  m_on_quit = std::move(on_quit);
  m_thread = std::thread([this] { input_loop(); });
}

void Console::stop_input() {
  if (!m_thread.joinable()) return;
  m_stop.store(true, std::memory_order_release);
  notify_room();
  m_thread.join();
}

void Console::notify_room() {
  const uint64_t one = 1;
  // EAGAIN means the counter is already huge: the thread will wake anyway.
  [[maybe_unused]] const ssize_t n = ::write(m_wake.get(), &one, sizeof one);
}

void Console::process_input(std::span<const uint8_t> bytes) {
  for (const uint8_t b : bytes) {
    if (m_quit) return;
    if (!m_options.escapes) {
      m_pending.push_back(b);
      continue;
    }
    if (m_saw_ctrl_a) {
      m_saw_ctrl_a = false;
      if (b == kCtrlA) {
        m_pending.push_back(kCtrlA);
      } else if (b == 'x' || b == 'X') {
        m_quit = true;
        if (m_on_quit) m_on_quit();
      } else if (b == 'h' || b == 'H' || b == '?') {
        static constexpr char kHelp[] =
            "\r\nC-a x    exit doppel\r\nC-a C-a  send C-a\r\nC-a h    this help\r\n";
        [[maybe_unused]] const ssize_t n = ::write(2, kHelp, sizeof kHelp - 1);
      }
      continue;
    }
    if (b == kCtrlA) {
      m_saw_ctrl_a = true;
      continue;
    }
    m_pending.push_back(b);
  }
}

void Console::input_loop() {
  enter_thread(ThreadKind::kStdin);
  bool eof = false;
  uint8_t buf[512];
  while (!m_stop.load(std::memory_order_acquire)) {
    // Clear the wake counter before trying, so a notify during the attempt is not lost.
    uint64_t counter;
    [[maybe_unused]] const ssize_t r = ::read(m_wake.get(), &counter, sizeof counter);
    if (!m_pending.empty() && m_deliver) {
      const size_t taken = m_deliver(m_pending);
      m_pending.erase(m_pending.begin(), m_pending.begin() + static_cast<ptrdiff_t>(taken));
    }
    pollfd fds[2] = {{m_wake.get(), POLLIN, 0}, {m_options.in_fd, POLLIN, 0}};
    // Stop reading the host while input is waiting for the guest (flow control), after
    // EOF, and after Ctrl-A x.
    const bool want_input = m_pending.empty() && !eof && !m_quit;
    const int rc = ::poll(fds, want_input ? 2 : 1, -1);
    if (rc < 0) {
      if (errno == EINTR) continue;
      spdlog::error("console: poll: {}", std::strerror(errno));
      return;
    }
    if (want_input && (fds[1].revents & (POLLIN | POLLHUP | POLLERR | POLLNVAL))) {
      const ssize_t n = ::read(m_options.in_fd, buf, sizeof buf);
      if (n > 0) {
        process_input({buf, static_cast<size_t>(n)});
      } else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
        eof = true;  // EOF or an unreadable stdin: stop reading, keep the VM running
      }
    }
  }
}

void Console::finish_line() {
  if (m_current.find("Kernel panic") != std::string::npos)
    m_saw_panic.store(true, std::memory_order_relaxed);
  m_lines.push_back(std::move(m_current));
  m_current.clear();
  while (m_lines.size() > kRecentLines) m_lines.pop_front();
}

void Console::write_output(uint8_t byte) { write_output(std::span<const uint8_t>(&byte, 1)); }

void Console::write_output(std::span<const uint8_t> bytes) {
  std::lock_guard lock(m_output_mutex);
  size_t done = m_output_lost ? bytes.size() : 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(m_options.out_fd, bytes.data() + done, bytes.size() - done);
    if (n > 0) {
      done += static_cast<size_t>(n);
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else if (n < 0 && errno == EAGAIN) {
      pollfd p{m_options.out_fd, POLLOUT, 0};
      ::poll(&p, 1, 100);
    } else {
      // The host closed its output (`doppel run | head`): no reason to end the VM and lose
      // its unflushed disk writes. The guest keeps running, unheard, until it powers off.
      m_output_lost = true;
      spdlog::warn("console: the output is closed ({}); the VM runs on without it",
                   n < 0 ? std::strerror(errno) : "nothing written");
      break;
    }
  }
  for (const uint8_t b : bytes) {
    if (b == '\n') {
      finish_line();
    } else if (b == '\r') {
      // "\r\n" line ends; a lone '\r' just returns the cursor.
    } else if (m_current.size() < kMaxLineLength) {
      m_current.push_back(static_cast<char>(b));
    }
  }
}

std::vector<std::string> Console::recent_lines() const {
  std::lock_guard lock(m_output_mutex);
  std::vector<std::string> lines(m_lines.begin(), m_lines.end());
  if (!m_current.empty()) lines.push_back(m_current);
  return lines;
}

}  // namespace doppel
