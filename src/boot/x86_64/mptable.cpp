#include "boot/x86_64/mptable.h"

#include <algorithm>
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

struct Writer {
  std::vector<uint8_t>& out;
  void u8(uint8_t v) { out.push_back(v); }
  void u16(uint16_t v) { u8(static_cast<uint8_t>(v)); u8(static_cast<uint8_t>(v >> 8)); }
  void u32(uint32_t v) { u16(static_cast<uint16_t>(v)); u16(static_cast<uint16_t>(v >> 16)); }
  void str(const char* s, size_t n) {
    for (size_t i = 0; i < n; ++i) u8(i < std::strlen(s) ? static_cast<uint8_t>(s[i]) : ' ');
  }
};

// MP spec 1.4 table 4-3: entry types.
enum class MpEntry : uint8_t { kProcessor = 0, kBus = 1, kIoApic = 2, kIoInterrupt = 3, kLocalInterrupt = 4 };
enum class MpIrqType : uint8_t { kInt = 0, kNmi = 1, kSmi = 2, kExtInt = 3 };
constexpr uint16_t kPolarityHigh = 0x1;
constexpr uint16_t kTriggerLevel = 0x3 << 2;

}  // namespace

std::vector<uint8_t> build_mp_table(uint64_t at, unsigned cpus, std::span<const unsigned> level_irqs) {
  const uint8_t ioapic_id = static_cast<uint8_t>(cpus);
  std::vector<uint8_t> table;  // the configuration table, after the 16-byte floating pointer
  Writer w{table};
  w.str("PCMP", 4);
  w.u16(0);  // base table length, patched below
  w.u8(4);   // spec revision 1.4
  w.u8(0);   // checksum, patched below
  w.str("DOPPEL", 8);
  w.str("x86_64 KVM", 12);
  w.u32(0);  // OEM table pointer
  w.u16(0);  // OEM table size
  w.u16(0);  // entry count, patched below
  w.u32(static_cast<uint32_t>(kLocalApicAddr));
  w.u16(0);  // extended table length
  w.u8(0);   // extended table checksum
  w.u8(0);
  uint16_t entries = 0;
  for (unsigned c = 0; c < cpus; ++c) {
    w.u8(static_cast<uint8_t>(MpEntry::kProcessor));
    w.u8(static_cast<uint8_t>(c));   // local APIC ID
    w.u8(0x14);                      // local APIC version
    w.u8(static_cast<uint8_t>(0x1 | (c == 0 ? 0x2 : 0)));  // enabled, bootstrap processor
    w.u32(0x600);                    // CPU signature: family 6
    w.u32(0x201);                    // features: FPU, APIC
    w.u32(0);
    w.u32(0);
    ++entries;
  }
  w.u8(static_cast<uint8_t>(MpEntry::kBus));
  w.u8(0);
  w.str("ISA", 6);
  ++entries;
  w.u8(static_cast<uint8_t>(MpEntry::kIoApic));
  w.u8(ioapic_id);
  w.u8(0x11);  // IOAPIC version
  w.u8(1);     // enabled
  w.u32(static_cast<uint32_t>(kIoApicAddr));
  ++entries;
  for (unsigned irq = 0; irq < 16; ++irq) {
    if (irq == 2) continue;  // the cascade
    const bool level = std::find(level_irqs.begin(), level_irqs.end(), irq) != level_irqs.end();
    w.u8(static_cast<uint8_t>(MpEntry::kIoInterrupt));
    w.u8(static_cast<uint8_t>(MpIrqType::kInt));
    w.u16(level ? (kPolarityHigh | kTriggerLevel) : 0);  // 0: conforms to the bus (ISA edge)
    w.u8(0);                                           // source bus: ISA
    w.u8(static_cast<uint8_t>(irq));
    w.u8(ioapic_id);
    w.u8(static_cast<uint8_t>(irq));  // IOAPIC pin
    ++entries;
  }
  for (uint8_t lint = 0; lint < 2; ++lint) {
    w.u8(static_cast<uint8_t>(MpEntry::kLocalInterrupt));
    w.u8(static_cast<uint8_t>(lint == 0 ? MpIrqType::kExtInt : MpIrqType::kNmi));
    w.u16(0);
    w.u8(0);
    w.u8(0);
    w.u8(0xff);  // every local APIC
    w.u8(lint);
    ++entries;
  }
  store_le<uint16_t>(table.data() + 4, static_cast<uint16_t>(table.size()));
  store_le<uint16_t>(table.data() + 34, entries);
  table[7] = checksum(table);

  std::vector<uint8_t> out;
  Writer f{out};
  f.str("_MP_", 4);
  f.u32(static_cast<uint32_t>(at + 16));  // configuration table right after
  f.u8(1);  // length in 16-byte units
  f.u8(4);  // spec revision
  f.u8(0);  // checksum, patched below
  for (int i = 0; i < 5; ++i) f.u8(0);  // feature bytes: 0 = a configuration table is present
  out[10] = checksum(out);
  out.insert(out.end(), table.begin(), table.end());
  return out;
}

Result<void> write_mp_table(GuestMemory& memory, unsigned cpus, std::span<const unsigned> level_irqs) {
  const auto table = build_mp_table(kMpTableAddr, cpus, level_irqs);
  if (kMpTableAddr + table.size() > kBiosAreaStart)
    return Error::format("MP table for {} CPUs does not fit in the EBDA", cpus);
  if (!memory.write(kMpTableAddr, table)) return Error("MP table: guest RAM does not reach the EBDA");
  return ok();
}

}  // namespace doppel::x86boot
