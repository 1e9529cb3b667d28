#include "core/bus.h"

#include <algorithm>

namespace doppel {

Result<void> Bus::insert(uint64_t base, uint64_t size, Device& device) {
  if (size == 0)
    return Error::format("{} bus: device '{}' at {:#x}: size is zero", m_name, device.name(), base);
  const uint64_t last = base + (size - 1);
  if (last < base)
    return Error::format("{} bus: device '{}' at {:#x}+{:#x}: range wraps", m_name, device.name(),
                         base, size);
  auto it = std::lower_bound(m_mappings.begin(), m_mappings.end(), base,
                             [](const Mapping& m, uint64_t b) { return m.base < b; });
  const auto overlaps = [&](const Mapping& m) {
    return base <= m.base + (m.size - 1) && m.base <= last;
  };
  if (it != m_mappings.end() && overlaps(*it))
    return Error::format("{} bus: device '{}' at {:#x}+{:#x} overlaps '{}' at {:#x}+{:#x}", m_name,
                         device.name(), base, size, it->device->name(), it->base, it->size);
  if (it != m_mappings.begin() && overlaps(*std::prev(it))) {
    const auto& p = *std::prev(it);
    return Error::format("{} bus: device '{}' at {:#x}+{:#x} overlaps '{}' at {:#x}+{:#x}", m_name,
                         device.name(), base, size, p.device->name(), p.base, p.size);
  }
  m_mappings.insert(it, Mapping{base, size, &device, std::make_shared<Counters>()});
  return {};
}

const Bus::Mapping* Bus::find(uint64_t addr) const {
  auto it = std::upper_bound(m_mappings.begin(), m_mappings.end(), addr,
                             [](uint64_t a, const Mapping& m) { return a < m.base; });
  if (it == m_mappings.begin()) return nullptr;
  --it;
  return addr - it->base < it->size ? &*it : nullptr;
}

bool Bus::read(uint64_t addr, unsigned size, uint64_t& value) const {
  const Mapping* m = find(addr);
  if (!m || size == 0 || size - 1 > m->size - 1 - (addr - m->base)) return false;
  m->counters->reads.fetch_add(1, std::memory_order_relaxed);
  value = m->device->read(addr - m->base, size);
  return true;
}

bool Bus::write(uint64_t addr, unsigned size, uint64_t value) const {
  const Mapping* m = find(addr);
  if (!m || size == 0 || size - 1 > m->size - 1 - (addr - m->base)) return false;
  m->counters->writes.fetch_add(1, std::memory_order_relaxed);
  m->device->write(addr - m->base, size, value);
  return true;
}

}  // namespace doppel
