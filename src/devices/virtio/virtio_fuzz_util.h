// Shared libFuzzer driver for virtio devices (used by *_fuzz.cpp only).
//
// Input layout: byte 0 = number of operations (n); then n operations of 7 bytes each
// (kind, 2-byte argument, 4-byte value); everything after that is copied into guest RAM
// (64 KiB), so descriptor tables, rings and buffers hold arbitrary guest-chosen bytes.
// Operations: raw register writes and reads, config-space accesses, queue notifications,
// a full driver bring-up with rings placed in RAM, a device reset, injected host packets.
#pragma once

#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <span>

#include <spdlog/spdlog.h>

#include "core/guest_memory.h"
#include "core/irq.h"
#include "devices/virtio/virtio_mmio.h"

namespace doppel::virtio::fuzzing {

constexpr uint64_t kRamBase = 0x80000000;
constexpr uint64_t kRamSize = 64 * 1024;

class CountingIrq : public IrqLine {
 public:
  void set_level(bool high) override { m_level = high; }
  bool m_level = false;
};

inline GuestMemory& ram() {
  static auto mem = GuestMemory::create({{kRamBase, kRamSize}}).release_value();
  return *mem;
}

inline void fill_ram(std::span<const uint8_t> bytes) {
  auto& r = ram().regions().front();
  std::memset(r.host, 0, r.size);
  std::memcpy(r.host, bytes.data(), std::min<size_t>(bytes.size(), r.size));
}

// on_host_input(len, payload) injects data from the host side (net/console), if any.
inline void run(std::span<const uint8_t> data, VirtioMmio& mmio,
                const std::function<void(std::span<const uint8_t>)>& on_host_input = {}) {
  // Guest-triggered warnings are expected by the thousand here.
  static const bool quiet = (spdlog::set_level(spdlog::level::err), true);
  (void)quiet;
  if (data.empty()) return;
  const size_t n = data[0];
  const size_t ops_end = std::min(data.size(), 1 + 7 * n);
  const auto ops = data.subspan(1, ops_end - 1);
  fill_ram(data.subspan(ops_end));
  auto w = [&](MmioReg r, uint32_t v) { mmio.write(static_cast<uint64_t>(r), 4, v); };
  for (size_t i = 0; i + 7 <= ops.size(); i += 7) {
    const uint8_t kind = ops[i];
    const uint16_t arg = static_cast<uint16_t>(ops[i + 1] | (ops[i + 2] << 8));
    uint32_t value;
    std::memcpy(&value, &ops[i + 3], 4);
    switch (kind % 8) {
      case 0: mmio.write(arg & 0x1ff, 4, value); break;
      case 1: (void)mmio.read(arg & 0x1ff, 1u << (arg >> 14)); break;
      case 2: mmio.write(0x100 + (arg & 0xff), 1u << (arg >> 14), value); break;
      case 3: w(MmioReg::kQueueNotify, value % 4); break;
      case 4: mmio.notify(value % 4); break;
      case 5: {
        // Driver bring-up: queue q's rings at 0x3000*q + {0, 0x1000, 0x2000}.
        const uint64_t features = uint64_t{value} | (static_cast<uint64_t>(arg & 0xff) << 32) | kFVersion1;
        const uint32_t size = 1u << ((arg >> 8) % 9);
        w(MmioReg::kStatus, 0);
        w(MmioReg::kStatus, kStatusAcknowledge | kStatusDriver);
        w(MmioReg::kDriverFeaturesSel, 0);
        w(MmioReg::kDriverFeatures, static_cast<uint32_t>(features));
        w(MmioReg::kDriverFeaturesSel, 1);
        w(MmioReg::kDriverFeatures, static_cast<uint32_t>(features >> 32));
        w(MmioReg::kStatus, kStatusAcknowledge | kStatusDriver | kStatusFeaturesOk);
        for (uint32_t q = 0; q < mmio.device().num_queues(); q++) {
          const uint64_t base = kRamBase + 0x3000ull * q;
          w(MmioReg::kQueueSel, q);
          w(MmioReg::kQueueNum, size);
          w(MmioReg::kQueueDescLow, static_cast<uint32_t>(base));
          w(MmioReg::kQueueDriverLow, static_cast<uint32_t>(base + 0x1000));
          w(MmioReg::kQueueDeviceLow, static_cast<uint32_t>(base + 0x2000));
          w(MmioReg::kQueueReady, 1);
        }
        w(MmioReg::kStatus, kStatusAcknowledge | kStatusDriver | kStatusFeaturesOk | kStatusDriverOk);
        break;
      }
      case 6: w(MmioReg::kInterruptAck, value); break;
      case 7: {
        // Host input: `arg` bytes from RAM's start (arbitrary fuzz bytes).
        if (on_host_input) {
          const auto& r = ram().regions().front();
          on_host_input(std::span<const uint8_t>(r.host, std::min<size_t>(arg, 4096)));
        }
        break;
      }
    }
  }
  mmio.stop();
}

}  // namespace doppel::virtio::fuzzing
