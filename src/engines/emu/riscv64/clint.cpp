#include "engines/emu/riscv64/clint.h"

#include <algorithm>
#include <chrono>
#include <limits>

#include "base/log.h"
#include "base/thread_seal.h"

namespace doppel::rv64 {

namespace {
constexpr uint64_t kNever = std::numeric_limits<uint64_t>::max();
// The timer thread re-checks at least this often even for far-away deadlines, so the
// tick-to-nanosecond conversion never overflows.
constexpr uint64_t kMaxSleepTicks = 60 * kTimebaseHz;

// Reads `size` bytes at byte `shift` of a 64-bit register.
uint64_t extract(uint64_t reg, unsigned shift, unsigned size) {
  const uint64_t v = reg >> (shift * 8);
  return size >= 8 ? v : v & ((1ull << (size * 8)) - 1);
}
uint64_t deposit(uint64_t reg, unsigned shift, unsigned size, uint64_t value) {
  const uint64_t mask = (size >= 8 ? kNever : (1ull << (size * 8)) - 1) << (shift * 8);
  return (reg & ~mask) | ((value << (shift * 8)) & mask);
}
}  // namespace

Clint::Clint(const Timebase& timebase, std::vector<InterruptPins*> harts)
    : m_timebase(timebase),
      m_harts(std::move(harts)),
      m_mtimecmp(m_harts.size(), kNever),
      m_msip(m_harts.size(), 0) {
  m_thread = std::thread([this] { timer_loop(); });
}

Clint::~Clint() {
  {
    std::lock_guard lock(m_mutex);
    m_stop = true;
  }
  m_cv.notify_all();
  m_thread.join();
}

void Clint::reset() {
  std::lock_guard lock(m_mutex);
  std::fill(m_mtimecmp.begin(), m_mtimecmp.end(), kNever);
  std::fill(m_msip.begin(), m_msip.end(), 0);
  for (auto* pins : m_harts) pins->set(kMipMSIP | kMipMTIP, false);
  ++m_generation;
  m_cv.notify_all();
}

void Clint::timebase_changed() {
  std::lock_guard lock(m_mutex);
  evaluate_timers_locked();
  ++m_generation;
  m_cv.notify_all();
}

uint64_t Clint::evaluate_timers_locked() {
  const uint64_t now = m_timebase.now();
  uint64_t earliest = kNever;
  for (size_t h = 0; h < m_harts.size(); ++h) {
    const bool fired = now >= m_mtimecmp[h];
    m_harts[h]->set(kMipMTIP, fired);
    if (!fired) earliest = std::min(earliest, m_mtimecmp[h]);
  }
  return earliest;
}

void Clint::timer_loop() {
  enter_thread(ThreadKind::kTimer);
  std::unique_lock lock(m_mutex);
  while (!m_stop) {
    const uint64_t deadline = evaluate_timers_locked();
    const uint64_t generation = m_generation;
    const auto changed = [&] { return m_stop || m_generation != generation; };
    if (deadline == kNever) {
      m_cv.wait(lock, changed);
      continue;
    }
    const uint64_t now = m_timebase.now();
    const uint64_t wake_ticks = now + std::min(deadline - now, kMaxSleepTicks);
    const uint64_t wake_ns = m_timebase.host_ns_at(wake_ticks);
    if (wake_ns == UINT64_MAX) {  // the clock is frozen: nothing fires until it goes on
      m_cv.wait(lock, changed);
      continue;
    }
    const auto wake =
        std::chrono::steady_clock::time_point(std::chrono::nanoseconds(wake_ns));
    m_cv.wait_until(lock, wake, changed);
  }
}

uint64_t Clint::read(uint64_t offset, unsigned size) {
  std::lock_guard lock(m_mutex);
  if (offset < kMsipBase + 4 * m_harts.size()) {
    return offset % 4 == 0 ? m_msip[offset / 4] : 0;
  }
  if (offset >= kMtimecmpBase && offset - kMtimecmpBase < 8 * m_harts.size()) {
    const uint64_t rel = offset - kMtimecmpBase;
    return extract(m_mtimecmp[rel / 8], static_cast<unsigned>(rel % 8), size);
  }
  if (offset >= kMtime && offset < kMtime + 8) {
    return extract(m_timebase.now(), static_cast<unsigned>(offset - kMtime), size);
  }
  return 0;
}

void Clint::write(uint64_t offset, unsigned size, uint64_t value) {
  std::lock_guard lock(m_mutex);
  if (offset < kMsipBase + 4 * m_harts.size()) {
    if (offset % 4 != 0) return;
    const size_t h = offset / 4;
    m_msip[h] = static_cast<uint32_t>(value & 1);
    m_harts[h]->set(kMipMSIP, (value & 1) != 0);
    return;
  }
  if (offset >= kMtimecmpBase && offset - kMtimecmpBase < 8 * m_harts.size()) {
    const uint64_t rel = offset - kMtimecmpBase;
    const size_t h = rel / 8;
    m_mtimecmp[h] = deposit(m_mtimecmp[h], static_cast<unsigned>(rel % 8), size, value);
    m_harts[h]->set(kMipMTIP, m_timebase.now() >= m_mtimecmp[h]);
    ++m_generation;
    m_cv.notify_all();
    return;
  }
  if (offset >= kMtime && offset < kMtime + 8) {
    DOPPEL_GUEST_WARN("clint: write to mtime ignored (mtime follows the host clock)");
  }
}

ClintState Clint::save() const {
  std::lock_guard lock(m_mutex);
  ClintState s;
  s.mtimecmp = m_mtimecmp;
  s.msip = m_msip;
  return s;
}

Result<void> Clint::restore(const ClintState& state) {
  if (state.version != ClintState::kVersion)
    return Error::format("clint: state version {} is not supported (expected {})", state.version,
                         ClintState::kVersion);
  if (state.mtimecmp.size() != m_harts.size() || state.msip.size() != m_harts.size())
    return Error::format("clint: state is for {} harts, this machine has {}",
                         state.mtimecmp.size(), m_harts.size());
  std::lock_guard lock(m_mutex);
  m_mtimecmp = state.mtimecmp;
  m_msip = state.msip;
  for (size_t h = 0; h < m_harts.size(); ++h) m_harts[h]->set(kMipMSIP, (m_msip[h] & 1) != 0);
  evaluate_timers_locked();
  ++m_generation;
  m_cv.notify_all();
  return {};
}

}  // namespace doppel::rv64
