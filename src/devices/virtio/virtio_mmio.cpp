#include "devices/virtio/virtio_mmio.h"

#include <array>

#include "base/log.h"

namespace doppel::virtio {

VirtioMmio::VirtioMmio(std::unique_ptr<VirtioDevice> device, IrqLine& irq)
    : m_device(std::move(device)), m_irq(irq), m_name(m_device->name()) {
  m_device->attach(*this);
}

VirtioMmio::~VirtioMmio() { stop(); }

uint64_t VirtioMmio::offered_features() const {
  return m_device->device_features() | kFVersion1 | kFEventIdx | kFIndirectDesc;
}

uint32_t VirtioMmio::interrupt_status() const {
  std::lock_guard lock(m_irq_lock);
  return m_interrupt_status;
}

void VirtioMmio::set_interrupt(uint32_t bits) {
  std::lock_guard lock(m_irq_lock);
  m_interrupt_status |= bits;
  m_irq.set_level(true);
}

void VirtioMmio::ack_interrupt(uint32_t bits) {
  std::lock_guard lock(m_irq_lock);
  m_interrupt_status &= ~bits;
  m_irq.set_level(m_interrupt_status != 0);
}

void VirtioMmio::signal_used() { set_interrupt(kInterruptUsedBuffer); }

void VirtioMmio::signal_config_change() {
  m_config_generation.fetch_add(1);
  if (m_status.load() & kStatusDriverOk) set_interrupt(kInterruptConfigChange);
}

void VirtioMmio::signal_needs_reset() {
  // virtio 1.2 2.1.2: set DEVICE_NEEDS_RESET and, once DRIVER_OK, notify the driver.
  const uint32_t old = m_status.fetch_or(kStatusNeedsReset);
  if (!(old & kStatusNeedsReset) && (old & kStatusDriverOk)) set_interrupt(kInterruptConfigChange);
}

uint64_t VirtioMmio::read(uint64_t offset, unsigned size) {
  if (offset >= static_cast<uint64_t>(MmioReg::kConfig)) {
    if (size != 1 && size != 2 && size != 4 && size != 8) return 0;
    std::array<uint8_t, 8> buf{};
    m_device->read_config(offset - static_cast<uint64_t>(MmioReg::kConfig),
                          std::span<uint8_t>(buf.data(), size));
    return load_le<uint64_t>(buf.data());
  }
  // 4.2.2.2: registers are accessed with 32-bit aligned reads.
  if (size != 4 || offset % 4 != 0) {
    DOPPEL_GUEST_WARN("{}: {}-byte read at register {:#x} ignored", m_name, size, offset);
    return 0;
  }
  std::lock_guard lock(m_lock);
  switch (static_cast<MmioReg>(offset)) {
    case MmioReg::kMagicValue: return kMmioMagic;
    case MmioReg::kVersion: return 2;
    case MmioReg::kDeviceId: return m_device->device_id();
    case MmioReg::kVendorId: return kMmioVendorId;
    case MmioReg::kDeviceFeatures:
      if (m_device_features_sel > 1) return 0;
      return static_cast<uint32_t>(offered_features() >> (32 * m_device_features_sel));
    case MmioReg::kQueueNumMax:
      if (m_queue_sel >= m_device->num_queues()) return 0;
      return m_device->queue(m_queue_sel).max_size();
    case MmioReg::kQueueReady:
      if (m_queue_sel >= m_device->num_queues()) return 0;
      return m_device->queue(m_queue_sel).ready() ? 1 : 0;
    case MmioReg::kInterruptStatus: return interrupt_status();
    case MmioReg::kStatus: return m_status.load();
    case MmioReg::kShmLenLow:
    case MmioReg::kShmLenHigh: return 0xffffffff;
    case MmioReg::kShmBaseLow:
    case MmioReg::kShmBaseHigh: return 0xffffffff;
    case MmioReg::kConfigGeneration: return m_config_generation.load();
    default:
      return 0;
  }
}

void VirtioMmio::write(uint64_t offset, unsigned size, uint64_t value) {
  if (offset >= static_cast<uint64_t>(MmioReg::kConfig)) {
    if (size != 1 && size != 2 && size != 4 && size != 8) return;
    std::array<uint8_t, 8> buf{};
    store_le<uint64_t>(buf.data(), value);
    m_device->write_config(offset - static_cast<uint64_t>(MmioReg::kConfig),
                           std::span<const uint8_t>(buf.data(), size));
    return;
  }
  if (size != 4 || offset % 4 != 0) {
    DOPPEL_GUEST_WARN("{}: {}-byte write at register {:#x} ignored", m_name, size, offset);
    return;
  }
  const auto v = static_cast<uint32_t>(value);
  // Outside m_lock: processing may take a while and must not block register access.
  if (static_cast<MmioReg>(offset) == MmioReg::kQueueNotify) {
    notify(v);
    return;
  }
  if (static_cast<MmioReg>(offset) == MmioReg::kInterruptAck) {
    ack_interrupt(v);
    return;
  }
  std::lock_guard lock(m_lock);
  const uint32_t status = m_status.load();
  // 3.1.1: queues are configured before DRIVER_OK and only while not ready.
  auto* q = m_queue_sel < m_device->num_queues() ? &m_device->queue(m_queue_sel) : nullptr;
  const bool queue_cfg_ok = q && !(status & kStatusDriverOk);
  auto set_low = [](uint64_t old, uint32_t low) { return (old & ~0xffffffffull) | low; };
  auto set_high = [](uint64_t old, uint32_t high) {
    return (old & 0xffffffffull) | (uint64_t{high} << 32);
  };
  switch (static_cast<MmioReg>(offset)) {
    case MmioReg::kDeviceFeaturesSel: m_device_features_sel = v; break;
    case MmioReg::kDriverFeatures:
      if (status & kStatusFeaturesOk) break;  // 3.1.1: features are final after FEATURES_OK
      if (m_driver_features_sel == 0)
        m_driver_features = set_low(m_driver_features, v);
      else if (m_driver_features_sel == 1)
        m_driver_features = set_high(m_driver_features, v);
      break;
    case MmioReg::kDriverFeaturesSel: m_driver_features_sel = v; break;
    case MmioReg::kQueueSel: m_queue_sel = v; break;
    case MmioReg::kQueueNum:
      if (queue_cfg_ok) q->set_size(v > 0xffff ? 0 : static_cast<uint16_t>(v));
      break;
    case MmioReg::kQueueReady:
      // Disabling is allowed at any time (Linux's del_vqs checks it reads back 0); enabling
      // only during setup.
      if (q && v == 0) {
        (void)q->set_ready(false);
      } else if (q && !(status & kStatusDriverOk)) {
        if (!q->set_ready(v != 0))
          DOPPEL_GUEST_WARN("{}: queue {}: size {} is not a power of two <= {}", m_name,
                            m_queue_sel, q->size(), q->max_size());
      }
      break;
    case MmioReg::kQueueDescLow:
      if (queue_cfg_ok) q->set_desc_addr(set_low(q->desc_addr(), v));
      break;
    case MmioReg::kQueueDescHigh:
      if (queue_cfg_ok) q->set_desc_addr(set_high(q->desc_addr(), v));
      break;
    case MmioReg::kQueueDriverLow:
      if (queue_cfg_ok) q->set_driver_addr(set_low(q->driver_addr(), v));
      break;
    case MmioReg::kQueueDriverHigh:
      if (queue_cfg_ok) q->set_driver_addr(set_high(q->driver_addr(), v));
      break;
    case MmioReg::kQueueDeviceLow:
      if (queue_cfg_ok) q->set_device_addr(set_low(q->device_addr(), v));
      break;
    case MmioReg::kQueueDeviceHigh:
      if (queue_cfg_ok) q->set_device_addr(set_high(q->device_addr(), v));
      break;
    case MmioReg::kStatus: write_status(v); break;
    default:
      DOPPEL_GUEST_WARN("{}: write to read-only or unknown register {:#x} ignored", m_name, offset);
      break;
  }
}

void VirtioMmio::write_status(uint32_t value) {
  if (value == 0) {
    reset();
    return;
  }
  const uint32_t old = m_status.load();
  uint32_t next = (value & 0xff) | (old & kStatusNeedsReset);
  if ((next & kStatusFeaturesOk) && !(old & kStatusFeaturesOk)) {
    // 3.1.1 step 5: accept only a subset of what we offered, and only modern drivers.
    const uint64_t f = m_driver_features;
    if ((f & ~offered_features()) != 0 || !(f & kFVersion1)) {
      DOPPEL_GUEST_WARN("{}: driver features {:#x} refused (offered {:#x})", m_name, f,
                        offered_features());
      next &= ~kStatusFeaturesOk;
    } else {
      m_device->set_driver_features(f);
      for (unsigned i = 0; i < m_device->num_queues(); i++)
        m_device->queue(i).set_features((f & kFEventIdx) != 0, (f & kFIndirectDesc) != 0);
    }
  }
  if ((next & kStatusDriverOk) && !(next & kStatusFeaturesOk)) next &= ~kStatusDriverOk;
  const bool activate = (next & kStatusDriverOk) && !(old & kStatusDriverOk);
  if (activate) {
    std::unique_lock run(m_run_lock);
    m_status.store(next);
    m_device->activate();
    return;
  }
  m_status.store(next);
}

void VirtioMmio::reset() {
  // 4.2.2.1 / 2.4: writing 0 resets the device; in-flight requests are completed first,
  // then every queue and register goes back to its initial value.
  std::unique_lock run(m_run_lock);
  m_device->quiesce();
  for (unsigned i = 0; i < m_device->num_queues(); i++) m_device->queue(i).reset();
  m_device->set_driver_features(0);
  m_driver_features = 0;
  m_device_features_sel = m_driver_features_sel = m_queue_sel = 0;
  m_status.store(0);
  ack_interrupt(~0u);
}

void VirtioMmio::notify(uint32_t queue) {
  std::shared_lock run(m_run_lock);
  const uint32_t status = m_status.load();
  if (!(status & kStatusDriverOk) || (status & kStatusNeedsReset)) return;
  if (queue >= m_device->num_queues()) {
    DOPPEL_GUEST_WARN("{}: notify for nonexistent queue {}", m_name, queue);
    return;
  }
  m_device->process_queue(queue);
}

void VirtioMmio::stop() {
  std::lock_guard lock(m_lock);
  std::unique_lock run(m_run_lock);
  m_device->quiesce();
}

void VirtioMmio::resume() {
  {
    std::lock_guard lock(m_lock);
    std::unique_lock run(m_run_lock);
    const uint32_t status = m_status.load();
    if (!(status & kStatusDriverOk) || (status & kStatusNeedsReset)) return;
    m_device->activate();
  }
  for (uint32_t q = 0; q < m_device->num_queues(); ++q) notify(q);
}

VirtioMmioState VirtioMmio::save() const {
  std::lock_guard lock(m_lock);
  VirtioMmioState s;
  s.status = m_status.load();
  s.device_features_sel = m_device_features_sel;
  s.driver_features_sel = m_driver_features_sel;
  s.driver_features = m_driver_features;
  s.queue_sel = m_queue_sel;
  s.interrupt_status = interrupt_status();
  s.config_generation = m_config_generation.load();
  for (unsigned i = 0; i < m_device->num_queues(); i++) s.queues.push_back(m_device->queue(i).save());
  return s;
}

Result<void> VirtioMmio::restore(const VirtioMmioState& s) {
  if (s.version != VirtioMmioState::kVersion)
    return Error::format("{}: snapshot state version {} is not supported (want {})", m_name,
                         s.version, VirtioMmioState::kVersion);
  if (s.queues.size() != m_device->num_queues())
    return Error::format("{}: snapshot has {} queues, device has {}", m_name, s.queues.size(),
                         m_device->num_queues());
  if ((s.driver_features & ~offered_features()) != 0)
    return Error::format("{}: snapshot features {:#x} not offered by this device ({:#x})", m_name,
                         s.driver_features, offered_features());
  std::lock_guard lock(m_lock);
  std::unique_lock run(m_run_lock);
  m_device->quiesce();
  m_device_features_sel = s.device_features_sel;
  m_driver_features_sel = s.driver_features_sel;
  m_driver_features = s.driver_features;
  m_queue_sel = s.queue_sel;
  m_config_generation.store(s.config_generation);
  m_device->set_driver_features(s.driver_features);
  for (unsigned i = 0; i < m_device->num_queues(); i++) {
    m_device->queue(i).restore(s.queues[i]);
    m_device->queue(i).set_features((s.driver_features & kFEventIdx) != 0,
                                    (s.driver_features & kFIndirectDesc) != 0);
  }
  m_status.store(s.status);
  {
    std::lock_guard irq(m_irq_lock);
    m_interrupt_status = s.interrupt_status;
    m_irq.set_level(m_interrupt_status != 0);
  }
  m_device->restored();
  if (s.status & kStatusDriverOk) m_device->activate();
  return {};
}

}  // namespace doppel::virtio
