#include "base/log.h"

#include <spdlog/sinks/stdout_color_sinks.h>

namespace doppel::log {

void init(std::string_view level) {
  auto logger = spdlog::stderr_color_mt("doppel");
  logger->set_pattern("doppel: %^%l%$: %v");
  logger->set_level(spdlog::level::from_str(std::string(level)));
  spdlog::set_default_logger(logger);
}

bool RateLimit::allow() {
  const int64_t now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                             std::chrono::steady_clock::now().time_since_epoch())
                             .count();
  int64_t start = m_window_start_ms.load(std::memory_order_relaxed);
  if (now_ms - start >= 1000 &&
      m_window_start_ms.compare_exchange_strong(start, now_ms, std::memory_order_relaxed)) {
    m_in_window.store(0, std::memory_order_relaxed);
  }
  if (m_in_window.fetch_add(1, std::memory_order_relaxed) < kBurst) return true;
  m_suppressed.fetch_add(1, std::memory_order_relaxed);
  return false;
}

}  // namespace doppel::log
