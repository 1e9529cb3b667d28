// Logging: spdlog, to stderr, so the guest console on stdout stays clean.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string_view>

#include <spdlog/spdlog.h>

namespace doppel::log {

// Level names as spdlog spells them: trace, debug, info, warn, error, off.
void init(std::string_view level);

// Rate limiting for messages a guest can trigger at will (rule 2: a guest's mistake is
// logged rate-limited and counted, never fatal). At most kBurst messages per second.
// Thread-safe: any thread may call allow().
class RateLimit {
 public:
  bool allow();
  uint64_t suppressed() const { return m_suppressed.load(std::memory_order_relaxed); }

 private:
  static constexpr int kBurst = 10;
  std::atomic<int64_t> m_window_start_ms{0};
  std::atomic<int> m_in_window{0};
  std::atomic<uint64_t> m_suppressed{0};
};

}  // namespace doppel::log

// Logs a guest-triggered warning at most a few times per second per call site.
#define DOPPEL_GUEST_WARN(...)                          \
  do {                                                  \
    static ::doppel::log::RateLimit _doppel_rl;         \
    if (_doppel_rl.allow()) spdlog::warn(__VA_ARGS__);  \
  } while (0)
