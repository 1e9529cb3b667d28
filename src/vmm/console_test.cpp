#include "vmm/console.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>

#include "base/unique_fd.h"

namespace doppel {
namespace {

struct Pipe {
  UniqueFd r, w;
  Pipe() {
    int fds[2];
    EXPECT_EQ(pipe(fds), 0);
    r.reset(fds[0]);
    w.reset(fds[1]);
  }
};

std::string drain(int fd) {
  std::string s;
  char buf[4096];
  for (;;) {
    const ssize_t n = read(fd, buf, sizeof buf);
    if (n <= 0) break;
    s.append(buf, static_cast<size_t>(n));
  }
  return s;
}

// A receiver with a tiny FIFO that the "guest" drains slowly, like the UART.
struct SlowGuest {
  std::mutex mutex;
  std::condition_variable cv;
  std::string fifo;
  std::string received;
  size_t capacity = 3;

  size_t deliver(std::span<const uint8_t> bytes) {
    std::lock_guard lock(mutex);
    size_t n = 0;
    while (n < bytes.size() && fifo.size() < capacity) fifo.push_back(static_cast<char>(bytes[n++]));
    cv.notify_all();
    return n;
  }
  // Reads one byte from the FIFO; returns false on timeout.
  bool read_one(Console& console) {
    std::unique_lock lock(mutex);
    if (!cv.wait_for(lock, std::chrono::seconds(5), [&] { return !fifo.empty(); })) return false;
    const bool was_full = fifo.size() >= capacity;
    received.push_back(fifo.front());
    fifo.erase(0, 1);
    lock.unlock();
    if (was_full) console.notify_room();
    return true;
  }
};

TEST(Console, PipedInputWaitsForRoomAndNothingIsLost) {
  Pipe in, out;
  auto console = Console::create({in.r.get(), out.w.get(), true});
  ASSERT_TRUE(console.ok()) << console.error().message();
  std::string input;
  for (int i = 0; i < 5000; ++i) input.push_back(static_cast<char>('a' + i % 26));
  input += "\npoweroff -f\n";
  // Everything is written before the guest reads a byte, as with `printf ... | doppel run`.
  ASSERT_EQ(write(in.w.get(), input.data(), input.size()), static_cast<ssize_t>(input.size()));
  in.w.reset();  // EOF

  SlowGuest guest;
  bool quit = false;
  (*console)->start_input([&](std::span<const uint8_t> b) { return guest.deliver(b); },
                          [&] { quit = true; });
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  for (size_t i = 0; i < input.size(); ++i) ASSERT_TRUE(guest.read_one(**console)) << "at " << i;
  EXPECT_EQ(guest.received, input);
  EXPECT_FALSE(quit);
  (*console)->stop_input();
}

TEST(Console, CtrlAxQuitsAndCtrlACtrlASendsOneCtrlA) {
  Pipe in, out;
  auto console = Console::create({in.r.get(), out.w.get(), true});
  ASSERT_TRUE(console.ok());
  std::mutex m;
  std::string got;
  std::atomic<bool> quit{false};
  (*console)->start_input(
      [&](std::span<const uint8_t> b) {
        std::lock_guard lock(m);
        got.append(reinterpret_cast<const char*>(b.data()), b.size());
        return b.size();
      },
      [&] { quit = true; });
  const std::string keys = "ab\x01\x01" "c\x01x" "after";
  ASSERT_EQ(write(in.w.get(), keys.data(), keys.size()), static_cast<ssize_t>(keys.size()));
  for (int i = 0; i < 500 && !quit; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  EXPECT_TRUE(quit);
  (*console)->stop_input();
  std::lock_guard lock(m);
  EXPECT_EQ(got, "ab\x01" "c");  // nothing after the quit command reaches the guest
}

TEST(Console, EscapesOffPassesCtrlAThrough) {
  Pipe in, out;
  auto console = Console::create({in.r.get(), out.w.get(), false});
  ASSERT_TRUE(console.ok());
  std::mutex m;
  std::string got;
  (*console)->start_input(
      [&](std::span<const uint8_t> b) {
        std::lock_guard lock(m);
        got.append(reinterpret_cast<const char*>(b.data()), b.size());
        return b.size();
      },
      [] { FAIL() << "quit without escapes"; });
  ASSERT_EQ(write(in.w.get(), "\x01x", 2), 2);
  for (int i = 0; i < 500; ++i) {
    {
      std::lock_guard lock(m);
      if (got.size() == 2) break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  (*console)->stop_input();
  EXPECT_EQ(got, "\x01x");
}

TEST(Console, OutputGoesToTheHostAndTheLastLinesAreKept) {
  Pipe out;
  auto console = Console::create({-1, out.w.get(), true});
  ASSERT_TRUE(console.ok());
  std::string expected;
  for (int i = 0; i < 30; ++i) {
    const std::string line = "line " + std::to_string(i) + "\r\n";
    expected += line;
    (*console)->write_output({reinterpret_cast<const uint8_t*>(line.data()), line.size()});
  }
  (*console)->write_output(static_cast<uint8_t>('#'));
  const auto lines = (*console)->recent_lines();
  ASSERT_EQ(lines.size(), Console::kRecentLines + 1);
  EXPECT_EQ(lines.front(), "line 10");
  EXPECT_EQ(lines[Console::kRecentLines - 1], "line 29");
  EXPECT_EQ(lines.back(), "#");
  EXPECT_FALSE((*console)->saw_kernel_panic());
  out.w.reset();
  console->reset();
  EXPECT_EQ(drain(out.r.get()), expected + "#");
}

TEST(Console, RemembersAKernelPanicEvenAfterItScrollsAway) {
  Pipe out;
  auto console = Console::create({-1, out.w.get(), true});
  ASSERT_TRUE(console.ok());
  const std::string panic = "[    1.0] Kernel panic - not syncing: VFS: Unable to mount root\r\n";
  (*console)->write_output({reinterpret_cast<const uint8_t*>(panic.data()), panic.size()});
  for (int i = 0; i < 40; ++i) (*console)->write_output(std::span<const uint8_t>(
      reinterpret_cast<const uint8_t*>("trace\n"), 6));
  EXPECT_TRUE((*console)->saw_kernel_panic());
}

}  // namespace
}  // namespace doppel
