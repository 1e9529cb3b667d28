// Builds a VM's virtio-mmio devices from its VmConfig. The machine maps each device's
// kMmioWindowSize window on its MMIO bus, wires the IrqLine it supplied, and owns the result.
//
// Order (stable, so device trees and guest names are predictable): one virtio-blk per
// config.disks entry (vda, vdb, ...), one virtio-net per config.nets entry, virtio-console if
// config.console2 is set, virtio-vsock if config.vsock is set, and always one virtio-rng last.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <vector>

#include "base/result.h"
#include "core/guest_memory.h"
#include "core/irq.h"
#include "devices/virtio/virtio_mmio.h"
#include "vmm/vm_config.h"

namespace doppel {

// How many devices create_virtio_devices() builds for this config (for memory maps and
// device trees laid out before the devices exist).
size_t virtio_device_count(const VmConfig& config);

// irq_for(i) is the line for device i (0-based, in the order above); called once per device.
// Fails, naming the resource, if a disk, TAP or console stream cannot be opened.
// disks_inactive: an incoming migration's disks, opened without their image locks, and its
// vsock, not yet listening on its socket path (activate_images() takes both at the
// switch-over: the source may be on this host, on the same files and path).
Result<std::vector<std::unique_ptr<virtio::VirtioMmio>>> create_virtio_devices(
    const VmConfig& config, GuestMemory& mem, const std::function<IrqLine&(size_t)>& irq_for,
    bool disks_inactive = false);

// A random locally administered unicast MAC address (x2:xx:xx:xx:xx:xx).
MacAddress generate_mac();

}  // namespace doppel
