#include "devices/virtio/virtio_console.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <array>

#include "base/log.h"
#include "base/thread_seal.h"

namespace doppel::virtio {

namespace {

// Drops the first `done` bytes of iov[first..].
void advance(std::vector<iovec>& iov, size_t& first, size_t done) {
  while (first < iov.size() && done >= iov[first].iov_len) done -= iov[first++].iov_len;
  if (done > 0) {
    iov[first].iov_base = static_cast<uint8_t*>(iov[first].iov_base) + done;
    iov[first].iov_len -= done;
  }
}

}  // namespace

Result<std::unique_ptr<VirtioConsole>> VirtioConsole::create(GuestMemory& mem,
                                                             std::unique_ptr<ConsoleStream> stream,
                                                             std::string name) {
  auto dev = std::unique_ptr<VirtioConsole>(new VirtioConsole(mem, std::move(stream), std::move(name)));
  dev->m_wake.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!dev->m_wake.valid()) return Error::from_errno(fmt::format("{}: eventfd", dev->m_name));
  return dev;
}

VirtioConsole::VirtioConsole(GuestMemory& mem, std::unique_ptr<ConsoleStream> stream,
                             std::string name)
    : VirtioDevice(mem, 2, kQueueSize), m_stream(std::move(stream)), m_name(std::move(name)) {}

VirtioConsole::~VirtioConsole() { quiesce(); }

void VirtioConsole::read_config(uint64_t offset, std::span<uint8_t> out) const {
  // struct virtio_console_config: cols, rows, max_nr_ports, emerg_wr; none negotiated.
  const std::array<uint8_t, 12> cfg{};
  read_config_bytes(cfg, offset, out);
}

void VirtioConsole::wake() {
  const uint64_t one = 1;
  (void)!::write(m_wake.get(), &one, sizeof one);
}

void VirtioConsole::activate() {
  if (!m_stream->is_socket() || m_rx_thread.joinable()) return;
  m_stop = false;
  m_rx_blocked = false;
  m_rx_thread = std::thread([this] { rx_loop(); });
}

void VirtioConsole::quiesce() {
  if (m_rx_thread.joinable()) {
    m_stop = true;
    wake();
    m_rx_thread.join();
  }
  // A chain the client has not taken whole: give it a moment, then complete it anyway, so
  // that a snapshot or reset never holds a half-consumed chain (the rest is dropped).
  std::lock_guard lock(m_tx_mutex);
  m_tx_blocked = false;
  if (!m_tx_head) return;
  for (int tries = 0; tries < 10 && m_tx_first < m_tx_iov.size(); ++tries) {
    const int fd = m_stream->client_fd();
    if (fd < 0) break;
    pollfd p{fd, POLLOUT, 0};
    if (::poll(&p, 1, 50) <= 0) continue;
    auto r = m_stream->write_some(std::span<const iovec>(m_tx_iov).subspan(m_tx_first));
    advance(m_tx_iov, m_tx_first, r.written);
  }
  if (m_tx_first < m_tx_iov.size())
    spdlog::warn("{}: the console client is not reading; output dropped to stop the device", m_name);
  complete(kTransmitQ, *m_tx_head, 0);
  m_tx_head.reset();
  m_tx_iov.clear();
}

void VirtioConsole::process_queue(unsigned q) {
  if (q == kReceiveQ) {
    m_rx_blocked = false;
    wake();
    return;
  }
  if (q != kTransmitQ) return;
  std::lock_guard lock(m_tx_mutex);
  drain_tx();
}

void VirtioConsole::drain_tx() {
  for (;;) {
    if (!m_tx_head) {
      auto chain = pop(kTransmitQ);
      if (!chain) return;
      if (chain->error != ChainError::kNone) {
        complete(kTransmitQ, chain->head, 0);
        continue;
      }
      m_tx_head = chain->head;
      m_tx_iov = slice(chain->readable, 0);
      m_tx_first = 0;
    }
    while (m_tx_first < m_tx_iov.size()) {
      auto r = m_stream->write_some(std::span<const iovec>(m_tx_iov).subspan(m_tx_first));
      advance(m_tx_iov, m_tx_first, r.written);
      if (r.would_block) {
        // The worker waits for room and calls again; the guest's queue waits meanwhile.
        m_tx_blocked = true;
        wake();
        return;
      }
    }
    complete(kTransmitQ, *m_tx_head, 0);
    m_tx_head.reset();
    m_tx_iov.clear();
  }
}

void VirtioConsole::rx_loop() {
  enter_thread(ThreadKind::kConsoleRx);
  {
    // Chains left in the queue by a pause or a restore while the client was slow.
    std::lock_guard lock(m_tx_mutex);
    drain_tx();
  }
  while (!m_stop) {
    const int client = m_stream->client_fd();
    if (client < 0 && m_tx_blocked) {
      // The client went away while it held output back: drop the rest (write_some()).
      std::lock_guard lock(m_tx_mutex);
      m_tx_blocked = false;
      drain_tx();
      continue;
    }
    std::array<pollfd, 4> fds{};
    nfds_t n = 0;
    fds[n++] = {m_wake.get(), POLLIN, 0};
    fds[n++] = {m_stream->listen_fd(), POLLIN, 0};
    const bool tx_wait = client >= 0 && m_tx_blocked;
    // POLLOUT on its own entry; the RX entry, when there is one, is always the last.
    if (tx_wait) fds[n++] = {client, POLLOUT, 0};
    const nfds_t rx = n;
    if (client >= 0 && !m_rx_blocked) fds[n++] = {client, POLLIN, 0};
    if (::poll(fds.data(), n, -1) < 0) continue;
    if (fds[0].revents) {
      uint64_t v;
      (void)!::read(m_wake.get(), &v, sizeof v);
    }
    if (fds[1].revents & POLLIN) m_stream->accept_client();
    if ((tx_wait && fds[2].revents) || (m_tx_blocked && m_stream->client_fd() != client)) {
      // Room again, or the client hung up or was replaced (write_some() then drops or
      // writes to the new one).
      std::lock_guard lock(m_tx_mutex);
      m_tx_blocked = false;
      drain_tx();
    }
    if (n <= rx || !fds[rx].revents) continue;
    auto chain = pop(kReceiveQ);
    if (!chain) {
      m_rx_blocked = true;  // until the driver adds buffers and notifies
      // Buffers may have been added between pop() and setting the flag.
      if (queue(kReceiveQ).pop().status == Virtqueue::PopStatus::kChain) {
        queue(kReceiveQ).unpop();
        m_rx_blocked = false;
      }
      continue;
    }
    if (chain->error != ChainError::kNone || chain->writable.empty()) {
      complete(kReceiveQ, chain->head, 0);
      continue;
    }
    const auto iov = slice(chain->writable, 0);
    const ssize_t got = ::readv(client, iov.data(), static_cast<int>(std::min<size_t>(iov.size(), IOV_MAX)));
    if (got > 0) {
      complete(kReceiveQ, chain->head, static_cast<uint32_t>(got));
    } else {
      queue(kReceiveQ).unpop();
      if (got == 0 || (errno != EAGAIN && errno != EINTR)) m_stream->drop_client();
    }
  }
}

}  // namespace doppel::virtio
