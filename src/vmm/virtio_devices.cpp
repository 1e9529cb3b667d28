#include "vmm/virtio_devices.h"

#include <sys/random.h>

#include "backends/console_stream.h"
#include "backends/disk_backend.h"
#include "backends/slirp.h"
#include "backends/tap.h"
#include "devices/virtio/virtio_blk.h"
#include "devices/virtio/virtio_console.h"
#include "devices/virtio/virtio_net.h"
#include "devices/virtio/virtio_rng.h"
#include "devices/virtio/virtio_vsock.h"

namespace doppel {

size_t virtio_device_count(const VmConfig& config) {
  return config.disks.size() + config.nets.size() + (config.console2 ? 1 : 0) +
         (config.vsock ? 1 : 0) + 1;
}

MacAddress generate_mac() {
  MacAddress mac{};
  if (getrandom(mac.data(), mac.size(), 0) != static_cast<ssize_t>(mac.size())) {
    // Extremely unlikely; fall back to something still unique per process.
    const uint64_t v = reinterpret_cast<uintptr_t>(&mac) ^ static_cast<uint64_t>(getpid());
    for (size_t i = 0; i < mac.size(); i++) mac[i] = static_cast<uint8_t>(v >> (8 * i));
  }
  mac[0] = static_cast<uint8_t>((mac[0] & 0xfe) | 0x02);  // unicast, locally administered
  return mac;
}

Result<std::vector<std::unique_ptr<virtio::VirtioMmio>>> create_virtio_devices(
    const VmConfig& config, GuestMemory& mem, const std::function<IrqLine&(size_t)>& irq_for,
    bool disks_inactive) {
  std::vector<std::unique_ptr<virtio::VirtioMmio>> out;
  auto add = [&](std::unique_ptr<virtio::VirtioDevice> dev) {
    out.push_back(std::make_unique<virtio::VirtioMmio>(std::move(dev), irq_for(out.size())));
  };
  for (size_t i = 0; i < config.disks.size(); i++) {
    const auto& d = config.disks[i];
    DiskOpenOptions options;
    options.read_only = d.read_only;
    options.format = d.format;
    options.lock = d.locking;
    options.inactive = disks_inactive;
    auto disk = open_disk(d.path, options);
    if (!disk.ok()) return disk.error().context(fmt::format("--disk #{}", i + 1));
    add(std::make_unique<virtio::VirtioBlk>(mem, disk.release_value(), fmt::format("virtio-blk{}", i),
                                            d.rate_limiter));
  }
  for (size_t i = 0; i < config.nets.size(); i++) {
    const auto& n = config.nets[i];
    std::unique_ptr<NetBackend> backend;
    if (n.user) {
      auto user = SlirpNet::create(n.hostfwds);
      if (!user.ok()) return user.error().context(fmt::format("--net #{}", i + 1));
      backend = user.release_value();
    } else {
      auto tap = Tap::open(n.tap);
      if (!tap.ok()) return tap.error().context(fmt::format("--net #{}", i + 1));
      backend = tap.release_value();
    }
    const MacAddress mac = n.mac ? *n.mac : generate_mac();
    auto net = virtio::VirtioNet::create(mem, std::move(backend), mac, fmt::format("virtio-net{}", i),
                                         n.rx_rate_limiter, n.tx_rate_limiter);
    if (!net.ok()) return net.release_error();
    add(net.release_value());
  }
  if (config.console2) {
    const auto& c = *config.console2;
    auto stream = c.kind == ConsoleConfig::Kind::kSocket ? ConsoleStream::listen_unix(c.path)
                                                         : ConsoleStream::open_file(c.path);
    if (!stream.ok()) return stream.release_error();
    auto con = virtio::VirtioConsole::create(mem, stream.release_value(), "virtio-console");
    if (!con.ok()) return con.release_error();
    add(con.release_value());
  }
  if (config.vsock) {
    auto vsock = virtio::VirtioVsock::create(mem, config.vsock->cid, config.vsock->uds,
                                             "virtio-vsock", disks_inactive);
    if (!vsock.ok()) return vsock.error().context("--vsock");
    add(vsock.release_value());
  }
  add(std::make_unique<virtio::VirtioRng>(mem, "virtio-rng"));
  return out;
}

}  // namespace doppel
