// User-mode networking (QEMU's `-nic user`) on libslirp: a TCP/IP stack in this process
// that turns the guest's frames into ordinary host sockets, so a VM needs neither root nor a
// TAP. The guest sees 10.0.2.0/24 (backends/slirp_options.h): DHCP gives it 10.0.2.15, the
// gateway 10.0.2.2 is the host (its 127.0.0.1 included), 10.0.2.3 forwards DNS, and each
// hostfwd listens on a host port and connects to a guest port.
//
// The device side is one end of a SOCK_SEQPACKET socketpair carrying virtio_net_hdr + frame
// packets, like a TAP. libslirp is not thread-safe: everything that touches the Slirp
// instance after create() runs on this backend's own thread (its poll loop), never on a
// vCPU thread or the device's RX worker.
//
// State: none is saved. A restored or cloned VM gets a fresh stack: its address stays valid
// (the network is fixed), TCP connections through the stack are gone (the guest's next
// segment on one is answered with a reset), and the hostfwd ports are listened on again
// (a clone running beside its origin needs other host ports, given with `--net` on
// restore).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "backends/net_backend.h"
#include "backends/slirp_options.h"
#include "base/result.h"

namespace doppel {

class SlirpNet final : public NetBackend {
 public:
  // Starts the stack and its thread; fails naming the forward if a host port cannot be
  // listened on.
  static Result<std::unique_ptr<SlirpNet>> create(const std::vector<HostFwd>& forwards);
  ~SlirpNet() override;

  int fd() const override;
  const std::string& name() const override;
  bool supports_offloads() const override { return false; }
  Result<void> set_offloads(unsigned) override { return {}; }
  bool accepts_offloads() const override { return false; }

  // Frames to the guest dropped because the device was not taking them (a full queue).
  uint64_t rx_dropped() const;

  struct Impl;

 private:
  explicit SlirpNet(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> m_impl;
};

// Whether this doppel was built with libslirp (not in a DOPPEL_STATIC build: Debian ships
// no static libslirp).
bool slirp_available();

}  // namespace doppel
