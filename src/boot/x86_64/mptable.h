// The Intel MultiProcessor Specification 1.4 table: processors, the ISA bus, the IOAPIC
// and how ISA IRQs reach its pins. Guests without ACPI find their CPUs through it.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "base/result.h"
#include "core/guest_memory.h"

namespace doppel::x86boot {

// Builds the floating pointer + configuration table (pure; laid out for address `at`).
// IRQs in `level_irqs` are level-triggered, active high (virtio); the rest conform to ISA
// (edge, active high). IRQ n goes to IOAPIC pin n.
std::vector<uint8_t> build_mp_table(uint64_t at, unsigned cpus, std::span<const unsigned> level_irqs);
Result<void> write_mp_table(GuestMemory& memory, unsigned cpus, std::span<const unsigned> level_irqs);

}  // namespace doppel::x86boot
