#include "boot/x86_64/loader.h"

#include <elf.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <optional>

#include "base/bits.h"
#include "boot/x86_64/layout.h"

namespace doppel::x86boot {

namespace {

// boot_params offsets (Documentation/x86/zero-page.rst) and setup header fields
// (Documentation/x86/boot.rst), both relative to the start of the zero page / bzImage.
constexpr size_t kAcpiRsdpAddr = 0x070;
constexpr size_t kE820Entries = 0x1e8;
constexpr size_t kSetupSects = 0x1f1;
constexpr size_t kVidMode = 0x1fa;
constexpr size_t kBootFlag = 0x1fe;
constexpr size_t kJump = 0x200;
constexpr size_t kHeaderMagic = 0x202;
constexpr size_t kVersion = 0x206;
constexpr size_t kTypeOfLoader = 0x210;
constexpr size_t kLoadFlags = 0x211;
constexpr size_t kCode32Start = 0x214;
constexpr size_t kRamdiskImage = 0x218;
constexpr size_t kRamdiskSize = 0x21c;
constexpr size_t kHeapEndPtr = 0x224;
constexpr size_t kCmdLinePtr = 0x228;
constexpr size_t kInitrdAddrMax = 0x22c;
constexpr size_t kCmdlineSize = 0x238;
constexpr size_t kXLoadFlags = 0x236;
constexpr size_t kPrefAddress = 0x258;
constexpr size_t kInitSize = 0x260;
constexpr size_t kE820Table = 0x2d0;
constexpr size_t kE820Max = 128;
constexpr uint8_t kLoadedHigh = 0x01;
constexpr uint8_t kCanUseHeap = 0x80;
constexpr uint16_t kXlfKernel64 = 0x01;
constexpr uint32_t kHdrS = 0x53726448;

// PVH (Xen public/arch-x86/hvm/start_info.h, public/elfnote.h).
constexpr uint32_t kXenElfnotePhys32Entry = 18;
constexpr uint32_t kHvmStartMagic = 0x336ec578;

template <typename T>
T get(std::span<const uint8_t> b, size_t off) {
  return load_le<T>(b.data() + off);
}

Result<void> put(GuestMemory& mem, uint64_t gpa, std::span<const uint8_t> bytes, const char* what) {
  if (!mem.write(gpa, bytes))
    return Error::format("{} ({} bytes at {:#x}) does not fit in guest RAM", what, bytes.size(), gpa);
  return ok();
}

uint64_t low_ram_end(const GuestMemory& mem) {
  for (const auto& r : mem.regions())
    if (r.gpa == 0) return r.size;
  return 0;
}

// The highest page-aligned place for `size` bytes in low RAM below `limit`, above `floor`.
Result<uint64_t> place_initrd(const GuestMemory& mem, uint64_t size, uint64_t limit, uint64_t floor) {
  const uint64_t top = std::min(low_ram_end(mem), limit);
  if (size > top || align_down(top - size, 4096) < floor)
    return Error::format("initrd of {} MiB does not fit in guest RAM below {:#x} after the kernel "
                         "(try more --memory)", size >> 20, top);
  return align_down(top - size, 4096);
}

}  // namespace

Result<MappedFile> MappedFile::open(const std::string& path, const char* what) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Error::from_errno(fmt::format("{} {}", what, path));
  struct stat st {};
  if (fstat(fd, &st) != 0) {
    const int e = errno;
    ::close(fd);
    return Error::from_errno(fmt::format("{} {}: stat", what, path), e);
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return Error::format("{} {}: not a regular file", what, path);
  }
  const auto size = static_cast<size_t>(st.st_size);
  if (size == 0) {
    ::close(fd);
    return MappedFile(nullptr, 0);
  }
  void* p = mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  const int e = errno;
  ::close(fd);
  if (p == MAP_FAILED) return Error::from_errno(fmt::format("{} {}: mmap", what, path), e);
  return MappedFile(static_cast<const uint8_t*>(p), size);
}

MappedFile::MappedFile(MappedFile&& other) noexcept : m_data(other.m_data), m_size(other.m_size) {
  other.m_data = nullptr;
  other.m_size = 0;
}

MappedFile::~MappedFile() {
  if (m_data) munmap(const_cast<uint8_t*>(m_data), m_size);
}

std::vector<GuestMemory::RegionSpec> ram_regions(uint64_t memory) {
  if (memory <= kHoleStart) return {{0, memory}};
  return {{0, kHoleStart}, {kHighRamStart, memory - kHoleStart}};
}

std::vector<E820Entry> e820_map(const GuestMemory& memory) {
  std::vector<E820Entry> map;
  for (const auto& r : memory.regions()) {
    if (r.gpa == 0) {
      map.push_back({0, kEbdaStart, E820Type::kRam});
      map.push_back({kEbdaStart, kBiosAreaStart - kEbdaStart, E820Type::kReserved});
      map.push_back({kAcpiAddr, kKernelAddr - kAcpiAddr, E820Type::kReserved});
      if (r.size > kKernelAddr) map.push_back({kKernelAddr, r.size - kKernelAddr, E820Type::kRam});
    } else {
      map.push_back({r.gpa, r.size, E820Type::kRam});
    }
  }
  return map;
}

Result<void> write_page_tables(GuestMemory& memory) {
  constexpr uint64_t kPresentWrite = 0x3;
  constexpr uint64_t kPageSize2M = 0x80;
  std::vector<uint8_t> page(4096, 0);
  store_le<uint64_t>(page.data(), kPdptAddr | kPresentWrite);
  TRY(put(memory, kPml4Addr, page, "PML4"));
  std::fill(page.begin(), page.end(), 0);
  for (uint64_t i = 0; i < 4; ++i)
    store_le<uint64_t>(page.data() + i * 8, (kPdAddr + i * 4096) | kPresentWrite);
  TRY(put(memory, kPdptAddr, page, "PDPT"));
  for (uint64_t pd = 0; pd < 4; ++pd) {
    for (uint64_t i = 0; i < 512; ++i)
      store_le<uint64_t>(page.data() + i * 8,
                         ((pd * 512 + i) << 21) | kPresentWrite | kPageSize2M);
    TRY(put(memory, kPdAddr + pd * 4096, page, "page directory"));
  }
  return ok();
}

Result<void> write_gdt(GuestMemory& memory, bool long_mode) {
  // Selector 0x10 code, 0x18 data, as the boot protocol's __BOOT_CS/__BOOT_DS.
  const uint64_t gdt[4] = {0, 0, long_mode ? 0x00af9b000000ffffull : 0x00cf9b000000ffffull,
                           0x00cf93000000ffffull};
  return put(memory, kGdtAddr,
             std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(gdt), sizeof gdt), "GDT");
}

Result<BootEntry> load_linux(GuestMemory& memory, const LinuxImages& images) {
  const auto k = images.kernel;
  if (k.size() >= 4 && std::memcmp(k.data(), ELFMAG, SELFMAG) == 0) return load_pvh(memory, images);
  return load_bzimage(memory, images);
}

Result<BootEntry> load_bzimage(GuestMemory& memory, const LinuxImages& images) {
  const auto img = images.kernel;
  if (img.size() < kInitSize + 4 || get<uint16_t>(img, kBootFlag) != 0xaa55 ||
      get<uint32_t>(img, kHeaderMagic) != kHdrS)
    return Error("kernel: not a bzImage (no 0xAA55 boot flag and \"HdrS\" setup header) nor an "
                 "ELF vmlinux");
  const uint16_t version = get<uint16_t>(img, kVersion);
  if (version < 0x020c)
    return Error::format("kernel: boot protocol {}.{:02} is too old; the 64-bit entry needs 2.12",
                         version >> 8, version & 0xff);
  if (!(get<uint16_t>(img, kXLoadFlags) & kXlfKernel64))
    return Error("kernel: bzImage has no 64-bit entry point (XLF_KERNEL_64 is clear)");
  unsigned setup_sects = img[kSetupSects];
  if (setup_sects == 0) setup_sects = 4;
  const size_t kernel_offset = (setup_sects + 1) * 512u;
  if (kernel_offset >= img.size()) return Error("kernel: bzImage is truncated after its setup code");
  const auto payload = img.subspan(kernel_offset);
  const uint64_t init_size = std::max<uint64_t>(get<uint32_t>(img, kInitSize), payload.size());
  if (kKernelAddr + init_size > low_ram_end(memory))
    return Error::format("kernel: needs {} MiB from {:#x} to decompress; guest RAM is too small",
                         init_size >> 20, kKernelAddr);
  TRY(put(memory, kKernelAddr, payload, "kernel"));

  // The zero page: the setup header as the image has it, then the loader's fields.
  std::vector<uint8_t> bp(4096, 0);
  const size_t header_end = std::min<size_t>(kJump + 2 + img[kJump + 1], 4096);
  std::memcpy(bp.data() + kSetupSects, img.data() + kSetupSects, header_end - kSetupSects);
  bp[kTypeOfLoader] = 0xff;  // undefined boot loader
  bp[kLoadFlags] = static_cast<uint8_t>(bp[kLoadFlags] | kLoadedHigh | kCanUseHeap);
  store_le<uint16_t>(bp.data() + kHeapEndPtr, 0xfe00);
  store_le<uint16_t>(bp.data() + kVidMode, 0xffff);  // "normal"
  store_le<uint32_t>(bp.data() + kCode32Start, static_cast<uint32_t>(kKernelAddr));
  store_le<uint64_t>(bp.data() + kAcpiRsdpAddr, images.rsdp_addr);

  const uint32_t cmdline_max = get<uint32_t>(img, kCmdlineSize);
  if (images.cmdline.size() >= std::min<uint64_t>(cmdline_max ? cmdline_max : 255, kCmdlineMax))
    return Error::format("kernel command line is {} bytes; this kernel takes at most {}",
                         images.cmdline.size(), cmdline_max - 1);
  std::vector<uint8_t> cmdline(images.cmdline.begin(), images.cmdline.end());
  cmdline.push_back(0);
  TRY(put(memory, kCmdlineAddr, cmdline, "command line"));
  store_le<uint32_t>(bp.data() + kCmdLinePtr, static_cast<uint32_t>(kCmdlineAddr));

  // The decompressor moves the kernel to pref_address (LOAD_PHYSICAL_ADDR, 16 MiB by default)
  // when it was loaded lower; the initrd must stay clear of [pref_address, +init_size).
  const uint64_t pref = std::max<uint64_t>(get<uint64_t>(img, kPrefAddress), kKernelAddr);
  if (pref > low_ram_end(memory) || init_size > low_ram_end(memory) - pref)
    return Error::format("kernel: decompresses to {:#x}+{} MiB; guest RAM is too small", pref,
                         init_size >> 20);
  BootEntry entry;
  entry.kernel_start = kKernelAddr;
  entry.kernel_end = pref + init_size;
  if (!images.initrd.empty()) {
    const uint64_t max = get<uint32_t>(img, kInitrdAddrMax);
    const uint64_t at = TRY(place_initrd(memory, images.initrd.size(),
                                         max ? max + 1 : kHoleStart, entry.kernel_end));
    TRY(put(memory, at, images.initrd, "initrd"));
    store_le<uint32_t>(bp.data() + kRamdiskImage, static_cast<uint32_t>(at));
    store_le<uint32_t>(bp.data() + kRamdiskSize, static_cast<uint32_t>(images.initrd.size()));
    entry.initrd_start = at;
    entry.initrd_size = images.initrd.size();
  }

  const auto map = e820_map(memory);
  if (map.size() > kE820Max) return Error("e820 map has too many entries");
  bp[kE820Entries] = static_cast<uint8_t>(map.size());
  for (size_t i = 0; i < map.size(); ++i) {
    uint8_t* e = bp.data() + kE820Table + i * 20;
    store_le<uint64_t>(e, map[i].addr);
    store_le<uint64_t>(e + 8, map[i].size);
    store_le<uint32_t>(e + 16, static_cast<uint32_t>(map[i].type));
  }
  TRY(put(memory, kBootParamsAddr, bp, "boot_params"));
  TRY(write_page_tables(memory));
  TRY(write_gdt(memory, true));

  entry.mode = BootEntry::Mode::kLong64;
  entry.rip = kKernelAddr + 0x200;  // startup_64: the 64-bit entry of the boot protocol
  entry.rsi = kBootParamsAddr;
  entry.rsp = kBootStackTop;
  entry.cr3 = kPml4Addr;
  entry.gdt_base = kGdtAddr;
  entry.gdt_limit = 4 * 8 - 1;
  return entry;
}

Result<BootEntry> load_pvh(GuestMemory& memory, const LinuxImages& images) {
  const auto img = images.kernel;
  if (img.size() < sizeof(Elf64_Ehdr)) return Error("kernel: ELF file is truncated");
  Elf64_Ehdr eh;
  std::memcpy(&eh, img.data(), sizeof eh);
  if (eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_machine != EM_X86_64)
    return Error("kernel: ELF file is not an x86-64 vmlinux");
  if (eh.e_phentsize != sizeof(Elf64_Phdr) || eh.e_phoff > img.size() ||
      uint64_t{eh.e_phnum} * sizeof(Elf64_Phdr) > img.size() - eh.e_phoff)
    return Error("kernel: ELF program headers lie outside the file");

  BootEntry entry;
  entry.kernel_start = ~0ull;
  std::optional<uint64_t> pvh_entry;
  for (unsigned i = 0; i < eh.e_phnum; ++i) {
    Elf64_Phdr ph;
    std::memcpy(&ph, img.data() + eh.e_phoff + i * sizeof ph, sizeof ph);
    if (ph.p_offset > img.size() || ph.p_filesz > img.size() - ph.p_offset)
      return Error::format("kernel: ELF segment {} lies outside the file", i);
    if (ph.p_type == PT_LOAD) {
      if (ph.p_filesz > ph.p_memsz) return Error::format("kernel: ELF segment {} is malformed", i);
      if (ph.p_paddr < kKernelAddr)
        return Error::format("kernel: ELF segment {} at {:#x} lies below {:#x}, where doppel keeps "
                             "the boot structures", i, ph.p_paddr, kKernelAddr);
      uint8_t* dst = memory.host_ptr_for_write(ph.p_paddr, ph.p_memsz);
      if (!dst)
        return Error::format("kernel: ELF segment {} ({:#x}+{:#x}) is outside guest RAM", i,
                             ph.p_paddr, ph.p_memsz);
      std::memcpy(dst, img.data() + ph.p_offset, ph.p_filesz);
      std::memset(dst + ph.p_filesz, 0, ph.p_memsz - ph.p_filesz);
      entry.kernel_start = std::min(entry.kernel_start, ph.p_paddr);
      entry.kernel_end = std::max(entry.kernel_end, ph.p_paddr + ph.p_memsz);
    } else if (ph.p_type == PT_NOTE) {
      // Notes: namesz, descsz, type, name (padded to 4), desc (padded to 4).
      uint64_t off = ph.p_offset;
      const uint64_t end = ph.p_offset + ph.p_filesz;
      while (end - off >= 12) {
        const uint32_t namesz = get<uint32_t>(img, off);
        const uint32_t descsz = get<uint32_t>(img, off + 4);
        const uint32_t type = get<uint32_t>(img, off + 8);
        const uint64_t name_at = off + 12;
        const uint64_t desc_at = name_at + align_up(namesz, 4);
        if (desc_at > end || align_up(descsz, 4) > end - desc_at) break;
        if (type == kXenElfnotePhys32Entry && namesz == 4 &&
            std::memcmp(img.data() + name_at, "Xen", 4) == 0 && descsz >= 4)
          pvh_entry = descsz >= 8 ? get<uint64_t>(img, desc_at) : get<uint32_t>(img, desc_at);
        off = desc_at + align_up(descsz, 4);
      }
    }
  }
  if (!pvh_entry)
    return Error("kernel: vmlinux has no PVH entry (XEN_ELFNOTE_PHYS32_ENTRY); build it with "
                 "CONFIG_PVH=y or boot the bzImage");
  if (entry.kernel_start == ~0ull) return Error("kernel: ELF file has no loadable segments");

  std::vector<uint8_t> cmdline(images.cmdline.begin(), images.cmdline.end());
  cmdline.push_back(0);
  if (cmdline.size() > kCmdlineMax) return Error("kernel command line is too long");
  TRY(put(memory, kCmdlineAddr, cmdline, "command line"));

  // hvm_start_info (56 bytes), then the module list (32 bytes per entry), then the memory
  // map (24 bytes per entry), all in the page at kStartInfoAddr.
  std::vector<uint8_t> si(4096, 0);
  const uint64_t modlist = kStartInfoAddr + 64;
  const uint64_t memmap = kStartInfoAddr + 128;
  store_le<uint32_t>(si.data() + 0, kHvmStartMagic);
  store_le<uint32_t>(si.data() + 4, 1);  // version
  store_le<uint64_t>(si.data() + 24, kCmdlineAddr);
  store_le<uint64_t>(si.data() + 32, images.rsdp_addr);
  if (!images.initrd.empty()) {
    const uint64_t at =
        TRY(place_initrd(memory, images.initrd.size(), kHoleStart, entry.kernel_end));
    TRY(put(memory, at, images.initrd, "initrd"));
    store_le<uint32_t>(si.data() + 12, 1);  // nr_modules
    store_le<uint64_t>(si.data() + 16, modlist);
    store_le<uint64_t>(si.data() + 64, at);
    store_le<uint64_t>(si.data() + 72, images.initrd.size());
    entry.initrd_start = at;
    entry.initrd_size = images.initrd.size();
  }
  const auto map = e820_map(memory);
  if (128 + map.size() * 24 > si.size()) return Error("PVH memory map has too many entries");
  store_le<uint64_t>(si.data() + 40, memmap);
  store_le<uint32_t>(si.data() + 48, static_cast<uint32_t>(map.size()));
  for (size_t i = 0; i < map.size(); ++i) {
    uint8_t* e = si.data() + 128 + i * 24;
    store_le<uint64_t>(e, map[i].addr);
    store_le<uint64_t>(e + 8, map[i].size);
    store_le<uint32_t>(e + 16, static_cast<uint32_t>(map[i].type));
  }
  TRY(put(memory, kStartInfoAddr, si, "hvm_start_info"));
  TRY(write_gdt(memory, false));

  entry.mode = BootEntry::Mode::kProtected32;
  entry.rip = *pvh_entry;
  entry.rbx = kStartInfoAddr;
  entry.rsp = kBootStackTop;
  entry.gdt_base = kGdtAddr;
  entry.gdt_limit = 4 * 8 - 1;
  return entry;
}

}  // namespace doppel::x86boot
