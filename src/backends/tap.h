// A Linux TAP interface opened through /dev/net/tun with IFF_TAP | IFF_NO_PI | IFF_VNET_HDR,
// so every frame carries a 12-byte virtio_net_hdr (TUNSETVNETHDRSZ) and checksum/TSO
// offloads can pass straight between guest and host.
//
// Threads: the fd is used by the RX worker (reads) and the TX path (writes) at once, which
// the kernel allows; set_offloads() only from activation.
#pragma once

#include <memory>
#include <string>

#include "backends/net_backend.h"
#include "base/result.h"
#include "base/unique_fd.h"

namespace doppel {

class Tap final : public NetBackend {
 public:
  // Creates the TAP (or attaches to an existing one of that name), non-blocking, and tries
  // to bring the link up.
  static Result<std::unique_ptr<Tap>> open(const std::string& name);
  // Wraps a packet fd that is not a TAP (tests: a SOCK_SEQPACKET socketpair).
  static std::unique_ptr<Tap> from_fd(UniqueFd fd, std::string name);

  int fd() const override { return m_fd.get(); }
  const std::string& name() const override { return m_name; }
  // Whether TUNSETOFFLOAD accepted checksum + TSO offloads when probed at open().
  bool supports_offloads() const override { return m_offloads; }
  // TUN_F_* flags for what the guest can receive.
  Result<void> set_offloads(unsigned tun_flags) override;

 private:
  Tap() = default;
  UniqueFd m_fd;
  std::string m_name;
  bool m_offloads = false;
  bool m_is_tap = false;
};

}  // namespace doppel
