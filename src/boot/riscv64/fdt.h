// The flattened device tree of the riscv64 machine, built with libfdt from a plain
// description (the machine fills it from engines/emu/riscv64/memory_map.h and the VmConfig).
// The node names and compatibles are those of QEMU's `virt`, which OpenSBI's generic
// platform and Linux already drive: cpus with riscv,cpu-intc, riscv,clint0, riscv,plic0,
// ns16550a, sifive,test1 (a syscon, with syscon-poweroff and syscon-reboot nodes) and
// virtio,mmio.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "base/result.h"

namespace doppel::rv64boot {

struct MmioNode {
  uint64_t base = 0;
  uint64_t size = 0;
  unsigned irq = 0;  // PLIC source
};

struct FdtDescription {
  unsigned harts = 1;
  std::string isa = "rv64imafdc_zicsr_zifencei";
  std::string mmu_type = "riscv,sv48";
  uint64_t timebase_hz = 0;
  uint64_t ram_base = 0;
  uint64_t ram_size = 0;
  MmioNode test;  // sifive,test1 finisher (irq unused)
  MmioNode clint;
  MmioNode plic;
  unsigned plic_ndev = 0;  // highest source id
  MmioNode uart;
  uint32_t uart_clock_hz = 0;
  std::vector<MmioNode> virtio;  // virtio-mmio transports present in the machine
  std::string bootargs;
  std::optional<std::pair<uint64_t, uint64_t>> initrd;  // [start, end)
};

// Headroom beyond the tree's own size (OpenSBI adds /reserved-memory and fixes up nodes in
// place, so the blob's totalsize includes free space).
constexpr uint32_t kFdtPadding = 16 * 1024;

// Returns the DTB blob (totalsize = contents + kFdtPadding).
Result<std::vector<uint8_t>> build_fdt(const FdtDescription& d);

// Node paths, for callers and tests.
std::string uart_node_path(uint64_t base);

}  // namespace doppel::rv64boot
