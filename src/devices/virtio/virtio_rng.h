// virtio-rng / entropy device (virtio 1.2 5.4), device id 4: fills every device-writable
// buffer from the host's getrandom(2).
#pragma once

#include <string>

#include "devices/virtio/virtio_device.h"

namespace doppel::virtio {

class VirtioRng final : public VirtioDevice {
 public:
  static constexpr uint16_t kQueueSize = 64;
  // Bytes served per request at most, so one request cannot hold a vCPU for long.
  static constexpr uint32_t kMaxRequestBytes = 64 * 1024;

  VirtioRng(GuestMemory& mem, std::string name)
      : VirtioDevice(mem, 1, kQueueSize), m_name(std::move(name)) {}

  std::string_view name() const override { return m_name; }
  uint32_t device_id() const override { return 4; }
  uint64_t device_features() const override { return 0; }
  void read_config(uint64_t, std::span<uint8_t> out) const override {
    std::fill(out.begin(), out.end(), uint8_t{0});
  }
  void process_queue(unsigned q) override;

 private:
  std::string m_name;
};

}  // namespace doppel::virtio
