#include "engines/emu/riscv64/plic.h"

#include <algorithm>

#include "base/log.h"

namespace doppel::rv64 {

class Plic::Line final : public IrqLine {
 public:
  Line(Plic& plic, unsigned id) : m_plic(plic), m_id(id) {}
  void set_level(bool high) override { m_plic.set_level(m_id, high); }

 private:
  Plic& m_plic;
  unsigned m_id;
};

Plic::Plic(unsigned sources, std::vector<InterruptPins*> harts)
    : m_sources(std::clamp(sources, 2u, 1024u)), m_harts(std::move(harts)) {
  for (unsigned id = 0; id < m_sources; ++id) m_lines.push_back(std::make_unique<Line>(*this, id));
  std::lock_guard lock(m_mutex);
  m_state.priority.assign(m_sources, 0);
  m_state.level.assign(m_sources, 0);
  m_state.pending.assign(m_sources, 0);
  m_state.claimed.assign(m_sources, 0);
  m_state.enable.assign(contexts() * words(), 0);
  m_state.threshold.assign(contexts(), 0);
}

Plic::~Plic() = default;

IrqLine& Plic::line(unsigned id) { return *m_lines.at(id); }

void Plic::reset() {
  std::lock_guard lock(m_mutex);
  std::fill(m_state.priority.begin(), m_state.priority.end(), 0);
  std::fill(m_state.claimed.begin(), m_state.claimed.end(), 0);
  std::fill(m_state.enable.begin(), m_state.enable.end(), 0);
  std::fill(m_state.threshold.begin(), m_state.threshold.end(), 0);
  // Lines are the devices' business: keep them, and what they make pending.
  m_state.pending = m_state.level;
  update_pins_locked();
}

void Plic::set_level(unsigned id, bool high) {
  if (id == 0 || id >= m_sources) return;
  std::lock_guard lock(m_mutex);
  m_state.level[id] = high;
  // The gateway holds back a new request while one is in service (claimed).
  m_state.pending[id] = high && !m_state.claimed[id];
  update_pins_locked();
}

unsigned Plic::best_locked(unsigned context) const {
  const uint32_t* enable = &m_state.enable[context * words()];
  unsigned best = 0;
  uint32_t best_priority = m_state.threshold[context];
  for (unsigned id = 1; id < m_sources; ++id) {
    if (!m_state.pending[id] || !(enable[id / 32] >> (id % 32) & 1)) continue;
    // Strictly greater: ties go to the lowest id, and priority must exceed the threshold.
    if (m_state.priority[id] > best_priority) {
      best = id;
      best_priority = m_state.priority[id];
    }
  }
  return best;
}

void Plic::update_pins_locked() {
  for (unsigned h = 0; h < m_harts.size(); ++h) {
    m_harts[h]->set(kMipMEIP, best_locked(2 * h) != 0);
    m_harts[h]->set(kMipSEIP, best_locked(2 * h + 1) != 0);
  }
}

uint64_t Plic::read(uint64_t offset, unsigned size) {
  (void)size;
  if (offset % 4 != 0) return 0;
  std::lock_guard lock(m_mutex);
  if (offset < kPendingBase) {
    const uint64_t id = offset / 4;
    return id < m_sources ? m_state.priority[id] : 0;
  }
  if (offset < kEnableBase) {
    const uint64_t word = (offset - kPendingBase) / 4;
    if (word >= words()) return 0;
    uint32_t bits = 0;
    for (unsigned b = 0; b < 32; ++b) {
      const uint64_t id = word * 32 + b;
      if (id < m_sources && m_state.pending[id]) bits |= 1u << b;
    }
    return bits;
  }
  if (offset < kContextBase) {
    const uint64_t rel = offset - kEnableBase;
    const uint64_t context = rel / kEnableStride;
    const uint64_t word = (rel % kEnableStride) / 4;
    if (context >= contexts() || word >= words()) return 0;
    return m_state.enable[context * words() + word];
  }
  const uint64_t rel = offset - kContextBase;
  const uint64_t context = rel / kContextStride;
  if (context >= contexts()) return 0;
  switch (rel % kContextStride) {
    case 0:
      return m_state.threshold[context];
    case 4: {
      // Claim: the best pending source, which stops being pending until complete.
      const unsigned id = best_locked(static_cast<unsigned>(context));
      spdlog::trace("plic: context {} claims source {}", context, id);
      if (id != 0) {
        m_state.pending[id] = 0;
        m_state.claimed[id] = 1;
        update_pins_locked();
      }
      return id;
    }
    default:
      return 0;
  }
}

void Plic::write(uint64_t offset, unsigned size, uint64_t value64) {
  (void)size;
  if (offset % 4 != 0) return;
  const auto value = static_cast<uint32_t>(value64);
  std::lock_guard lock(m_mutex);
  if (offset < kPendingBase) {
    const uint64_t id = offset / 4;
    if (id == 0 || id >= m_sources) return;
    m_state.priority[id] = std::min(value, kMaxPriority);
    update_pins_locked();
    return;
  }
  if (offset < kEnableBase) return;  // pending bits are read-only
  if (offset < kContextBase) {
    const uint64_t rel = offset - kEnableBase;
    const uint64_t context = rel / kEnableStride;
    const uint64_t word = (rel % kEnableStride) / 4;
    if (context >= contexts() || word >= words()) return;
    uint32_t bits = value;
    if (word == 0) bits &= ~1u;  // source 0 does not exist
    if (word == words() - 1 && m_sources % 32) bits &= (1u << (m_sources % 32)) - 1;
    m_state.enable[context * words() + word] = bits;
    update_pins_locked();
    return;
  }
  const uint64_t rel = offset - kContextBase;
  const uint64_t context = rel / kContextStride;
  if (context >= contexts()) return;
  switch (rel % kContextStride) {
    case 0:
      m_state.threshold[context] = std::min(value, kMaxPriority);
      update_pins_locked();
      break;
    case 4:
      // Complete: the gateway may forward the next request; a line still high is pending.
      if (value == 0 || value >= m_sources || !m_state.claimed[value]) {
        DOPPEL_GUEST_WARN("plic: context {} completed source {} that was not claimed", context,
                          value);
        return;
      }
      m_state.claimed[value] = 0;
      m_state.pending[value] = m_state.level[value];
      update_pins_locked();
      break;
    default:
      break;
  }
}

PlicState Plic::save() const {
  std::lock_guard lock(m_mutex);
  return m_state;
}

Result<void> Plic::restore(const PlicState& state) {
  if (state.version != PlicState::kVersion)
    return Error::format("plic: state version {} is not supported (expected {})", state.version,
                         PlicState::kVersion);
  if (state.priority.size() != m_sources || state.level.size() != m_sources ||
      state.pending.size() != m_sources || state.claimed.size() != m_sources ||
      state.enable.size() != contexts() * words() || state.threshold.size() != contexts())
    return Error("plic: state does not match this PLIC's sources and contexts");
  std::lock_guard lock(m_mutex);
  m_state = state;
  update_pins_locked();
  return {};
}

}  // namespace doppel::rv64
