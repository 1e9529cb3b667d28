#include "backends/worker_pool.h"
#include "base/thread_seal.h"

#include <pthread.h>

namespace doppel {

WorkerPool::WorkerPool(unsigned threads, std::string name) : m_name(std::move(name)) {
  for (unsigned i = 0; i < threads; i++) {
    m_threads.emplace_back([this] { run(); });  // each names itself (enter_thread)
  }
}

WorkerPool::~WorkerPool() {
  {
    std::lock_guard lock(m_lock);
    m_stopping = true;
  }
  m_work_cv.notify_all();
  for (auto& t : m_threads) t.join();
}

void WorkerPool::submit(std::function<void()> job) {
  {
    std::lock_guard lock(m_lock);
    m_jobs.push_back(std::move(job));
  }
  m_work_cv.notify_one();
}

void WorkerPool::drain() {
  std::unique_lock lock(m_lock);
  m_idle_cv.wait(lock, [this] { return m_jobs.empty() && m_busy == 0; });
}

void WorkerPool::run() {
  enter_thread(ThreadKind::kBlockIo, -1, m_name.c_str());
  std::unique_lock lock(m_lock);
  for (;;) {
    m_work_cv.wait(lock, [this] { return m_stopping || !m_jobs.empty(); });
    if (m_jobs.empty()) return;  // stopping, and nothing left to run
    auto job = std::move(m_jobs.front());
    m_jobs.pop_front();
    m_busy++;
    lock.unlock();
    job();
    lock.lock();
    m_busy--;
    if (m_jobs.empty() && m_busy == 0) m_idle_cv.notify_all();
  }
}

}  // namespace doppel
