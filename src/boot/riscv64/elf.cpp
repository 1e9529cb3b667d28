#include "boot/riscv64/elf.h"

#include <cstring>

#include "base/bits.h"

namespace doppel::rv64boot {

namespace {

// ELF64 header fields (gABI "ELF Header"), byte offsets.
enum class Ehdr : size_t {
  kClass = 4,        // EI_CLASS: 1 = 32-bit, 2 = 64-bit
  kData = 5,         // EI_DATA: 1 = little-endian, 2 = big-endian
  kType = 16,        // e_type (u16): 2 = EXEC, 3 = DYN
  kMachine = 18,     // e_machine (u16)
  kEntry = 24,       // e_entry (u64)
  kPhoff = 32,       // e_phoff (u64): program header table offset
  kPhentsize = 54,   // e_phentsize (u16)
  kPhnum = 56,       // e_phnum (u16)
  kSize = 64,        // sizeof(Elf64_Ehdr)
};

// ELF64 program header fields (gABI "Program Header"), byte offsets.
enum class Phdr : size_t {
  kType = 0,     // p_type (u32): 1 = PT_LOAD
  kOffset = 8,   // p_offset (u64)
  kPaddr = 24,   // p_paddr (u64)
  kFilesz = 32,  // p_filesz (u64)
  kMemsz = 40,   // p_memsz (u64)
  kSize = 56,    // sizeof(Elf64_Phdr)
};

constexpr uint8_t kClass64 = 2;
constexpr uint8_t kDataLittle = 1;
constexpr uint16_t kTypeExec = 2, kTypeDyn = 3;
constexpr uint16_t kMachineRiscv = 243;
constexpr uint32_t kPtLoad = 1;
// PN_XNUM (0xffff) means the count is in section 0: no loader of a boot image needs that.
constexpr uint16_t kMaxPhnum = 0xfffe;

template <typename T>
T field(std::span<const uint8_t> bytes, size_t base, auto offset) {
  return load_le<T>(bytes.data() + base + static_cast<size_t>(offset));
}

std::string_view machine_name(uint16_t machine) {
  switch (machine) {
    case 3: return " (x86)";
    case 40: return " (ARM)";
    case 62: return " (x86-64)";
    case 183: return " (AArch64)";
    case 243: return " (RISC-V)";
    default: return "";
  }
}

}  // namespace

bool has_elf_magic(std::span<const uint8_t> head) {
  return head.size() >= 4 && std::memcmp(head.data(), "\x7f" "ELF", 4) == 0;
}

Result<ElfImage> parse_elf(std::span<const uint8_t> file, std::string_view what) {
  if (!has_elf_magic(file)) return Error::format("{}: not an ELF file", what);
  if (file.size() < static_cast<size_t>(Ehdr::kSize))
    return Error::format("{}: truncated ELF header ({} bytes)", what, file.size());
  const uint8_t elf_class = file[static_cast<size_t>(Ehdr::kClass)];
  if (elf_class != kClass64)
    return Error::format("{}: a {} ELF; doppel's riscv64 machine runs 64-bit RISC-V ELF files only",
                         what, elf_class == 1 ? "32-bit" : fmt::format("class {}", elf_class));
  if (file[static_cast<size_t>(Ehdr::kData)] != kDataLittle)
    return Error::format("{}: a big-endian ELF; RISC-V is little-endian", what);
  const auto machine = field<uint16_t>(file, 0, Ehdr::kMachine);
  if (machine != kMachineRiscv)
    return Error::format("{}: an ELF for machine {}{}, not RISC-V (243)", what, machine,
                         machine_name(machine));
  const auto type = field<uint16_t>(file, 0, Ehdr::kType);
  if (type != kTypeExec && type != kTypeDyn)
    return Error::format("{}: ELF type {} is not an executable (a relocatable object or core "
                         "file cannot be booted)",
                         what, type);

  const auto phoff = field<uint64_t>(file, 0, Ehdr::kPhoff);
  const auto phentsize = field<uint16_t>(file, 0, Ehdr::kPhentsize);
  const auto phnum = field<uint16_t>(file, 0, Ehdr::kPhnum);
  if (phnum == 0) return Error::format("{}: the ELF has no program headers", what);
  if (phnum > kMaxPhnum) return Error::format("{}: extended program header numbering is not supported", what);
  if (phentsize != static_cast<uint16_t>(Phdr::kSize))
    return Error::format("{}: program header entries of {} bytes (ELF64 has {})", what, phentsize,
                         static_cast<size_t>(Phdr::kSize));
  const uint64_t table_size = uint64_t{phnum} * phentsize;
  if (phoff > file.size() || table_size > file.size() - phoff)
    return Error::format("{}: program header table at offset {:#x} ({} entries) runs past the end "
                         "of the file ({} bytes)",
                         what, phoff, phnum, file.size());

  ElfImage image;
  image.entry = field<uint64_t>(file, 0, Ehdr::kEntry);
  image.low = ~uint64_t{0};
  for (unsigned i = 0; i < phnum; ++i) {
    const size_t base = static_cast<size_t>(phoff) + i * static_cast<size_t>(Phdr::kSize);
    if (field<uint32_t>(file, base, Phdr::kType) != kPtLoad) continue;
    ElfSegment s;
    s.index = i;
    s.offset = field<uint64_t>(file, base, Phdr::kOffset);
    s.paddr = field<uint64_t>(file, base, Phdr::kPaddr);
    s.file_size = field<uint64_t>(file, base, Phdr::kFilesz);
    s.mem_size = field<uint64_t>(file, base, Phdr::kMemsz);
    if (s.mem_size == 0) continue;
    if (s.file_size > s.mem_size)
      return Error::format("{}: ELF segment {} has more file bytes ({:#x}) than memory ({:#x})",
                           what, i, s.file_size, s.mem_size);
    if (s.offset > file.size() || s.file_size > file.size() - s.offset)
      return Error::format("{}: ELF segment {} (file offset {:#x}, {:#x} bytes) runs past the end "
                           "of the file ({} bytes)",
                           what, i, s.offset, s.file_size, file.size());
    if (s.paddr + s.mem_size < s.paddr)
      return Error::format("{}: ELF segment {} at {:#x} ({:#x} bytes) wraps around the address "
                           "space",
                           what, i, s.paddr, s.mem_size);
    image.low = std::min(image.low, s.paddr);
    image.high = std::max(image.high, s.paddr + s.mem_size);
    image.segments.push_back(s);
  }
  if (image.segments.empty()) return Error::format("{}: the ELF has no loadable segment", what);
  return image;
}

}  // namespace doppel::rv64boot
