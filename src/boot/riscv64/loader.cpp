#include "boot/riscv64/loader.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "base/bits.h"
#include "base/unique_fd.h"
#include "boot/riscv64/elf.h"

namespace doppel::rv64boot {

namespace {

constexpr uint64_t kPage = 4096;
constexpr uint64_t kDefaultTextOffset = 2 * MiB;
// Linux links vmlinux at its virtual addresses (p_paddr included) from here up.
constexpr uint64_t kKernelVirtualBase = 0xffff'ffff'0000'0000;

struct OpenFile {
  UniqueFd fd;
  uint64_t size = 0;
};

// "kernel '/x/y'": how messages name a file.
std::string label(const std::string& what, const std::string& path) {
  return fmt::format("{} '{}'", what, path);
}

Result<OpenFile> open_file(const std::string& what, const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return Error::from_errno(label(what, path));
  struct stat st;
  if (fstat(fd.get(), &st) != 0) return Error::from_errno(label(what, path));
  if (!S_ISREG(st.st_mode)) return Error::format("{}: not a regular file", label(what, path));
  if (st.st_size == 0) return Error::format("{}: file is empty", label(what, path));
  return OpenFile{std::move(fd), static_cast<uint64_t>(st.st_size)};
}

// Reads `len` bytes at file offset `offset` into guest memory at gpa.
Result<void> read_into(GuestMemory& memory, uint64_t gpa, OpenFile& file, uint64_t offset,
                       uint64_t len, const std::string& name) {
  uint8_t* dst = memory.host_ptr_for_write(gpa, len);
  if (!dst)
    return Error::format("{}: {} bytes at {:#x} do not fit in guest RAM", name, len, gpa);
  uint64_t done = 0;
  while (done < len) {
    const ssize_t n =
        ::pread(file.fd.get(), dst + done, len - done, static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Error::from_errno(name);
    if (n == 0) return Error::format("{}: file shrank while reading", name);
    done += static_cast<uint64_t>(n);
  }
  return {};
}

// The whole file, mapped read-only (ELF files: parsed where they lie).
class MappedFile {
 public:
  static Result<MappedFile> map(const OpenFile& file, const std::string& name) {
    void* p = ::mmap(nullptr, file.size, PROT_READ, MAP_PRIVATE, file.fd.get(), 0);
    if (p == MAP_FAILED) return Error::from_errno(name);
    return MappedFile(static_cast<const uint8_t*>(p), file.size);
  }
  MappedFile(MappedFile&& o) noexcept : m_data(std::exchange(o.m_data, nullptr)), m_size(o.m_size) {}
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  MappedFile& operator=(MappedFile&&) = delete;
  ~MappedFile() {
    if (m_data) ::munmap(const_cast<uint8_t*>(m_data), m_size);
  }
  std::span<const uint8_t> bytes() const { return {m_data, m_size}; }

 private:
  MappedFile(const uint8_t* data, size_t size) : m_data(data), m_size(size) {}
  const uint8_t* m_data;
  size_t m_size;
};

std::string mib(uint64_t bytes) { return fmt::format("{:.1f} MiB", static_cast<double>(bytes) / MiB); }

// Guest RAM as the loader sees it: images go in [base, limit); above limit the boot data.
struct Ram {
  uint64_t base = 0;
  uint64_t end = 0;
  uint64_t limit = 0;
};

// Where one file went: [low, high) and its entry point.
struct Placed {
  uint64_t low = 0;
  uint64_t high = 0;
  uint64_t entry = 0;
};

Result<void> check_in_ram(const Ram& ram, uint64_t addr, uint64_t size, const std::string& name,
                          const std::string& thing) {
  if (addr < ram.base || addr >= ram.end || size > ram.end - addr) {
    std::string hint;
    if (addr >= kKernelVirtualBase)
      hint = " (a virtual address: for a Linux vmlinux give arch/riscv/boot/Image instead)";
    return Error::format("{}: {} at {:#x} ({:#x} bytes) lies outside guest RAM [{:#x}, {:#x}){}",
                         name, thing, addr, size, ram.base, ram.end, hint);
  }
  if (addr + size > ram.limit)
    return Error::format("{}: {} at {:#x} ({:#x} bytes) reaches the device tree area at the top of "
                         "guest RAM [{:#x}, {:#x}); give the VM more --memory",
                         name, thing, addr, size, ram.limit, ram.end);
  return {};
}

Result<Placed> load_elf(GuestMemory& memory, const Ram& ram, OpenFile& file,
                        const std::string& name) {
  const MappedFile mapped = TRY(MappedFile::map(file, name));
  const ElfImage elf = TRY(parse_elf(mapped.bytes(), name));
  for (const ElfSegment& s : elf.segments)
    TRY(check_in_ram(ram, s.paddr, s.mem_size, name, fmt::format("ELF segment {}", s.index)));
  for (const ElfSegment& s : elf.segments) {
    uint8_t* dst = memory.host_ptr_for_write(s.paddr, s.mem_size);
    if (!dst) return Error::format("{}: ELF segment {} does not fit in guest RAM", name, s.index);
    std::memcpy(dst, mapped.bytes().data() + s.offset, s.file_size);
    std::memset(dst + s.file_size, 0, s.mem_size - s.file_size);
  }
  return Placed{elf.low, elf.high, elf.entry};
}

Result<Placed> load_raw(GuestMemory& memory, const Ram& ram, uint64_t addr, OpenFile& file,
                        const std::string& name) {
  TRY(check_in_ram(ram, addr, file.size, name, "the raw binary"));
  TRY(read_into(memory, addr, file, 0, file.size, name));
  return Placed{addr, addr + file.size, addr};
}

Result<Placed> load_linux_image(GuestMemory& memory, const Ram& ram, OpenFile& file,
                                std::span<const uint8_t> head, const std::string& path,
                                bool has_firmware) {
  const std::string name = label("kernel", path);
  const ImageHeader header = TRY(parse_image_header(head, path));
  // With no firmware, a header text_offset of 0 (an M-mode, no-MMU kernel linked at the
  // start of RAM) means the start of RAM, as QEMU's -bios none loads it; otherwise 0 is the
  // documented default, 2 MiB.
  const bool at_ram_base = !has_firmware && load_le<uint64_t>(head.data() + 8) == 0;
  const uint64_t addr = at_ram_base ? ram.base : ram.base + header.text_offset;
  const uint64_t span = std::max(header.image_size, file.size);
  const uint64_t ram_size = ram.end - ram.base;
  if (header.text_offset >= ram_size || addr >= ram.limit || span > ram.limit - addr)
    return Error::format("{}: needs {} at {:#x}, more than the {} of guest RAM allow", name,
                         mib(span), addr, mib(ram_size));
  TRY(read_into(memory, addr, file, 0, file.size, name));
  return Placed{addr, addr + span, addr};
}

Result<std::vector<uint8_t>> read_head(OpenFile& file, const std::string& name) {
  std::vector<uint8_t> head(64);
  const ssize_t n = ::pread(file.fd.get(), head.data(), head.size(), 0);
  if (n < 0) return Error::from_errno(name);
  head.resize(static_cast<size_t>(n));
  return head;
}

}  // namespace

ImageKind detect_image_kind(std::span<const uint8_t> head) {
  if (has_elf_magic(head)) return ImageKind::kElf;
  if (head.size() >= 64 && (std::memcmp(head.data() + 56, "RSC\x05", 4) == 0 ||
                            std::memcmp(head.data() + 48, "RISCV\0\0\0", 8) == 0))
    return ImageKind::kLinuxImage;
  return ImageKind::kRaw;
}

std::string_view to_string(ImageKind kind) {
  switch (kind) {
    case ImageKind::kLinuxImage: return "Linux Image";
    case ImageKind::kElf: return "ELF";
    case ImageKind::kRaw: return "raw binary";
  }
  return "?";
}

Result<ImageHeader> parse_image_header(std::span<const uint8_t> head, const std::string& path) {
  // Documentation/riscv/boot-image-header.rst: code0 code1 text_offset image_size flags
  // version res1 res2 magic("RISCV\0\0\0", deprecated) magic2("RSC\x05") res3.
  if (head.size() < 64)
    return Error::format("kernel '{}': too small for a RISC-V Linux Image ({} bytes)", path,
                         head.size());
  if (detect_image_kind(head) != ImageKind::kLinuxImage)
    return Error::format("kernel '{}': not a RISC-V Linux Image (no \"RSC\\x05\" magic at offset 56)",
                         path);
  ImageHeader h;
  h.text_offset = load_le<uint64_t>(head.data() + 8);
  h.image_size = load_le<uint64_t>(head.data() + 16);
  if (h.text_offset == 0) h.text_offset = kDefaultTextOffset;  // the documented default
  if (h.text_offset % kPage != 0)
    return Error::format("kernel '{}': text_offset {:#x} is not page-aligned", path, h.text_offset);
  return h;
}

Result<BootLayout> load_images(GuestMemory& memory, uint64_t ram_base,
                               const std::string& firmware_path, const std::string& kernel_path,
                               const std::string& initrd_path) {
  const MemoryRegion* region = nullptr;
  for (const auto& r : memory.regions())
    if (r.gpa == ram_base) region = &r;
  if (!region) return Error::format("boot: no RAM at {:#x}", ram_base);
  if (region->size < 2 * kDtbSlot)
    return Error::format("boot: {} of RAM is too little", mib(region->size));

  BootLayout layout;
  const uint64_t ram_end = ram_base + region->size;
  layout.dtb_addr = align_down(ram_end - kDtbSlot, kDtbSlot);
  layout.fw_info_addr = layout.dtb_addr - kPage;
  const Ram ram{ram_base, ram_end, layout.fw_info_addr};
  layout.has_firmware = !firmware_path.empty();

  // Firmware: an ELF where it is linked, anything else at the start of RAM.
  std::optional<Placed> firmware;
  if (layout.has_firmware) {
    const std::string name = label("firmware", firmware_path);
    auto file = TRY(open_file("firmware", firmware_path));
    const auto head = TRY(read_head(file, name));
    if (detect_image_kind(head) == ImageKind::kElf)
      firmware = TRY(load_elf(memory, ram, file, name));
    else
      firmware = TRY(load_raw(memory, ram, ram_base, file, name));
  }

  // Kernel: by kind.
  const std::string kernel_name = label("kernel", kernel_path);
  auto kernel_file = TRY(open_file("kernel", kernel_path));
  const auto head = TRY(read_head(kernel_file, kernel_name));
  layout.kernel_kind = detect_image_kind(head);
  Placed kernel;
  switch (layout.kernel_kind) {
    case ImageKind::kLinuxImage:
      kernel = TRY(load_linux_image(memory, ram, kernel_file, head, kernel_path,
                                    layout.has_firmware));
      break;
    case ImageKind::kElf:
      kernel = TRY(load_elf(memory, ram, kernel_file, kernel_name));
      break;
    case ImageKind::kRaw:
      kernel = TRY(load_raw(memory, ram, layout.has_firmware ? ram_base + kKernelOffset : ram_base,
                            kernel_file, kernel_name));
      break;
  }
  if (firmware && firmware->low < kernel.high && kernel.low < firmware->high)
    return Error::format("firmware '{}': [{:#x}, {:#x}) overlaps the kernel at [{:#x}, {:#x})",
                         firmware_path, firmware->low, firmware->high, kernel.low, kernel.high);
  layout.kernel_addr = kernel.low;
  layout.kernel_end = kernel.high;
  layout.kernel_entry = kernel.entry;
  layout.entry = firmware ? firmware->entry : kernel.entry;
  if (!layout.has_firmware) layout.fw_info_addr = 0;

  if (!initrd_path.empty()) {
    auto initrd = TRY(open_file("initrd", initrd_path));
    const uint64_t top = ram.limit;
    const uint64_t low = std::max(kernel.high, firmware ? firmware->high : ram_base);
    const uint64_t kernel_span = kernel.high - kernel.low;
    if (low > top || initrd.size > top - low)
      return Error::format("initrd '{}': {} does not fit in guest RAM ({}) beside the kernel ({}); "
                           "give the VM more --memory",
                           initrd_path, mib(initrd.size), mib(region->size), mib(kernel_span));
    const uint64_t start = align_down(top - initrd.size, kPage);
    if (start < low)
      return Error::format("initrd '{}': does not fit in guest RAM beside the kernel", initrd_path);
    TRY(read_into(memory, start, initrd, 0, initrd.size, label("initrd", initrd_path)));
    layout.initrd = std::make_pair(start, start + initrd.size);
  }
  return layout;
}

Result<void> place_boot_data(GuestMemory& memory, const BootLayout& layout,
                             std::span<const uint8_t> dtb) {
  if (dtb.size() > kDtbSlot)
    return Error::format("boot: device tree of {} bytes exceeds its {} byte slot", dtb.size(),
                         kDtbSlot);
  if (!memory.write(layout.dtb_addr, dtb))
    return Error::format("boot: device tree at {:#x} is outside guest RAM", layout.dtb_addr);
  if (!layout.has_firmware) return {};
  FwDynamicInfo info;
  info.next_addr = layout.kernel_entry;
  uint8_t raw[sizeof info];
  std::memcpy(raw, &info, sizeof info);
  if (!memory.write(layout.fw_info_addr, raw))
    return Error::format("boot: fw_dynamic_info at {:#x} is outside guest RAM",
                         layout.fw_info_addr);
  return {};
}

}  // namespace doppel::rv64boot
