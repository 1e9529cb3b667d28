// The x86-64 PC memory map doppel builds: one header holds it all.
//
//   0x0000_0500  GDT (4 entries: null, null, __BOOT_CS, __BOOT_DS)
//   0x0000_6000  PVH hvm_start_info, its memory map and module list
//   0x0000_7000  Linux boot_params ("zero page")
//   0x0000_8ff0  initial stack (grows down)
//   0x0000_9000  PML4, 0xa000 PDPT, 0xb000-0xefff four PDs: identity map of 4 GiB (2 MiB pages)
//   0x0002_0000  kernel command line
//   0x0009_fc00  MP floating pointer and table (EBDA; e820 reserved up to 0xa0000)
//   0x000e_0000  ACPI RSDP and tables (BIOS area; e820 reserved up to 0x100000)
//   0x0010_0000  kernel (bzImage protected-mode code, or vmlinux segments at their paddr)
//   ...          initrd, at the top of low RAM
//   0xc000_0000  32-bit hole: no RAM from here to 4 GiB
//   0xd000_0000  virtio-mmio windows, 4 KiB apart (IRQs 5, 6, 7, 10, 11, 12, 14, 15)
//   0xfec0_0000  IOAPIC; 0xfee0_0000 local APICs (in KVM)
//   0x1_0000_0000  RAM beyond 3 GiB continues here
// Ports: 0x3f8 COM1 (IRQ 4), 0x60/0x64 i8042 (keyboard IRQ 1), 0x600-0x60b ACPI PM1a event/control, reset
// and PM timer (devices/legacy/acpi_pm.h; SCI on IRQ 9, never raised).
// IRQs: ISA numbering, identical to IOAPIC pins and Linux IRQ numbers below 16 (no
// overrides; KVM's PIT drives GSI 0). 0 PIT, 4 COM1, 9 ACPI SCI, the rest as listed for virtio.
#pragma once

#include <cstdint>

namespace doppel::x86boot {

constexpr uint64_t kGdtAddr = 0x500;
constexpr uint64_t kStartInfoAddr = 0x6000;
constexpr uint64_t kBootParamsAddr = 0x7000;
constexpr uint64_t kBootStackTop = 0x8ff0;
constexpr uint64_t kPml4Addr = 0x9000;
constexpr uint64_t kPdptAddr = 0xa000;
constexpr uint64_t kPdAddr = 0xb000;  // 4 pages
constexpr uint64_t kCmdlineAddr = 0x20000;
constexpr uint64_t kCmdlineMax = 0x10000;
constexpr uint64_t kEbdaStart = 0x9fc00;
constexpr uint64_t kMpTableAddr = kEbdaStart;
constexpr uint64_t kAcpiAddr = 0xe0000;
constexpr uint64_t kBiosAreaStart = 0xa0000;
constexpr uint64_t kKernelAddr = 0x100000;
constexpr uint64_t kHoleStart = 0xc0000000;
constexpr uint64_t kHighRamStart = 0x100000000;

constexpr uint64_t kVirtioBase = 0xd0000000;
constexpr uint64_t kVirtioStride = 0x1000;
// Legacy (ISA) IRQs, because the command line's virtio_mmio.device=...:IRQ is a Linux IRQ
// number and only ISA IRQs 0-15 are mapped to IOAPIC pins before any driver asks. Skipped:
// 0 PIT, 1 keyboard, 2 cascade, 3 COM2, 4 COM1, 8 RTC, 9 SCI, 13 FPU error.
constexpr unsigned kVirtioIrqs[] = {5, 6, 7, 10, 11, 12, 14, 15};
constexpr unsigned kVirtioSlots = sizeof kVirtioIrqs / sizeof kVirtioIrqs[0];
constexpr uint64_t kIoApicAddr = 0xfec00000;
constexpr uint64_t kLocalApicAddr = 0xfee00000;

constexpr uint16_t kCom1Port = 0x3f8;
constexpr unsigned kCom1Irq = 4;
constexpr unsigned kKeyboardIrq = 1;  // the i8042's keyboard (ISA edge)
constexpr uint16_t kI8042DataPort = 0x60;
constexpr uint16_t kI8042CommandPort = 0x64;
constexpr uint16_t kAcpiPmPort = 0x600;  // AcpiPm's register block (the machine checks these)
constexpr uint16_t kAcpiPm1aEvtPort = kAcpiPmPort + 0;    // PM1a_STS, PM1a_EN (4 bytes)
constexpr uint16_t kAcpiPm1aCntPort = kAcpiPmPort + 4;    // PM1a_CNT (2 bytes)
constexpr uint16_t kAcpiResetPort = kAcpiPmPort + 6;      // RESET_REG (1 byte)
constexpr uint16_t kAcpiPmTimerPort = kAcpiPmPort + 8;    // PM_TMR (4 bytes)
constexpr unsigned kAcpiSciIrq = 9;
constexpr uint8_t kAcpiS5SleepType = 5;  // the _S5_ package's SLP_TYPa
constexpr uint8_t kAcpiResetValue = 1;

constexpr uint64_t virtio_base(unsigned slot) { return kVirtioBase + slot * kVirtioStride; }
constexpr unsigned virtio_irq(unsigned slot) { return kVirtioIrqs[slot]; }

}  // namespace doppel::x86boot
