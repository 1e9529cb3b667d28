// virtio-vsock (virtio 1.2 5.10), device id 19, stream sockets, with Firecracker's host
// side on Unix sockets:
// - host -> guest: a host program connects to the device's Unix socket PATH and writes
//   "CONNECT <port>\n"; once the guest's listener on <port> accepts, it reads
//   "OK <hostport>\n" (the host end's vsock port) and the socket carries the stream;
// - guest -> host: a guest connection to CID 2 (the host) port P is a connection to the Unix
//   socket "PATH_P", which a host program listens on.
//
// Threads: process_queue() runs on the notifying vCPU thread; one worker thread (started by
// activate(), stopped by quiesce()) owns the Unix sockets' poll loop and fills the RX and
// event queues. Connection state is GUARDED_BY(m_lock); neither thread blocks on a socket
// while holding it.
//
// State: connections are host sockets and are not saved (as Firecracker). After a restore
// the guest gets a TRANSPORT_RESET event (5.10.6.7), which makes it drop every connection
// it had; the Unix socket PATH is listened on again by the restored VM.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "base/unique_fd.h"
#include "devices/virtio/virtio_device.h"

namespace doppel::virtio {

// The packet header (5.10.6: struct virtio_vsock_hdr), little-endian, 44 bytes.
struct VsockHeader {
  static constexpr size_t kSize = 44;
  uint64_t src_cid = 0;
  uint64_t dst_cid = 0;
  uint32_t src_port = 0;
  uint32_t dst_port = 0;
  uint32_t len = 0;
  uint16_t type = 0;
  uint16_t op = 0;
  uint32_t flags = 0;
  uint32_t buf_alloc = 0;
  uint32_t fwd_cnt = 0;
};
std::optional<VsockHeader> decode_vsock_header(std::span<const uint8_t> bytes);
std::array<uint8_t, VsockHeader::kSize> encode_vsock_header(const VsockHeader& h);

enum class VsockOp : uint16_t {  // 5.10.6
  kInvalid = 0,
  kRequest = 1,        // connect
  kResponse = 2,       // connection accepted
  kRst = 3,            // connection refused or reset
  kShutdown = 4,       // flags: kShutdownRcv, kShutdownSend
  kRw = 5,             // payload
  kCreditUpdate = 6,   // buf_alloc / fwd_cnt changed
  kCreditRequest = 7,  // please send a credit update
};
constexpr uint16_t kVsockTypeStream = 1;
constexpr uint32_t kShutdownRcv = 1;   // the sender will receive no more
constexpr uint32_t kShutdownSend = 2;  // the sender will send no more
constexpr uint64_t kVsockHostCid = 2;
constexpr uint32_t kVsockEventTransportReset = 0;

class VirtioVsock final : public VirtioDevice {
 public:
  static constexpr uint16_t kQueueSize = 256;
  static constexpr unsigned kRxQ = 0;
  static constexpr unsigned kTxQ = 1;
  static constexpr unsigned kEventQ = 2;
  // What we can buffer per connection toward the host (our buf_alloc to the guest).
  static constexpr uint32_t kBufAlloc = 256 * 1024;
  // Host-initiated connections get local ports from here (as Firecracker).
  static constexpr uint32_t kFirstHostPort = 1u << 30;

  // Listens on uds_path (an existing socket file nobody listens on is replaced). An
  // incoming migration's device is created `inactive`: the source, maybe on this host,
  // still listens on the path, and hands it over with the disks (activate_images()).
  static Result<std::unique_ptr<VirtioVsock>> create(GuestMemory& mem, uint64_t guest_cid,
                                                     std::string uds_path, std::string name,
                                                     bool inactive = false);
  ~VirtioVsock() override;

  std::string_view name() const override { return m_name; }
  uint32_t device_id() const override { return 19; }
  uint64_t device_features() const override { return 0; }  // stream only (5.10.3)
  void read_config(uint64_t offset, std::span<uint8_t> out) const override;
  void activate() override;
  void process_queue(unsigned q) override;
  void quiesce() override;
  void restored() override;
  // A migration's handover of the socket path, as of the disks' image locks: the source
  // stops listening and removes the path at the switch-over; the destination then listens.
  // Threads: the VMM's, with the device quiescent.
  Result<void> activate_images() override;
  void inactivate_images() override;

  // Packets from the guest refused as malformed (short, bad CID, ...), and live connections.
  uint64_t bad_packets() const { return m_bad_packets.load(); }
  size_t connection_count();

 private:
  struct Conn {
    UniqueFd fd;
    bool established = false;        // false: host-initiated, REQUEST sent, no RESPONSE yet
    std::vector<uint8_t> to_host;    // guest data the host socket has not taken yet
    uint32_t fwd_cnt = 0;            // bytes of guest data written to the host socket
    uint32_t fwd_cnt_sent = 0;       // the fwd_cnt the guest last heard
    uint32_t rx_cnt = 0;             // bytes sent to the guest
    uint32_t peer_buf_alloc = 0;     // the guest's receive buffer and its consumption
    uint32_t peer_fwd_cnt = 0;
    bool host_eof = false;           // the host will send no more (SHUTDOWN sent)
    bool guest_done_sending = false;  // the guest's SHUTDOWN(SEND) came
    bool host_shut_wr = false;
    uint32_t credit() const { return peer_buf_alloc - (rx_cnt - peer_fwd_cnt); }
  };
  using Key = std::pair<uint32_t, uint32_t>;  // (local = host-side port, peer = guest port)

  VirtioVsock(GuestMemory& mem, uint64_t guest_cid, std::string uds_path, std::string name);
  void worker();
  void wake();
  // All below hold m_lock.
  void handle_tx(const VsockHeader& h, std::span<const uint8_t> payload);
  void send_ctrl(const Key& key, VsockOp op, uint32_t flags = 0);
  void reset_conn(const Key& key);  // RST to the guest, the host socket closed
  void write_to_host(const Key& key, Conn& c);
  bool finish_if_done(const Key& key, Conn& c);
  void accept_host();
  void read_handshake(size_t i);
  void deliver_rx();
  void deliver_event();
  VsockHeader header_for(const Key& key, const Conn* c, VsockOp op) const;
  void close_all();

  const uint64_t m_guest_cid;
  const std::string m_uds_path;
  const std::string m_name;
  UniqueFd m_listener;
  UniqueFd m_wake;
  std::thread m_worker;
  std::atomic<bool> m_stop{false};
  std::atomic<uint64_t> m_bad_packets{0};

  std::mutex m_lock;
  // GUARDED_BY(m_lock):
  std::map<Key, Conn> m_conns;
  struct Handshake {
    UniqueFd fd;
    std::string line;
  };
  std::vector<Handshake> m_handshakes;  // host connections that have not sent CONNECT yet
  std::deque<VsockHeader> m_ctrl;       // control packets waiting for an RX buffer
  uint32_t m_next_host_port = kFirstHostPort;
  bool m_rx_blocked = false;            // no RX buffers: stop reading host sockets
  bool m_reset_event_pending = false;
};

}  // namespace doppel::virtio
