// A FIFO of requests held back by a rate limiter (backends/rate_limiter.h), released by a
// timer thread as the buckets refill. A throttled device hands each request here instead
// of running it: it runs at once, on the caller's thread, when the limiter allows it and
// nothing waits ahead of it; otherwise it waits its turn, and the timer thread runs it when
// its tokens are there. Nothing is ever dropped, and a vCPU never sleeps here.
//
// Threads: submit() from the device's notifying thread (a vCPU), drain_now() and
// set_limits() from any thread; jobs run on the submitting thread or the timer thread,
// never two at once, always in submission order. m_lock guards everything below it.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include "backends/rate_limiter.h"

namespace doppel {

class ThrottleQueue {
 public:
  ThrottleQueue(const RateLimiterConfig& config, std::string name);
  ~ThrottleQueue();  // runs whatever is still queued, then stops the timer thread
  ThrottleQueue(const ThrottleQueue&) = delete;
  ThrottleQueue& operator=(const ThrottleQueue&) = delete;

  // A request of `bytes` data bytes (and one operation).
  void submit(uint64_t bytes, std::function<void()> job);
  // Runs every queued job now, on this thread, whatever the limit (their tokens are taken
  // as a debt the next requests wait for). For a device's quiesce(): pause and snapshot
  // must find no request left behind.
  void drain_now();
  // New buckets (full, as a new limiter's) for those the patch gives (an API PATCH).
  void set_limits(const RateLimiterPatch& patch);
  // Requests that had to wait.
  uint64_t throttled() const;
  // The buckets, for a snapshot (rule 9); the queue itself is empty when the device is
  // quiescent. restore() replaces the buckets, refusing a state no bucket could be in.
  RateLimiterState save();
  Result<void> restore(const RateLimiterState& state);

 private:
  struct Job {
    uint64_t bytes;
    std::function<void()> run;
  };
  void timer_loop();

  std::string m_name;
  mutable std::mutex m_lock;
  std::condition_variable m_cv;
  RateLimiter m_limiter;       // GUARDED_BY(m_lock)
  std::deque<Job> m_jobs;      // GUARDED_BY(m_lock)
  bool m_busy = false;         // GUARDED_BY(m_lock): a job is running (on any thread)
  bool m_stopping = false;     // GUARDED_BY(m_lock)
  uint64_t m_throttled = 0;    // GUARDED_BY(m_lock)
  std::thread m_thread;
};

}  // namespace doppel
