// Minimal ACPI tables for a PC-compatible machine (ACPI 6.4): RSDP, XSDT, FADT, FACS, DSDT
// and MADT. Why: on x86, Linux powers off only through ACPI. `poweroff` writes
// SLP_TYP(S5)|SLP_EN to the FADT's PM1a control block, an I/O port of
// devices/legacy/acpi_pm.h that ends the VM with exit code 0; the DSDT carries only the
// _S5_ package giving the sleep type. The MADT lists the local APICs and the IOAPIC (Linux
// takes CPUs from it when ACPI is on) and marks the SCI and virtio IRQs level-triggered;
// RESET_REG offers a reset through the same device.
//
// Not hardware-reduced ACPI: with HW_REDUCED_ACPI, Linux drops the legacy PIC and with it
// the identity mapping of ISA IRQs 0-15, so the COM1 UART (IRQ 4) and the virtio devices of
// the command line (virtio_mmio.device=...:IRQ) get no interrupt (request_irq fails: the
// console's tty answers EIO and init dies). A PC FADT keeps them: PM1a event and control
// blocks, a PM timer, an SCI (never raised) and a FACS.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "base/result.h"
#include "core/guest_memory.h"

namespace doppel::x86boot {

struct AcpiTables {
  uint64_t rsdp_addr;
  std::vector<uint8_t> bytes;  // everything, to be written at rsdp_addr
};

// Builds the tables (pure) for `cpus` vCPUs, laid out from address `at` (16-byte aligned).
AcpiTables build_acpi_tables(uint64_t at, unsigned cpus, std::span<const unsigned> level_irqs);
// Writes them at kAcpiAddr; returns the RSDP address.
Result<uint64_t> write_acpi_tables(GuestMemory& memory, unsigned cpus,
                                   std::span<const unsigned> level_irqs);

}  // namespace doppel::x86boot
