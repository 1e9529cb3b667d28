#include "boot/x86_64/acpi.h"

#include <cstring>

#include "base/bits.h"
#include "boot/x86_64/layout.h"

namespace doppel::x86boot {

namespace {

uint8_t checksum(std::span<const uint8_t> b) {
  uint8_t sum = 0;
  for (uint8_t x : b) sum = static_cast<uint8_t>(sum + x);
  return static_cast<uint8_t>(-sum);
}

// ACPI 6.4 5.2.6: the 36-byte header every description table starts with.
std::vector<uint8_t> header(const char* signature, uint8_t revision) {
  std::vector<uint8_t> t(36, 0);
  std::memcpy(t.data(), signature, 4);
  t[8] = revision;
  std::memcpy(t.data() + 10, "DOPPEL", 6);
  std::memcpy(t.data() + 16, "DOPPELVM", 8);
  store_le<uint32_t>(t.data() + 24, 1);  // OEM revision
  std::memcpy(t.data() + 28, "DPPL", 4);
  store_le<uint32_t>(t.data() + 32, 1);
  return t;
}

void finish(std::vector<uint8_t>& t) {
  store_le<uint32_t>(t.data() + 4, static_cast<uint32_t>(t.size()));
  t[9] = 0;
  t[9] = checksum(t);
}

// ACPI 6.4 5.2.3.2 Generic Address Structure for an I/O port, accessed `access_bytes` at a
// time (1, 2 or 4).
void gas_io(uint8_t* p, uint16_t port, uint8_t bits, uint8_t access_bytes) {
  p[0] = 1;     // system I/O space
  p[1] = bits;  // register bit width
  p[2] = 0;     // bit offset
  p[3] = access_bytes == 4 ? 3 : access_bytes;  // 1 byte, 2 word, 3 dword
  store_le<uint64_t>(p + 4, port);
}

template <typename T>
void push(std::vector<uint8_t>& t, T v) {
  const size_t at = t.size();
  t.resize(at + sizeof(T));
  store_le<T>(t.data() + at, v);
}

}  // namespace

AcpiTables build_acpi_tables(uint64_t at, unsigned cpus, std::span<const unsigned> level_irqs) {
  // Layout inside the area: RSDP, XSDT, FACS, FADT, DSDT, MADT, each 64-byte aligned (the
  // FACS must be).
  const uint64_t rsdp_at = at;
  const uint64_t xsdt_at = at + 0x40;
  const uint64_t facs_at = at + 0x80;
  const uint64_t fadt_at = at + 0x100;
  const uint64_t dsdt_at = at + 0x240;
  const uint64_t madt_at = at + 0x2c0;

  // DSDT: Name (_S5_, Package (4) { 5, 5, 0, 0 })   (AML, ACPI 6.4 20.2.5)
  auto dsdt = header("DSDT", 2);
  const uint8_t s5[] = {0x08, '_', 'S', '5', '_', 0x12, 0x08, 0x04,
                        0x0a, kAcpiS5SleepType, 0x0a, kAcpiS5SleepType, 0x00, 0x00};
  dsdt.insert(dsdt.end(), std::begin(s5), std::end(s5));
  finish(dsdt);

  // FACS (ACPI 6.4 5.2.10): 64 bytes, no checksum; the OS keeps its global lock here.
  std::vector<uint8_t> facs(64, 0);
  std::memcpy(facs.data(), "FACS", 4);
  store_le<uint32_t>(facs.data() + 4, 64);
  facs[32] = 2;  // version

  // FADT, revision 6 (ACPI 6.4 5.2.9), 276 bytes.
  auto fadt = header("FACP", 6);
  fadt.resize(276, 0);
  store_le<uint32_t>(fadt.data() + 36, static_cast<uint32_t>(facs_at));  // FIRMWARE_CTRL
  store_le<uint32_t>(fadt.data() + 40, static_cast<uint32_t>(dsdt_at));  // DSDT
  store_le<uint16_t>(fadt.data() + 46, static_cast<uint16_t>(kAcpiSciIrq));  // SCI_INT
  // SMI_CMD = 0: no legacy mode, the machine is always in ACPI mode.
  store_le<uint32_t>(fadt.data() + 56, kAcpiPm1aEvtPort);  // PM1a_EVT_BLK
  store_le<uint32_t>(fadt.data() + 64, kAcpiPm1aCntPort);  // PM1a_CNT_BLK
  store_le<uint32_t>(fadt.data() + 76, kAcpiPmTimerPort);  // PM_TMR_BLK
  fadt[88] = 4;  // PM1_EVT_LEN
  fadt[89] = 2;  // PM1_CNT_LEN
  fadt[91] = 4;  // PM_TMR_LEN
  store_le<uint16_t>(fadt.data() + 96, 0xfff);  // P_LVL2_LAT > 100: no C2
  store_le<uint16_t>(fadt.data() + 98, 0xfff);  // P_LVL3_LAT > 1000: no C3
  constexpr uint16_t k8042 = 1u << 1, kVgaNotPresent = 1u << 2, kCmosRtcNotPresent = 1u << 5;
  store_le<uint16_t>(fadt.data() + 109, k8042 | kVgaNotPresent | kCmosRtcNotPresent);
  constexpr uint32_t kWbinvd = 1u << 0, kProcC1 = 1u << 2;
  constexpr uint32_t kPwrButton = 1u << 4, kSlpButton = 1u << 5;  // no fixed buttons
  constexpr uint32_t kTmrValExt = 1u << 8;                         // 32-bit PM timer
  constexpr uint32_t kResetRegSup = 1u << 10;
  store_le<uint32_t>(fadt.data() + 112,
                     kWbinvd | kProcC1 | kPwrButton | kSlpButton | kTmrValExt | kResetRegSup);
  gas_io(fadt.data() + 116, kAcpiResetPort, 8, 1);  // RESET_REG
  fadt[128] = kAcpiResetValue;
  fadt[131] = 4;                                   // FADT minor version (6.4)
  store_le<uint64_t>(fadt.data() + 140, dsdt_at);  // X_DSDT
  gas_io(fadt.data() + 148, kAcpiPm1aEvtPort, 32, 2);  // X_PM1a_EVT_BLK
  gas_io(fadt.data() + 172, kAcpiPm1aCntPort, 16, 2);  // X_PM1a_CNT_BLK
  gas_io(fadt.data() + 208, kAcpiPmTimerPort, 32, 4);  // X_PM_TMR_BLK
  std::memcpy(fadt.data() + 268, "DOPPELVM", 8);    // hypervisor vendor identity
  finish(fadt);

  // MADT (ACPI 6.4 5.2.12).
  auto madt = header("APIC", 5);
  push<uint32_t>(madt, static_cast<uint32_t>(kLocalApicAddr));
  push<uint32_t>(madt, 1);  // PCAT_COMPAT: dual 8259s present
  for (unsigned c = 0; c < cpus; ++c) {
    const uint8_t lapic[] = {0, 8, static_cast<uint8_t>(c), static_cast<uint8_t>(c), 1, 0, 0, 0};
    madt.insert(madt.end(), std::begin(lapic), std::end(lapic));  // processor local APIC, enabled
  }
  const uint8_t ioapic[] = {1, 12, static_cast<uint8_t>(cpus), 0};
  madt.insert(madt.end(), std::begin(ioapic), std::end(ioapic));
  push<uint32_t>(madt, static_cast<uint32_t>(kIoApicAddr));
  push<uint32_t>(madt, 0);  // GSI base
  auto level_override = [&](unsigned irq) {
    // Interrupt source override: ISA IRQ irq -> GSI irq, active high, level-triggered.
    const uint8_t iso[] = {2, 10, 0, static_cast<uint8_t>(irq)};
    madt.insert(madt.end(), std::begin(iso), std::end(iso));
    push<uint32_t>(madt, irq);
    push<uint16_t>(madt, 0x1 | (0x3 << 2));
  };
  level_override(kAcpiSciIrq);
  for (unsigned irq : level_irqs) level_override(irq);
  const uint8_t nmi[] = {4, 6, 0xff, 0, 0, 1};  // LINT1 of every processor is NMI
  madt.insert(madt.end(), std::begin(nmi), std::end(nmi));
  finish(madt);

  auto xsdt = header("XSDT", 1);
  push<uint64_t>(xsdt, fadt_at);
  push<uint64_t>(xsdt, madt_at);
  finish(xsdt);

  // RSDP, revision 2 (ACPI 6.4 5.2.5.3), 36 bytes.
  std::vector<uint8_t> rsdp(36, 0);
  std::memcpy(rsdp.data(), "RSD PTR ", 8);
  std::memcpy(rsdp.data() + 9, "DOPPEL", 6);
  rsdp[15] = 2;
  store_le<uint32_t>(rsdp.data() + 20, 36);
  store_le<uint64_t>(rsdp.data() + 24, xsdt_at);
  rsdp[8] = checksum(std::span(rsdp).first(20));
  rsdp[32] = checksum(rsdp);

  AcpiTables out{rsdp_at, std::vector<uint8_t>(madt_at - at + madt.size(), 0)};
  auto place = [&](uint64_t addr, const std::vector<uint8_t>& t) {
    std::memcpy(out.bytes.data() + (addr - at), t.data(), t.size());
  };
  place(rsdp_at, rsdp);
  place(xsdt_at, xsdt);
  place(facs_at, facs);
  place(fadt_at, fadt);
  place(dsdt_at, dsdt);
  place(madt_at, madt);
  return out;
}

Result<uint64_t> write_acpi_tables(GuestMemory& memory, unsigned cpus,
                                   std::span<const unsigned> level_irqs) {
  const auto tables = build_acpi_tables(kAcpiAddr, cpus, level_irqs);
  if (kAcpiAddr + tables.bytes.size() > kKernelAddr)
    return Error("ACPI tables do not fit in the BIOS area");
  if (!memory.write(kAcpiAddr, tables.bytes)) return Error("ACPI tables: guest RAM is too small");
  return tables.rsdp_addr;
}

}  // namespace doppel::x86boot
