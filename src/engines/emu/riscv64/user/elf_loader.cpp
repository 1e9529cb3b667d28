#include "engines/emu/riscv64/user/elf_loader.h"

#include <algorithm>
#include <cstring>

#include "base/bits.h"

namespace doppel::rv64::user {

namespace {

// Field offsets of Elf64_Ehdr and Elf64_Phdr (gABI).
constexpr size_t kEhdrSize = 64;
constexpr size_t kPhdrSize = 56;

template <typename T>
T field(std::span<const uint8_t> file, size_t offset) {
  return load_le<T>(file.data() + offset);  // callers checked offset + sizeof(T) <= size
}

// a + b <= limit without overflow.
bool fits(uint64_t a, uint64_t b, uint64_t limit) { return a <= limit && b <= limit - a; }

}  // namespace

Result<ElfImage> parse_elf(std::span<const uint8_t> file, std::string_view what) {
  auto fail = [&](std::string reason) { return Error(fmt::format("{}: {}", what, reason)); };
  if (file.size() < kEhdrSize) return fail(fmt::format("too short for an ELF header ({} bytes)", file.size()));
  if (std::memcmp(file.data(), "\x7f" "ELF", 4) != 0) return fail("not an ELF file (bad magic)");
  if (file[4] != 2) return fail("not ELF64 (EI_CLASS is not ELFCLASS64)");
  if (file[5] != 1) return fail("not little-endian (EI_DATA is not ELFDATA2LSB)");
  if (file[6] != 1) return fail(fmt::format("unknown ELF version {}", file[6]));
  const auto type = field<uint16_t>(file, 16);
  const auto machine = field<uint16_t>(file, 18);
  if (machine != kEmRiscv) return fail(fmt::format("not a RISC-V executable (e_machine {})", machine));
  if (type == kEtDyn) return fail("is position-independent (ET_DYN); only static ET_EXEC executables are supported");
  if (type != kEtExec) return fail(fmt::format("not an executable (e_type {})", type));

  ElfImage image;
  image.entry = field<uint64_t>(file, 24);
  const auto phoff = field<uint64_t>(file, 32);
  image.phentsize = field<uint16_t>(file, 54);
  image.phnum = field<uint16_t>(file, 56);
  if (image.phnum == 0) return fail("has no program headers");
  if (image.phentsize != kPhdrSize)
    return fail(fmt::format("program header size {} is not {}", image.phentsize, kPhdrSize));
  if (!fits(phoff, uint64_t{image.phnum} * kPhdrSize, file.size()))
    return fail(fmt::format("program headers at offset {:#x} ({} entries) extend past the end of the file",
                            phoff, image.phnum));

  uint64_t phdr_vaddr_from_load = 0;
  bool has_phdr = false;
  for (uint16_t i = 0; i < image.phnum; ++i) {
    const size_t ph = static_cast<size_t>(phoff) + size_t{i} * kPhdrSize;
    const auto p_type = field<uint32_t>(file, ph);
    if (p_type == kPtInterp) return fail("is dynamically linked (has PT_INTERP); link it with -static");
    if (p_type == kPtPhdr) {
      has_phdr = true;
      image.phdr_vaddr = field<uint64_t>(file, ph + 16);
    }
    if (p_type != kPtLoad) continue;
    ElfSegment s;
    s.flags = field<uint32_t>(file, ph + 4);
    s.offset = field<uint64_t>(file, ph + 8);
    s.vaddr = field<uint64_t>(file, ph + 16);
    s.filesz = field<uint64_t>(file, ph + 32);
    s.memsz = field<uint64_t>(file, ph + 40);
    const std::string seg = fmt::format("segment {} (vaddr {:#x}, memsz {:#x})", i, s.vaddr, s.memsz);
    if (s.filesz > s.memsz) return fail(seg + fmt::format(": file size {:#x} exceeds memory size", s.filesz));
    if (!fits(s.offset, s.filesz, file.size()))
      return fail(seg + fmt::format(": file range {:#x}+{:#x} extends past the end of the file ({} bytes)",
                                    s.offset, s.filesz, file.size()));
    if (s.memsz == 0) continue;
    if (s.vaddr < kUserMinAddr || !fits(s.vaddr, s.memsz, kUserAddrLimit))
      return fail(seg + fmt::format(": outside the user address range [{:#x}, {:#x})", kUserMinAddr,
                                    kUserAddrLimit));
    // The program headers are visible to the program if a segment maps them (AT_PHDR).
    if (!has_phdr && phoff >= s.offset && phoff - s.offset < s.filesz &&
        fits(phoff - s.offset, uint64_t{image.phnum} * kPhdrSize, s.filesz))
      phdr_vaddr_from_load = s.vaddr + (phoff - s.offset);
    image.segments.push_back(s);
  }
  if (image.segments.empty()) return fail("has no loadable (PT_LOAD) segments");
  if (!has_phdr) image.phdr_vaddr = phdr_vaddr_from_load;

  // Segments must not overlap (in pages: they share no page with different contents).
  std::vector<ElfSegment> sorted = image.segments;
  std::sort(sorted.begin(), sorted.end(),
            [](const ElfSegment& a, const ElfSegment& b) { return a.vaddr < b.vaddr; });
  for (size_t i = 1; i < sorted.size(); ++i) {
    if (sorted[i - 1].vaddr + sorted[i - 1].memsz > sorted[i].vaddr)
      return fail(fmt::format("segments at {:#x} and {:#x} overlap", sorted[i - 1].vaddr, sorted[i].vaddr));
  }
  image.low = align_down(sorted.front().vaddr, kUserPageSize);
  image.high = align_up(sorted.back().vaddr + sorted.back().memsz, kUserPageSize);

  const bool entry_ok = std::any_of(sorted.begin(), sorted.end(), [&](const ElfSegment& s) {
    return (s.flags & kPfX) && image.entry >= s.vaddr && image.entry - s.vaddr < s.memsz;
  });
  if (!entry_ok) return fail(fmt::format("entry point {:#x} is not inside an executable segment", image.entry));
  return image;
}

Result<void> load_elf(const ElfImage& image, std::span<const uint8_t> file, GuestMemory& memory) {
  for (const auto& s : image.segments) {
    uint8_t* dst = memory.host_ptr_for_write(s.vaddr, s.memsz);
    if (!dst)
      return Error::format("ELF segment {:#x}+{:#x} is outside guest memory", s.vaddr, s.memsz);
    if (!fits(s.offset, s.filesz, file.size()) || s.filesz > s.memsz)
      return Error::format("ELF segment {:#x}: file range {:#x}+{:#x} is not inside the file", s.vaddr,
                           s.offset, s.filesz);
    std::memcpy(dst, file.data() + s.offset, static_cast<size_t>(s.filesz));
    std::memset(dst + s.filesz, 0, static_cast<size_t>(s.memsz - s.filesz));
  }
  return ok();
}

}  // namespace doppel::rv64::user
