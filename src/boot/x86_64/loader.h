// Loading x86-64 Linux: a bzImage through the 64-bit boot protocol (boot_params, e820,
// command line, initrd; entry at startup_64 in long mode with doppel's page tables and
// GDT), or an uncompressed vmlinux through PVH (XEN_ELFNOTE_PHYS32_ENTRY, hvm_start_info;
// entry in 32-bit protected mode).
// References: Documentation/x86/boot.rst (the Linux x86 boot protocol), Xen's
// public/arch-x86/hvm/start_info.h (PVH).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "base/result.h"
#include "core/guest_memory.h"

namespace doppel::x86boot {

// Where and how the boot vCPU starts (the machine turns it into the engine's state).
struct BootEntry {
  enum class Mode { kLong64, kProtected32 } mode = Mode::kLong64;
  uint64_t rip = 0;
  uint64_t rsp = 0;
  uint64_t rsi = 0;  // bzImage: boot_params
  uint64_t rbx = 0;  // PVH: hvm_start_info
  uint64_t cr3 = 0;
  uint64_t gdt_base = 0;
  uint16_t gdt_limit = 0;
  uint64_t kernel_start = 0, kernel_end = 0;
  uint64_t initrd_start = 0, initrd_size = 0;
};

enum class E820Type : uint32_t { kRam = 1, kReserved = 2, kAcpi = 3 };
struct E820Entry {
  uint64_t addr;
  uint64_t size;
  E820Type type;
};

// The guest-physical RAM split for `memory` bytes: below the 32-bit hole, then above 4 GiB.
std::vector<GuestMemory::RegionSpec> ram_regions(uint64_t memory);
// The e820 map of this machine: RAM minus the EBDA and BIOS area, which are reserved.
std::vector<E820Entry> e820_map(const GuestMemory& memory);

// Identity map of the first 4 GiB with 2 MiB pages (PML4 at kPml4Addr) and the boot GDT.
Result<void> write_page_tables(GuestMemory& memory);
Result<void> write_gdt(GuestMemory& memory, bool long_mode);

struct LinuxImages {
  std::span<const uint8_t> kernel;  // bzImage or vmlinux (ELF): detected by its header
  std::span<const uint8_t> initrd;  // may be empty
  std::string cmdline;
  uint64_t rsdp_addr = 0;           // ACPI RSDP, passed in boot_params / hvm_start_info
};

// Loads the kernel, initrd and command line and writes the boot structures, page tables
// and GDT. Fails naming the problem if the image is not a bootable 64-bit kernel, or
// something does not fit in RAM.
Result<BootEntry> load_linux(GuestMemory& memory, const LinuxImages& images);
Result<BootEntry> load_bzimage(GuestMemory& memory, const LinuxImages& images);
Result<BootEntry> load_pvh(GuestMemory& memory, const LinuxImages& images);

// A kernel or initrd file mapped read-only for loading (no copy: the loaders copy straight
// from the page cache into guest RAM), unmapped when destroyed. `what` names the file in
// errors ("kernel /x: No such file or directory").
class MappedFile {
 public:
  static Result<MappedFile> open(const std::string& path, const char* what);
  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&&) = delete;
  MappedFile(const MappedFile&) = delete;
  ~MappedFile();
  std::span<const uint8_t> bytes() const { return {m_data, m_size}; }

 private:
  MappedFile(const uint8_t* data, size_t size) : m_data(data), m_size(size) {}
  const uint8_t* m_data;
  size_t m_size;
};

}  // namespace doppel::x86boot
