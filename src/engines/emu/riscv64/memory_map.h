// The whole guest physical memory map of doppel's riscv64 machine, in one place (as QEMU's
// `virt` board, whose layout Linux and OpenSBI already know). The device tree, the loader,
// and the machine all take their addresses and interrupt numbers from here.
#pragma once

#include <cstdint>

namespace doppel::rv64::memmap {

// sifive,test1 finisher: poweroff / reboot / fail (devices/legacy/sifive_finisher.h).
constexpr uint64_t kTestBase = 0x0010'0000;
constexpr uint64_t kTestSize = 0x1000;

// CLINT: msip at +0, mtimecmp at +0x4000, mtime at +0xbff8.
constexpr uint64_t kClintBase = 0x0200'0000;
constexpr uint64_t kClintSize = 0x1'0000;

// PLIC: 0x4000000 bytes covers 15872 contexts' enable and threshold/claim blocks.
constexpr uint64_t kPlicBase = 0x0c00'0000;
constexpr uint64_t kPlicSize = 0x0400'0000;
constexpr unsigned kPlicSources = 32;  // riscv,ndev = kPlicSources - 1 (source 0 is "none")

// 16550A UART0, byte registers (reg-shift 0).
constexpr uint64_t kUartBase = 0x1000'0000;
constexpr uint64_t kUartSize = 0x100;
constexpr unsigned kUartIrq = 10;
constexpr uint32_t kUartClockHz = 3'686'400;

// virtio-mmio transports: slot i at kVirtioBase + i * kVirtioStride, PLIC source 1 + i.
constexpr uint64_t kVirtioBase = 0x1000'1000;
constexpr uint64_t kVirtioStride = 0x1000;
constexpr unsigned kVirtioSlots = 8;
constexpr unsigned kVirtioFirstIrq = 1;
constexpr uint64_t virtio_base(unsigned slot) { return kVirtioBase + slot * kVirtioStride; }
constexpr unsigned virtio_irq(unsigned slot) { return kVirtioFirstIrq + slot; }

// RAM.
constexpr uint64_t kRamBase = 0x8000'0000;

// Boot layout inside RAM (boot/riscv64/loader.h): OpenSBI fw_dynamic at the start of RAM,
// the kernel 2 MiB in (or wherever its Image header's text_offset says).
constexpr uint64_t kFirmwareBase = kRamBase;
constexpr uint64_t kKernelBase = kRamBase + 0x20'0000;

static_assert(kVirtioFirstIrq + kVirtioSlots <= kUartIrq, "virtio IRQs overlap the UART's");
static_assert(kUartIrq < kPlicSources, "UART IRQ beyond the PLIC's sources");

}  // namespace doppel::rv64::memmap
