// How a vCPU starts: the register state boot code asks for (x86-64).
//
// The boot code (boot/x86_64) writes page tables and a GDT into guest memory and fills this
// struct; the engine loads it into the vCPU. Only the boot vCPU gets it: the others wait
// in the in-kernel local APIC for INIT/SIPI, as on hardware.
#pragma once

#include <cstdint>

namespace doppel::kvm {

struct X86EntryState {
  enum class Mode {
    kReal,          // 16-bit real mode at real_cs:rip (test guests)
    kProtected32,   // flat 32-bit protected mode, paging off (PVH entry)
    kLong64,        // 64-bit long mode with identity page tables at cr3 (bzImage 64-bit entry)
  };
  Mode mode = Mode::kLong64;
  uint64_t rip = 0;
  uint64_t rsp = 0;
  uint64_t rsi = 0;  // Linux 64-bit boot protocol: boot_params address
  uint64_t rbx = 0;  // PVH: hvm_start_info address
  uint16_t real_cs = 0;  // kReal: code segment selector (base = real_cs << 4)
  uint64_t cr3 = 0;      // kLong64: PML4 address
  uint64_t gdt_base = 0;  // kProtected32 / kLong64: GDT in guest memory (see kGdt* below)
  uint16_t gdt_limit = 0;
};

// The GDT layout boot code writes and the engine's segment registers refer to (Linux boot
// protocol: __BOOT_CS = 0x10, __BOOT_DS = 0x18).
constexpr uint16_t kBootCsSelector = 0x10;
constexpr uint16_t kBootDsSelector = 0x18;
constexpr uint64_t kGdtCode64 = 0x00af9b000000ffffull;  // present, DPL0, exec/read, L=1, G=1
constexpr uint64_t kGdtCode32 = 0x00cf9b000000ffffull;  // present, DPL0, exec/read, D=1, G=1
constexpr uint64_t kGdtData = 0x00cf93000000ffffull;    // present, DPL0, read/write, D=1, G=1

}  // namespace doppel::kvm
