#include "devices/virtio/virtio_console.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <array>

#include "base/log.h"

namespace doppel::virtio {

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
  if (!m_rx_thread.joinable()) return;
  m_stop = true;
  wake();
  m_rx_thread.join();
}

void VirtioConsole::process_queue(unsigned q) {
  if (q == kReceiveQ) {
    m_rx_blocked = false;
    wake();
    return;
  }
  if (q != kTransmitQ) return;
  while (auto chain = pop(kTransmitQ)) {
    if (chain->error == ChainError::kNone) m_stream->write(slice(chain->readable, 0));
    complete(kTransmitQ, chain->head, 0);
  }
}

void VirtioConsole::rx_loop() {
  while (!m_stop) {
    const int client = m_stream->client_fd();
    std::array<pollfd, 3> fds{};
    nfds_t n = 0;
    fds[n++] = {m_wake.get(), POLLIN, 0};
    fds[n++] = {m_stream->listen_fd(), POLLIN, 0};
    if (client >= 0 && !m_rx_blocked) fds[n++] = {client, POLLIN, 0};
    if (::poll(fds.data(), n, -1) < 0) continue;
    if (fds[0].revents) {
      uint64_t v;
      (void)!::read(m_wake.get(), &v, sizeof v);
    }
    if (fds[1].revents & POLLIN) m_stream->accept_client();
    if (n < 3 || !fds[2].revents) continue;
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
