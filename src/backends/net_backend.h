// The host side of a virtio-net device: a packet file descriptor carrying one frame per
// read or write, each frame behind a 12-byte virtio_net_hdr (virtio 1.2 5.1.6). A TAP
// (tap.h) is one; user-mode networking (slirp.h) is another, behind a socketpair.
//
// Threads: the device's RX worker reads fd() while the TX path writes it, at once.
#pragma once

#include <cstddef>
#include <string>

#include "base/result.h"

namespace doppel {

class NetBackend {
 public:
  static constexpr size_t kVnetHdrSize = 12;

  virtual ~NetBackend() = default;
  virtual int fd() const = 0;
  virtual const std::string& name() const = 0;
  // Whether frames written to the guest may carry partial checksums and GSO (the guest's
  // receive offloads); set_offloads() then says which the driver accepted (TUN_F_* flags).
  virtual bool supports_offloads() const = 0;
  virtual Result<void> set_offloads(unsigned tun_flags) = 0;
  // Whether frames the guest transmits may carry partial checksums and GSO (the device's
  // CSUM and HOST_TSO features). A backend that parses frames itself wants them complete.
  virtual bool accepts_offloads() const { return true; }
};

}  // namespace doppel
