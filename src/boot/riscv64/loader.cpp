#include "boot/riscv64/loader.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>

#include "base/bits.h"
#include "base/unique_fd.h"

namespace doppel::rv64boot {

namespace {

constexpr uint64_t kPage = 4096;
constexpr uint64_t kDefaultTextOffset = 2 * MiB;

struct OpenFile {
  UniqueFd fd;
  uint64_t size = 0;
};

Result<OpenFile> open_file(const std::string& what, const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return Error::from_errno(fmt::format("{} {}", what, path));
  struct stat st;
  if (fstat(fd.get(), &st) != 0) return Error::from_errno(fmt::format("{} {}", what, path));
  if (!S_ISREG(st.st_mode)) return Error::format("{} {}: not a regular file", what, path);
  if (st.st_size == 0) return Error::format("{} {}: file is empty", what, path);
  return OpenFile{std::move(fd), static_cast<uint64_t>(st.st_size)};
}

// Reads the whole file into guest memory at gpa.
Result<void> read_into(GuestMemory& memory, uint64_t gpa, OpenFile& file, const std::string& what,
                       const std::string& path) {
  uint8_t* dst = memory.host_ptr_for_write(gpa, file.size);
  if (!dst)
    return Error::format("{} {}: {} bytes at {:#x} do not fit in guest RAM", what, path, file.size,
                         gpa);
  uint64_t done = 0;
  while (done < file.size) {
    const ssize_t n = ::pread(file.fd.get(), dst + done, file.size - done, static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Error::from_errno(fmt::format("{} {}", what, path));
    if (n == 0) return Error::format("{} {}: file shrank while reading", what, path);
    done += static_cast<uint64_t>(n);
  }
  return {};
}

std::string mib(uint64_t bytes) { return fmt::format("{:.1f} MiB", static_cast<double>(bytes) / MiB); }

}  // namespace

Result<ImageHeader> parse_image_header(std::span<const uint8_t> head, const std::string& path) {
  // Documentation/riscv/boot-image-header.rst: code0 code1 text_offset image_size flags
  // version res1 res2 magic("RISCV\0\0\0", deprecated) magic2("RSC\x05") res3.
  if (head.size() < 64)
    return Error::format("kernel {}: too small for a RISC-V Linux Image ({} bytes)", path,
                         head.size());
  const bool magic2 = std::memcmp(head.data() + 56, "RSC\x05", 4) == 0;
  const bool magic = std::memcmp(head.data() + 48, "RISCV\0\0\0", 8) == 0;
  if (!magic && !magic2) {
    if (std::memcmp(head.data(), "\x7f" "ELF", 4) == 0)
      return Error::format("kernel {}: is an ELF file (vmlinux); give the Image from "
                           "arch/riscv/boot/Image instead", path);
    return Error::format("kernel {}: not a RISC-V Linux Image (no \"RSC\\x05\" magic at offset 56)",
                         path);
  }
  ImageHeader h;
  h.text_offset = load_le<uint64_t>(head.data() + 8);
  h.image_size = load_le<uint64_t>(head.data() + 16);
  if (h.text_offset == 0) h.text_offset = kDefaultTextOffset;  // the documented default
  if (h.text_offset % kPage != 0)
    return Error::format("kernel {}: text_offset {:#x} is not page-aligned", path, h.text_offset);
  return h;
}

Result<BootLayout> load_images(GuestMemory& memory, uint64_t ram_base,
                               const std::string& firmware_path, const std::string& kernel_path,
                               const std::string& initrd_path) {
  const MemoryRegion* ram = nullptr;
  for (const auto& r : memory.regions())
    if (r.gpa == ram_base) ram = &r;
  if (!ram) return Error::format("boot: no RAM at {:#x}", ram_base);
  const uint64_t ram_end = ram_base + ram->size;
  if (ram->size < 2 * kDtbSlot) return Error::format("boot: {} of RAM is too little", mib(ram->size));

  BootLayout layout;
  layout.entry = ram_base;
  layout.dtb_addr = align_down(ram_end - kDtbSlot, kDtbSlot);
  layout.fw_info_addr = layout.dtb_addr - kPage;

  // Kernel: its header says where it goes and how much memory it takes with its bss.
  auto kernel = TRY(open_file("kernel", kernel_path));
  uint8_t head[64] = {};
  const ssize_t n = ::pread(kernel.fd.get(), head, sizeof head, 0);
  if (n < 0) return Error::from_errno(fmt::format("kernel {}", kernel_path));
  const ImageHeader header =
      TRY(parse_image_header({head, static_cast<size_t>(n)}, kernel_path));
  layout.kernel_addr = ram_base + header.text_offset;
  const uint64_t kernel_span = std::max(header.image_size, kernel.size);
  layout.kernel_end = layout.kernel_addr + kernel_span;
  if (header.text_offset >= ram->size || layout.kernel_addr >= layout.fw_info_addr ||
      kernel_span > layout.fw_info_addr - layout.kernel_addr)
    return Error::format("kernel {}: needs {} at {:#x}, more than the {} of guest RAM allow",
                         kernel_path, mib(kernel_span), layout.kernel_addr, mib(ram->size));

  // Firmware: from the start of RAM, below the kernel.
  auto firmware = TRY(open_file("firmware", firmware_path));
  if (firmware.size > header.text_offset)
    return Error::format("firmware {}: {} bytes overlap the kernel at {:#x}", firmware_path,
                         firmware.size, layout.kernel_addr);
  TRY(read_into(memory, ram_base, firmware, "firmware", firmware_path));
  TRY(read_into(memory, layout.kernel_addr, kernel, "kernel", kernel_path));

  if (!initrd_path.empty()) {
    auto initrd = TRY(open_file("initrd", initrd_path));
    const uint64_t top = layout.fw_info_addr;
    if (initrd.size > top - layout.kernel_end)
      return Error::format("initrd {}: {} does not fit in guest RAM ({}) beside the kernel ({}); "
                           "give the VM more --memory",
                           initrd_path, mib(initrd.size), mib(ram->size), mib(kernel_span));
    const uint64_t start = align_down(top - initrd.size, kPage);
    if (start < layout.kernel_end)
      return Error::format("initrd {}: does not fit in guest RAM beside the kernel", initrd_path);
    TRY(read_into(memory, start, initrd, "initrd", initrd_path));
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
  FwDynamicInfo info;
  info.next_addr = layout.kernel_addr;
  uint8_t raw[sizeof info];
  std::memcpy(raw, &info, sizeof info);
  if (!memory.write(layout.fw_info_addr, raw))
    return Error::format("boot: fw_dynamic_info at {:#x} is outside guest RAM",
                         layout.fw_info_addr);
  return {};
}

}  // namespace doppel::rv64boot
