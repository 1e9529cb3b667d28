// virtio-console (virtio 1.2 5.3), device id 3, a single port (no MULTIPORT): transmitq
// output goes to a ConsoleStream (file or Unix socket); with a socket, a worker thread feeds
// what the client sends into receiveq, reading only while the guest has buffers posted.
//
// Back-pressure: a socket client that reads slowly holds the transmit chain it could not
// take whole; the device pops no more until the worker sees the socket writable again, so
// the guest's queue fills and its driver waits (as it waits for a slow stdout), instead of
// output being dropped. Threads: process_queue() on a vCPU, the worker; m_tx_mutex guards
// the m_tx_* state. Lock order: m_tx_mutex, then the stream's lock.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>
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
  // Writes transmit chains until the queue is empty or the client would block.
  void drain_tx();  // REQUIRES(m_tx_mutex)

  std::unique_ptr<ConsoleStream> m_stream;
  std::string m_name;
  UniqueFd m_wake;  // eventfd: RX buffers added, or stop
  std::thread m_rx_thread;
  std::atomic<bool> m_stop{false};
  std::atomic<bool> m_rx_blocked{false};  // no RX buffers: stop reading the client
  std::mutex m_tx_mutex;
  std::optional<uint16_t> m_tx_head;     // GUARDED_BY(m_tx_mutex): a chain partly written
  std::vector<iovec> m_tx_iov;           // GUARDED_BY(m_tx_mutex): its bytes, from m_tx_first
  size_t m_tx_first = 0;                 // GUARDED_BY(m_tx_mutex)
  std::atomic<bool> m_tx_blocked{false};  // the client would block: the worker polls POLLOUT
};

}  // namespace doppel::virtio
