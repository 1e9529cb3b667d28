// virtio-console (virtio 1.2 5.3), device id 3, a single port (no MULTIPORT): transmitq
// output goes to a ConsoleStream (file or Unix socket); with a socket, a worker thread feeds
// what the client sends into receiveq, reading only while the guest has buffers posted.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include "backends/console_stream.h"
#include "base/unique_fd.h"
#include "devices/virtio/virtio_device.h"

namespace doppel::virtio {

class VirtioConsole final : public VirtioDevice {
 public:
  static constexpr uint16_t kQueueSize = 64;
  static constexpr unsigned kReceiveQ = 0;
  static constexpr unsigned kTransmitQ = 1;

  static Result<std::unique_ptr<VirtioConsole>> create(GuestMemory& mem,
                                                       std::unique_ptr<ConsoleStream> stream,
                                                       std::string name);
  ~VirtioConsole() override;

  std::string_view name() const override { return m_name; }
  uint32_t device_id() const override { return 3; }
  uint64_t device_features() const override { return 0; }
  void read_config(uint64_t offset, std::span<uint8_t> out) const override;
  void activate() override;
  void process_queue(unsigned q) override;
  void quiesce() override;

 private:
  VirtioConsole(GuestMemory& mem, std::unique_ptr<ConsoleStream> stream, std::string name);
  void rx_loop();
  void wake();

  std::unique_ptr<ConsoleStream> m_stream;
  std::string m_name;
  UniqueFd m_wake;  // eventfd: RX buffers added, or stop
  std::thread m_rx_thread;
  std::atomic<bool> m_stop{false};
  std::atomic<bool> m_rx_blocked{false};  // no RX buffers: stop reading the client
};

}  // namespace doppel::virtio
