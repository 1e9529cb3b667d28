// virtio-mmio transport, version 2 (modern only): virtio 1.2 4.2.2.
//
// Threads: read()/write() from vCPU threads; notify() from a vCPU or an ioeventfd thread;
// device workers call the Transport interface. Locks, in order:
//   m_lock (registers) -> m_run_lock (exclusive for reset/activate, shared while a queue is
//   processed) -> Virtqueue::m_lock -> m_irq_lock (InterruptStatus and the line level).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <vector>

#include "base/persist.h"
#include "core/device.h"
#include "core/irq.h"
#include "devices/virtio/virtio_device.h"

namespace doppel::virtio {

// Size of one virtio-mmio window on the bus (registers 0x000-0x0ff, config from 0x100).
constexpr uint64_t kMmioWindowSize = 0x200;
constexpr uint32_t kMmioMagic = 0x74726976;  // "virt"
constexpr uint32_t kMmioVendorId = 0x4c505044;  // "DPPL"

enum class MmioReg : uint64_t {
  kMagicValue = 0x000,         // R: 0x74726976
  kVersion = 0x004,            // R: 2
  kDeviceId = 0x008,           // R: virtio device id
  kVendorId = 0x00c,           // R
  kDeviceFeatures = 0x010,     // R: 32 feature bits selected by DeviceFeaturesSel
  kDeviceFeaturesSel = 0x014,  // W
  kDriverFeatures = 0x020,     // W: 32 feature bits selected by DriverFeaturesSel
  kDriverFeaturesSel = 0x024,  // W
  kQueueSel = 0x030,           // W
  kQueueNumMax = 0x034,        // R: 0 if the queue does not exist
  kQueueNum = 0x038,           // W
  kQueueReady = 0x044,         // RW
  kQueueNotify = 0x050,        // W: queue index
  kInterruptStatus = 0x060,    // R: bit 0 used buffer, bit 1 config change
  kInterruptAck = 0x064,       // W
  kStatus = 0x070,             // RW: device status; writing 0 resets
  kQueueDescLow = 0x080,       // W
  kQueueDescHigh = 0x084,      // W
  kQueueDriverLow = 0x090,     // W
  kQueueDriverHigh = 0x094,    // W
  kQueueDeviceLow = 0x0a0,     // W
  kQueueDeviceHigh = 0x0a4,    // W
  kShmSel = 0x0ac,             // W
  kShmLenLow = 0x0b0,          // R: -1, no shared memory regions
  kShmLenHigh = 0x0b4,         // R
  kShmBaseLow = 0x0b8,         // R
  kShmBaseHigh = 0x0bc,        // R
  kConfigGeneration = 0x0fc,   // R
  kConfig = 0x100,             // RW: device-specific configuration space
};

constexpr uint32_t kInterruptUsedBuffer = 1;
constexpr uint32_t kInterruptConfigChange = 2;

struct VirtioMmioState {
  static constexpr uint32_t kVersion = 1;
  uint32_t version = kVersion;
  uint32_t status = 0;
  uint32_t device_features_sel = 0;
  uint32_t driver_features_sel = 0;
  uint64_t driver_features = 0;
  uint32_t queue_sel = 0;
  uint32_t interrupt_status = 0;
  uint32_t config_generation = 0;
  std::vector<Virtqueue::State> queues;
};

class VirtioMmio final : public Device, public Transport, public Persist<VirtioMmioState> {
 public:
  VirtioMmio(std::unique_ptr<VirtioDevice> device, IrqLine& irq);
  ~VirtioMmio() override;

  std::string_view name() const override { return m_name; }
  uint64_t read(uint64_t offset, unsigned size) override;
  void write(uint64_t offset, unsigned size, uint64_t value) override;
  Counters counters() const override { return m_device->counters(); }

  // Processes a notification for queue `queue` as a QueueNotify write would (for an engine
  // that delivers QueueNotify through an ioeventfd).
  void notify(uint32_t queue);
  // VM stop or pause: completes or fails in-flight requests and stops device threads; no
  // device thread touches guest memory or the queues until resume().
  void stop();
  // VM resume: restarts a device the driver had running, then looks at each of its queues
  // once (buffers the driver added while the VM was paused or saved).
  void resume();

  VirtioDevice& device() { return *m_device; }
  uint32_t status() const { return m_status.load(); }
  uint32_t interrupt_status() const;

  // Transport
  void signal_used() override;
  void signal_config_change() override;
  void signal_needs_reset() override;

  // Persist: transport and queue state. The device must be quiescent (VM paused).
  VirtioMmioState save() const override;
  Result<void> restore(const VirtioMmioState& state) override;

 private:
  uint64_t offered_features() const;
  void write_status(uint32_t value);  // holds m_lock
  void reset();                       // holds m_lock
  void set_interrupt(uint32_t bits);
  void ack_interrupt(uint32_t bits);

  std::unique_ptr<VirtioDevice> m_device;
  IrqLine& m_irq;
  std::string m_name;

  mutable std::mutex m_lock;
  std::shared_mutex m_run_lock;
  // GUARDED_BY(m_lock):
  uint32_t m_device_features_sel = 0;
  uint32_t m_driver_features_sel = 0;
  uint64_t m_driver_features = 0;
  uint32_t m_queue_sel = 0;
  // Atomic: workers set NEEDS_RESET without m_lock.
  std::atomic<uint32_t> m_status{0};
  std::atomic<uint32_t> m_config_generation{0};
  mutable std::mutex m_irq_lock;
  uint32_t m_interrupt_status = 0;  // GUARDED_BY(m_irq_lock)
};

}  // namespace doppel::virtio
