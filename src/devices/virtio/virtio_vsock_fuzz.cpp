// libFuzzer: virtio-vsock's packet headers and payloads from hostile guest descriptors (TX),
// the RX and event queues on hostile rings, and host input: the injected bytes are written
// on a fresh connection to the device's Unix socket (the CONNECT handshake parser).
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include "devices/virtio/virtio_fuzz_util.h"
#include "devices/virtio/virtio_vsock.h"

using namespace doppel;
using namespace doppel::virtio;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path = "/tmp/doppel-fuzz-vsock-" + std::to_string(::getpid());
  auto dev = VirtioVsock::create(fuzzing::ram(), 3, path, "virtio-vsock");
  if (!dev.ok()) abort();
  fuzzing::CountingIrq irq;
  VirtioMmio mmio(dev.release_value(), irq);
  std::vector<UniqueFd> clients;
  fuzzing::run(std::span<const uint8_t>(data, size), mmio, [&](std::span<const uint8_t> bytes) {
    UniqueFd s(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::memcpy(a.sun_path, path.data(), path.size());
    if (::connect(s.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) == 0)
      (void)!::send(s.get(), bytes.data(), bytes.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
    clients.push_back(std::move(s));
  });
  // The header codec: what decodes re-encodes to the same bytes.
  if (size >= VsockHeader::kSize) {
    const auto h = decode_vsock_header(std::span<const uint8_t>(data, VsockHeader::kSize));
    if (!h || std::memcmp(encode_vsock_header(*h).data(), data, VsockHeader::kSize) != 0) abort();
  }
  return 0;
}
