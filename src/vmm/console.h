// The host side of the guest's serial console, shared by both engines.
//
// Output: bytes the guest transmits go to out_fd (stdout) as they come, and the last
// kRecentLines lines are kept so the machine can show them when the guest dies.
// Input: an input thread reads in_fd (stdin) and hands the bytes to a Deliver function
// (the UART's receive()), which takes only what fits. The rest waits on the host side, and
// in_fd is not read further, until notify_room() says the guest made room: nothing piped in
// is lost, however early it arrives. At EOF the thread stops reading; the VM goes on.
//
// If in_fd is a terminal it is put in raw mode, and restored by the destructor, at exit(),
// and on fatal signals (SIGINT/TERM/HUP/QUIT/ABRT/SEGV/BUS/FPE/ILL/PIPE).
//
// Escapes (as QEMU's -serial mon:stdio): Ctrl-A x quits (calls on_quit), Ctrl-A Ctrl-A
// sends one Ctrl-A, Ctrl-A h prints help to stderr; other Ctrl-A commands are dropped.
//
// Threads: write_output() from any thread (vCPU threads hold the UART lock while calling;
// the console never calls back into the UART from there). notify_room() from any thread.
// Deliver and on_quit run on the input thread. Lock order: UART -> m_output_mutex.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include <termios.h>

#include "base/result.h"
#include "base/unique_fd.h"

namespace doppel {

class Console {
 public:
  static constexpr size_t kRecentLines = 20;

  struct Options {
    int in_fd = 0;   // -1: no input
    int out_fd = 1;
    bool escapes = true;  // Ctrl-A commands
  };
  // Takes the bytes it can; returns how many.
  using Deliver = std::function<size_t(std::span<const uint8_t>)>;

  static Result<std::unique_ptr<Console>> create(const Options& options);
  // Puts the terminal back as it was before the console made it raw, if it did.
  // Async-signal-safe: for a fatal signal's handler (the seccomp report's).
  static void restore_terminal_now();
  ~Console();
  Console(const Console&) = delete;
  Console& operator=(const Console&) = delete;

  // Starts the input thread (once). deliver and on_quit must stay valid until stop_input()
  // or destruction.
  void start_input(Deliver deliver, std::function<void()> on_quit);
  // Stops and joins the input thread; restores nothing else. Idempotent.
  void stop_input();
  // The guest made room for more input.
  void notify_room();

  // Guest output.
  void write_output(uint8_t byte);
  void write_output(std::span<const uint8_t> bytes);

  // The last lines of guest output (the unfinished line last, if any), oldest first.
  std::vector<std::string> recent_lines() const;
  // Whether any output line so far contained "Kernel panic".
  bool saw_kernel_panic() const { return m_saw_panic.load(std::memory_order_relaxed); }
  // Starts watching afresh (a new boot of the same console).
  void forget_kernel_panic() { m_saw_panic.store(false, std::memory_order_relaxed); }

  bool input_is_terminal() const { return m_raw_mode; }

 private:
  explicit Console(const Options& options) : m_options(options) {}
  Result<void> init();
  void input_loop();
  // Applies escape processing to raw stdin bytes, appending to m_pending.
  void process_input(std::span<const uint8_t> bytes);
  void finish_line();

  const Options m_options;
  bool m_raw_mode = false;
  UniqueFd m_wake;  // eventfd: room or stop
  std::thread m_thread;
  std::atomic<bool> m_stop{false};
  Deliver m_deliver;
  std::function<void()> m_on_quit;
  // Input-thread only.
  std::vector<uint8_t> m_pending;
  bool m_saw_ctrl_a = false;
  bool m_quit = false;

  mutable std::mutex m_output_mutex;
  std::deque<std::string> m_lines;  // GUARDED_BY(m_output_mutex)
  std::string m_current;            // GUARDED_BY(m_output_mutex)
  // The host closed the output (a reader that exited: EPIPE; SIGPIPE is ignored): said once,
  // then the guest runs on, unheard. GUARDED_BY(m_output_mutex)
  bool m_output_lost = false;
  std::atomic<bool> m_saw_panic{false};
};

}  // namespace doppel
