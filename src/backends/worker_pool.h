// A few threads running jobs: keeps blocking host I/O off vCPU threads.
//
// Threads: submit() and drain() from any thread; jobs run on the pool's threads. m_lock
// guards the job queue and the in-flight count.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace doppel {

class WorkerPool {
 public:
  WorkerPool(unsigned threads, std::string name);
  ~WorkerPool();  // runs every queued job, then joins
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  void submit(std::function<void()> job);
  // Returns once every job submitted before the call has finished.
  void drain();

 private:
  void run();

  std::string m_name;
  std::mutex m_lock;
  std::condition_variable m_work_cv;
  std::condition_variable m_idle_cv;
  std::deque<std::function<void()>> m_jobs;  // GUARDED_BY(m_lock)
  unsigned m_busy = 0;                       // GUARDED_BY(m_lock)
  bool m_stopping = false;                   // GUARDED_BY(m_lock)
  std::vector<std::thread> m_threads;
};

}  // namespace doppel
