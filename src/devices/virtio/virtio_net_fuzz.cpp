// libFuzzer: virtio-net on a socketpair standing in for a TAP; the input also injects frames
// from the host side so the RX worker runs against hostile rings.
#include <sys/socket.h>
#include <unistd.h>

#include "devices/virtio/virtio_fuzz_util.h"
#include "devices/virtio/virtio_net.h"

using namespace doppel;
using namespace doppel::virtio;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0) abort();
  UniqueFd peer(sv[1]);
  auto dev = VirtioNet::create(fuzzing::ram(), Tap::from_fd(UniqueFd(sv[0]), "fuzz0"),
                               {0x02, 0, 0, 0, 0, 1}, "virtio-net0");
  if (!dev.ok()) abort();
  fuzzing::CountingIrq irq;
  VirtioMmio mmio(dev.release_value(), irq);
  fuzzing::run(std::span<const uint8_t>(data, size), mmio, [&](std::span<const uint8_t> pkt) {
    (void)!::write(peer.get(), pkt.data(), pkt.size());
  });
  // Drain what the guest sent so the socket never fills across iterations.
  uint8_t buf[65536];
  while (::read(peer.get(), buf, sizeof buf) > 0) {
  }
  return 0;
}
