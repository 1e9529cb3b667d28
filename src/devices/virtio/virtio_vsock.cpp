#include "devices/virtio/virtio_vsock.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cstring>

#include "base/bits.h"
#include "base/log.h"
#include "base/thread_seal.h"

namespace doppel::virtio {

namespace {

constexpr size_t kMaxHandshakeLine = 32;  // "CONNECT 4294967295\n" and some slack
constexpr size_t kMaxHandshakes = 64;
constexpr uint32_t kMaxPayload = 64 * 1024;  // what one RX packet carries at most
// Bounds on what a guest can make us hold: open connections, and control packets (RSTs
// for its bad requests) waiting while it posts no RX buffers. Past them: RST, or drop.
constexpr size_t kMaxConnections = 1024;
constexpr size_t kMaxPendingCtrl = 4096;

bool fill_sockaddr(const std::string& path, sockaddr_un& addr) {
  addr = {};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof addr.sun_path) return false;
  std::memcpy(addr.sun_path, path.data(), path.size());
  return true;
}

}  // namespace

std::optional<VsockHeader> decode_vsock_header(std::span<const uint8_t> b) {
  if (b.size() < VsockHeader::kSize) return std::nullopt;
  VsockHeader h;
  h.src_cid = load_le<uint64_t>(&b[0]);
  h.dst_cid = load_le<uint64_t>(&b[8]);
  h.src_port = load_le<uint32_t>(&b[16]);
  h.dst_port = load_le<uint32_t>(&b[20]);
  h.len = load_le<uint32_t>(&b[24]);
  h.type = load_le<uint16_t>(&b[28]);
  h.op = load_le<uint16_t>(&b[30]);
  h.flags = load_le<uint32_t>(&b[32]);
  h.buf_alloc = load_le<uint32_t>(&b[36]);
  h.fwd_cnt = load_le<uint32_t>(&b[40]);
  return h;
}

std::array<uint8_t, VsockHeader::kSize> encode_vsock_header(const VsockHeader& h) {
  std::array<uint8_t, VsockHeader::kSize> b{};
  store_le<uint64_t>(&b[0], h.src_cid);
  store_le<uint64_t>(&b[8], h.dst_cid);
  store_le<uint32_t>(&b[16], h.src_port);
  store_le<uint32_t>(&b[20], h.dst_port);
  store_le<uint32_t>(&b[24], h.len);
  store_le<uint16_t>(&b[28], h.type);
  store_le<uint16_t>(&b[30], h.op);
  store_le<uint32_t>(&b[32], h.flags);
  store_le<uint32_t>(&b[36], h.buf_alloc);
  store_le<uint32_t>(&b[40], h.fwd_cnt);
  return b;
}

Result<std::unique_ptr<VirtioVsock>> VirtioVsock::create(GuestMemory& mem, uint64_t guest_cid,
                                                         std::string uds_path, std::string name,
                                                         bool inactive) {
  const std::string what = fmt::format("vsock uds {}", uds_path);
  sockaddr_un addr;
  // Guest connections go to "PATH_<port>": leave room for the longest suffix.
  if (!fill_sockaddr(uds_path, addr) || uds_path.size() + 11 >= sizeof addr.sun_path)
    return Error::format("{}: the path must be 1 to {} bytes", what, sizeof addr.sun_path - 12);
  auto dev = std::unique_ptr<VirtioVsock>(new VirtioVsock(mem, guest_cid, std::move(uds_path), std::move(name)));
  dev->m_wake.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!dev->m_wake.valid()) return Error::from_errno(fmt::format("{}: eventfd", what));
  if (!inactive) TRY(dev->activate_images());
  return dev;
}

Result<void> VirtioVsock::activate_images() {
  if (m_listener.valid()) return ok();
  const std::string what = fmt::format("vsock uds {}", m_uds_path);
  sockaddr_un addr;
  fill_sockaddr(m_uds_path, addr);  // checked by create()
  UniqueFd listener(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!listener.valid()) return Error::from_errno(fmt::format("{}: socket", what));
  struct stat st{};
  if (::lstat(m_uds_path.c_str(), &st) == 0) {
    // A socket file someone still listens on is another VM's: refuse. A stale one goes.
    UniqueFd probe(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!S_ISSOCK(st.st_mode))
      return Error::format("{}: exists and is not a socket", what);
    if (::connect(probe.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0)
      return Error::format("{}: in use (another VM listens on it)", what);
    ::unlink(m_uds_path.c_str());
  }
  if (::bind(listener.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
    return Error::from_errno(fmt::format("{}: bind", what));
  if (::listen(listener.get(), 64) != 0) {
    ::unlink(m_uds_path.c_str());
    return Error::from_errno(fmt::format("{}: listen", what));
  }
  std::lock_guard lock(m_lock);
  m_listener = std::move(listener);
  return ok();
}

void VirtioVsock::inactivate_images() {
  std::lock_guard lock(m_lock);
  if (!m_listener.valid()) return;
  ::unlink(m_uds_path.c_str());
  m_listener.reset();
}

VirtioVsock::VirtioVsock(GuestMemory& mem, uint64_t guest_cid, std::string uds_path, std::string name)
    : VirtioDevice(mem, 3, kQueueSize),
      m_guest_cid(guest_cid),
      m_uds_path(std::move(uds_path)),
      m_name(std::move(name)) {}

VirtioVsock::~VirtioVsock() {
  quiesce();
  if (m_listener.valid()) ::unlink(m_uds_path.c_str());
}

void VirtioVsock::read_config(uint64_t offset, std::span<uint8_t> out) const {
  std::array<uint8_t, 8> cfg{};  // struct virtio_vsock_config { le64 guest_cid; }
  store_le<uint64_t>(cfg.data(), m_guest_cid);
  read_config_bytes(cfg, offset, out);
}

void VirtioVsock::wake() {
  const uint64_t one = 1;
  (void)!::write(m_wake.get(), &one, sizeof one);
}

void VirtioVsock::activate() {
  if (m_worker.joinable()) return;
  m_stop = false;
  {
    std::lock_guard lock(m_lock);
    m_rx_blocked = false;
  }
  m_worker = std::thread([this] { worker(); });
}

void VirtioVsock::quiesce() {
  if (!m_worker.joinable()) return;
  m_stop = true;
  wake();
  m_worker.join();
}

void VirtioVsock::close_all() {
  m_conns.clear();
  m_handshakes.clear();
  m_ctrl.clear();
}

void VirtioVsock::restored() {
  // The guest's connections were to sockets of another process: tell it to drop them all.
  std::lock_guard lock(m_lock);
  close_all();
  m_reset_event_pending = true;
}

size_t VirtioVsock::connection_count() {
  std::lock_guard lock(m_lock);
  return m_conns.size();
}

VsockHeader VirtioVsock::header_for(const Key& key, const Conn* c, VsockOp op) const {
  VsockHeader h;
  h.src_cid = kVsockHostCid;
  h.dst_cid = m_guest_cid;
  h.src_port = key.first;
  h.dst_port = key.second;
  h.type = kVsockTypeStream;
  h.op = static_cast<uint16_t>(op);
  h.buf_alloc = kBufAlloc;
  h.fwd_cnt = c ? c->fwd_cnt : 0;
  return h;
}

void VirtioVsock::send_ctrl(const Key& key, VsockOp op, uint32_t flags) {
  auto it = m_conns.find(key);
  VsockHeader h = header_for(key, it == m_conns.end() ? nullptr : &it->second, op);
  h.flags = flags;
  if (it != m_conns.end()) it->second.fwd_cnt_sent = it->second.fwd_cnt;
  if (m_ctrl.size() >= kMaxPendingCtrl) {
    m_bad_packets++;  // the guest is not reading: the packet is lost, as on a full queue
    return;
  }
  m_ctrl.push_back(h);
}

void VirtioVsock::reset_conn(const Key& key) {
  send_ctrl(key, VsockOp::kRst);
  m_conns.erase(key);
}

void VirtioVsock::process_queue(unsigned q) {
  if (q == kRxQ || q == kEventQ) {
    std::lock_guard lock(m_lock);
    m_rx_blocked = false;
    wake();
    return;
  }
  if (q != kTxQ) return;
  std::lock_guard lock(m_lock);
  std::vector<uint8_t> payload;
  while (auto chain = pop(kTxQ)) {
    std::array<uint8_t, VsockHeader::kSize> raw{};
    std::optional<VsockHeader> h;
    if (chain->error == ChainError::kNone && copy_from(chain->readable, 0, raw) == raw.size())
      h = decode_vsock_header(raw);
    // The payload is the len bytes after the header; a chain shorter than that, or a len
    // beyond what one packet may carry, is malformed (5.10.6.3).
    if (!h || h->len > kMaxPayload || chain->readable_len < VsockHeader::kSize + uint64_t{h->len}) {
      m_bad_packets++;
      complete(kTxQ, chain->head, 0);
      continue;
    }
    payload.resize(h->len);
    (void)copy_from(chain->readable, VsockHeader::kSize, payload);
    complete(kTxQ, chain->head, 0);
    handle_tx(*h, payload);
  }
  wake();  // control packets to deliver, credit to use, host sockets to flush
}

void VirtioVsock::handle_tx(const VsockHeader& h, std::span<const uint8_t> payload) {
  if (h.src_cid != m_guest_cid || h.dst_cid != kVsockHostCid) {
    m_bad_packets++;  // not ours to answer: drop (Firecracker does the same)
    return;
  }
  const Key key{h.dst_port, h.src_port};
  if (h.type != kVsockTypeStream) {
    if (h.op != static_cast<uint16_t>(VsockOp::kRst)) send_ctrl(key, VsockOp::kRst);
    return;
  }
  auto it = m_conns.find(key);
  const auto op = static_cast<VsockOp>(h.op);
  if (op == VsockOp::kRequest) {
    if (it != m_conns.end()) {
      reset_conn(key);  // a second REQUEST for a live connection: the guest lost track
      return;
    }
    if (m_conns.size() >= kMaxConnections) {
      send_ctrl(key, VsockOp::kRst);
      return;
    }
    // Guest -> host: connect to PATH_<port>.
    sockaddr_un addr;
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!fd.valid() || !fill_sockaddr(fmt::format("{}_{}", m_uds_path, h.dst_port), addr) ||
        ::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      spdlog::debug("{}: guest connect to port {}: {}", m_name, h.dst_port, std::strerror(errno));
      send_ctrl(key, VsockOp::kRst);
      return;
    }
    Conn c;
    c.fd = std::move(fd);
    c.established = true;
    c.peer_buf_alloc = h.buf_alloc;
    c.peer_fwd_cnt = h.fwd_cnt;
    m_conns.emplace(key, std::move(c));
    send_ctrl(key, VsockOp::kResponse);
    return;
  }
  if (it == m_conns.end()) {
    if (op != VsockOp::kRst) send_ctrl(key, VsockOp::kRst);
    return;
  }
  Conn& c = it->second;
  c.peer_buf_alloc = h.buf_alloc;
  c.peer_fwd_cnt = h.fwd_cnt;
  switch (op) {
    case VsockOp::kResponse:
      if (c.established) {
        reset_conn(key);
        return;
      }
      {
        c.established = true;
        const std::string ok = fmt::format("OK {}\n", key.first);
        if (::send(c.fd.get(), ok.data(), ok.size(), MSG_NOSIGNAL | MSG_DONTWAIT) != static_cast<ssize_t>(ok.size()))
          reset_conn(key);
      }
      return;
    case VsockOp::kRst:
      m_conns.erase(it);  // the host end sees EOF (or, before OK, a refused CONNECT)
      return;
    case VsockOp::kShutdown:
      if (h.flags & kShutdownSend) c.guest_done_sending = true;
      if ((h.flags & (kShutdownSend | kShutdownRcv)) == (kShutdownSend | kShutdownRcv)) c.host_eof = true;
      write_to_host(key, c);
      return;
    case VsockOp::kRw:
      if (!c.established || c.guest_done_sending || c.to_host.size() + payload.size() > kBufAlloc) {
        reset_conn(key);  // data before the handshake, after SHUTDOWN, or beyond its credit
        return;
      }
      c.to_host.insert(c.to_host.end(), payload.begin(), payload.end());
      write_to_host(key, c);
      return;
    case VsockOp::kCreditRequest:
      send_ctrl(key, VsockOp::kCreditUpdate);
      return;
    case VsockOp::kCreditUpdate:
      return;  // the fields are taken above
    default:
      reset_conn(key);
      return;
  }
}

void VirtioVsock::write_to_host(const Key& key, Conn& c) {
  while (!c.to_host.empty()) {
    const ssize_t n = ::send(c.fd.get(), c.to_host.data(), c.to_host.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) break;
      reset_conn(key);  // the host end is gone
      return;
    }
    c.to_host.erase(c.to_host.begin(), c.to_host.begin() + n);
    c.fwd_cnt += static_cast<uint32_t>(n);
  }
  // Tell the guest about freed space before it runs dry (Linux waits for it).
  if (c.fwd_cnt - c.fwd_cnt_sent >= kBufAlloc / 4) send_ctrl(key, VsockOp::kCreditUpdate);
  (void)finish_if_done(key, c);
}

bool VirtioVsock::finish_if_done(const Key& key, Conn& c) {
  if (!c.to_host.empty()) return false;
  if (c.guest_done_sending && !c.host_shut_wr) {
    ::shutdown(c.fd.get(), SHUT_WR);  // the host reads EOF
    c.host_shut_wr = true;
  }
  if (c.guest_done_sending && c.host_eof) {
    reset_conn(key);  // both directions done: RST closes it on the guest's side (5.10.6.6)
    return true;
  }
  return false;
}

void VirtioVsock::accept_host() {
  while (true) {
    UniqueFd fd(::accept4(m_listener.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
    if (!fd.valid()) return;
    // Closed at once: too many half-open handshakes, or too many connections.
    if (m_handshakes.size() >= kMaxHandshakes || m_conns.size() >= kMaxConnections) continue;
    m_handshakes.push_back({std::move(fd), {}});
  }
}

void VirtioVsock::read_handshake(size_t i) {
  auto& hs = m_handshakes[i];
  // One byte at a time: whatever follows the line is stream data for the guest.
  char ch;
  while (true) {
    const ssize_t n = ::recv(hs.fd.get(), &ch, 1, MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    if (n <= 0 || hs.line.size() >= kMaxHandshakeLine) {
      m_handshakes.erase(m_handshakes.begin() + static_cast<long>(i));
      return;
    }
    if (ch != '\n') {
      hs.line += ch;
      continue;
    }
    std::string_view line(hs.line);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    uint32_t port = 0;
    bool ok = line.starts_with("CONNECT ");
    if (ok) {
      const auto text = line.substr(8);
      const auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), port);
      ok = !text.empty() && ec == std::errc() && p == text.data() + text.size();
    }
    if (!ok) {
      spdlog::debug("{}: bad handshake '{}'", m_name, hs.line);
      m_handshakes.erase(m_handshakes.begin() + static_cast<long>(i));
      return;
    }
    Key key{0, port};
    do {
      key.first = m_next_host_port++;
      if (m_next_host_port == 0) m_next_host_port = kFirstHostPort;
    } while (m_conns.count(key));
    Conn c;
    c.fd = std::move(hs.fd);
    m_handshakes.erase(m_handshakes.begin() + static_cast<long>(i));
    m_conns.emplace(key, std::move(c));
    send_ctrl(key, VsockOp::kRequest);
    return;
  }
}

void VirtioVsock::deliver_event() {
  if (!m_reset_event_pending) return;
  auto chain = pop(kEventQ);
  if (!chain) return;
  std::array<uint8_t, 4> ev{};
  store_le<uint32_t>(ev.data(), kVsockEventTransportReset);
  const bool fits = chain->error == ChainError::kNone && copy_to(chain->writable, 0, ev) == ev.size();
  complete(kEventQ, chain->head, fits ? 4 : 0);
  if (fits) m_reset_event_pending = false;
}

void VirtioVsock::deliver_rx() {
  std::vector<uint8_t> buf;
  bool progress = true;
  while (progress && !m_stop) {
    progress = false;
    // Control packets first, then data from each host socket the guest has credit for.
    Key data_key{};
    Conn* data_conn = nullptr;
    if (m_ctrl.empty()) {
      for (auto& [key, c] : m_conns) {
        if (c.established && !c.host_eof && c.credit() > 0) {
          pollfd p{c.fd.get(), POLLIN, 0};
          if (::poll(&p, 1, 0) == 1 && (p.revents & (POLLIN | POLLHUP | POLLERR))) {
            data_key = key;
            data_conn = &c;
            break;
          }
        }
      }
      if (!data_conn) return;
    }
    auto chain = pop(kRxQ);
    if (!chain) {
      m_rx_blocked = true;
      return;
    }
    if (chain->error != ChainError::kNone || chain->writable_len < VsockHeader::kSize) {
      complete(kRxQ, chain->head, 0);
      progress = true;
      continue;
    }
    if (!m_ctrl.empty()) {
      const auto hdr = encode_vsock_header(m_ctrl.front());
      m_ctrl.pop_front();
      (void)copy_to(chain->writable, 0, hdr);
      complete(kRxQ, chain->head, VsockHeader::kSize);
      progress = true;
      continue;
    }
    Conn& c = *data_conn;
    const uint64_t room = chain->writable_len - VsockHeader::kSize;
    buf.resize(static_cast<size_t>(std::min<uint64_t>({room, c.credit(), kMaxPayload})));
    const ssize_t n = buf.empty() ? 0 : ::recv(c.fd.get(), buf.data(), buf.size(), MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
      queue(kRxQ).unpop();
      progress = true;
      continue;
    }
    VsockHeader h = header_for(data_key, &c, VsockOp::kRw);
    c.fwd_cnt_sent = c.fwd_cnt;
    if (n <= 0) {
      // EOF (or an error) from the host: the guest reads EOF; it may still send (5.10.6.6).
      h.op = static_cast<uint16_t>(n == 0 ? VsockOp::kShutdown : VsockOp::kRst);
      h.flags = kShutdownSend;
      if (n < 0) h.flags = 0;
      const auto hdr = encode_vsock_header(h);
      (void)copy_to(chain->writable, 0, hdr);
      complete(kRxQ, chain->head, VsockHeader::kSize);
      if (n < 0) {
        m_conns.erase(data_key);
      } else {
        c.host_eof = true;
        (void)finish_if_done(data_key, c);
      }
      progress = true;
      continue;
    }
    h.len = static_cast<uint32_t>(n);
    c.rx_cnt += static_cast<uint32_t>(n);
    const auto hdr = encode_vsock_header(h);
    (void)copy_to(chain->writable, 0, hdr);
    (void)copy_to(chain->writable, VsockHeader::kSize, std::span<const uint8_t>(buf.data(), static_cast<size_t>(n)));
    complete(kRxQ, chain->head, static_cast<uint32_t>(VsockHeader::kSize + static_cast<size_t>(n)));
    progress = true;
  }
}

void VirtioVsock::worker() {
  enter_thread(ThreadKind::kVsock);
  std::vector<pollfd> fds;
  std::vector<Key> conn_keys;
  while (!m_stop) {
    fds.clear();
    conn_keys.clear();
    size_t n_handshakes = 0;
    {
      std::lock_guard lock(m_lock);
      deliver_event();
      if (!m_rx_blocked) deliver_rx();
      fds.push_back({m_wake.get(), POLLIN, 0});
      fds.push_back({m_listener.get(), POLLIN, 0});
      for (const auto& hs : m_handshakes) fds.push_back({hs.fd.get(), POLLIN, 0});
      n_handshakes = m_handshakes.size();
      for (const auto& [key, c] : m_conns) {
        short ev = 0;
        // Readable host data matters only while the guest can take it.
        if (!m_rx_blocked && c.established && !c.host_eof && c.credit() > 0) ev |= POLLIN;
        if (!c.to_host.empty()) ev |= POLLOUT;
        if (!ev) continue;
        fds.push_back({c.fd.get(), ev, 0});
        conn_keys.push_back(key);
      }
    }
    if (::poll(fds.data(), fds.size(), -1) < 0) continue;
    if (fds[0].revents & POLLIN) {
      uint64_t v;
      (void)!::read(m_wake.get(), &v, sizeof v);
    }
    std::lock_guard lock(m_lock);
    if (fds[1].revents & POLLIN) accept_host();
    // Handshakes: from the last so erasing one keeps the earlier indices valid.
    for (size_t i = n_handshakes; i-- > 0;)
      if (i < m_handshakes.size() && fds[2 + i].revents) read_handshake(i);
    for (size_t j = 0; j < conn_keys.size(); ++j) {
      const auto& p = fds[2 + n_handshakes + j];
      if (!(p.revents & (POLLOUT | POLLERR | POLLHUP))) continue;
      auto it = m_conns.find(conn_keys[j]);
      if (it != m_conns.end() && !it->second.to_host.empty()) write_to_host(it->first, it->second);
    }
  }
}

}  // namespace doppel::virtio
