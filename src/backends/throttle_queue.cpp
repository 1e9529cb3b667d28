#include "backends/throttle_queue.h"
#include "base/thread_seal.h"

#include <pthread.h>

#include <chrono>

namespace doppel {

ThrottleQueue::ThrottleQueue(const RateLimiterConfig& config, std::string name)
    : m_name(std::move(name)), m_limiter(config, monotonic_ns()) {
  m_thread = std::thread([this] { timer_loop(); });
}

ThrottleQueue::~ThrottleQueue() {
  drain_now();
  {
    std::lock_guard lock(m_lock);
    m_stopping = true;
  }
  m_cv.notify_all();
  m_thread.join();
}

void ThrottleQueue::submit(uint64_t bytes, std::function<void()> job) {
  {
    std::unique_lock lock(m_lock);
    if (!m_jobs.empty() || m_busy || !m_limiter.try_consume(bytes, monotonic_ns())) {
      m_jobs.push_back({bytes, std::move(job)});
      m_throttled++;
      lock.unlock();
      m_cv.notify_all();
      return;
    }
    m_busy = true;
  }
  job();
  {
    std::lock_guard lock(m_lock);
    m_busy = false;
  }
  m_cv.notify_all();
}

void ThrottleQueue::drain_now() {
  std::deque<Job> jobs;
  {
    std::unique_lock lock(m_lock);
    m_cv.wait(lock, [this] { return !m_busy; });
    jobs.swap(m_jobs);
    const uint64_t now = monotonic_ns();
    for (const auto& j : jobs) m_limiter.consume_anyway(j.bytes, now);
    m_busy = true;
  }
  for (auto& j : jobs) j.run();
  {
    std::lock_guard lock(m_lock);
    m_busy = false;
  }
  m_cv.notify_all();
}

void ThrottleQueue::set_limits(const RateLimiterPatch& patch) {
  {
    std::lock_guard lock(m_lock);
    m_limiter.apply(patch, monotonic_ns());
  }
  m_cv.notify_all();
}

RateLimiterState ThrottleQueue::save() {
  std::lock_guard lock(m_lock);
  return m_limiter.save(monotonic_ns());
}

Result<void> ThrottleQueue::restore(const RateLimiterState& state) {
  RateLimiter limiter = TRY(RateLimiter::restore(state, monotonic_ns()));
  {
    std::lock_guard lock(m_lock);
    m_limiter = limiter;
  }
  m_cv.notify_all();
  return ok();
}

uint64_t ThrottleQueue::throttled() const {
  std::lock_guard lock(m_lock);
  return m_throttled;
}

void ThrottleQueue::timer_loop() {
  enter_thread(ThreadKind::kThrottle, -1, m_name.c_str());
  std::unique_lock lock(m_lock);
  for (;;) {
    m_cv.wait(lock, [this] { return m_stopping || (!m_jobs.empty() && !m_busy); });
    if (m_jobs.empty()) return;  // stopping, nothing left
    const uint64_t now = monotonic_ns();
    const uint64_t wait = m_limiter.wait_ns(m_jobs.front().bytes, now);
    if (wait != 0 && !m_stopping) {
      // Woken early by a new job, new limits or a drain: look again.
      m_cv.wait_for(lock, std::chrono::nanoseconds(wait));
      continue;
    }
    Job job = std::move(m_jobs.front());
    m_jobs.pop_front();
    m_limiter.consume_anyway(job.bytes, now);
    m_busy = true;
    lock.unlock();
    job.run();
    lock.lock();
    m_busy = false;
    m_cv.notify_all();
  }
}

}  // namespace doppel
