// Loads the riscv64 machine's boot images into guest RAM, as qemu-system-riscv64 -M virt
// does with -bios and -kernel, and places the device tree and the struct fw_dynamic_info
// OpenSBI reads (OpenSBI docs/firmware/fw_dynamic.md; Linux
// Documentation/riscv/boot-image-header.rst).
//
// The kernel (what runs after the firmware) is told apart by its first bytes:
//   Linux Image ("RSC\x05" at 56)  at ram_base + its header's text_offset (2 MiB on rv64);
//                                   the header's image_size (text + bss) must fit
//   ELF (64-bit RISC-V only)        PT_LOAD segments at their p_paddr, entry e_entry
//   anything else: a raw binary     at ram_base + 2 MiB (kKernelOffset), entry there; with
//                                   no firmware at ram_base, where the harts start
// The firmware is an ELF (segments at p_paddr, entry e_entry) or a raw binary at ram_base
// (OpenSBI fw_dynamic.bin / fw_jump.bin, U-Boot's M-mode u-boot.bin). Firmware and kernel
// must not overlap; both must lie in RAM below the boot data at the top.
//
// Layout (RAM = [ram_base, ram_end)):
//   ram_base                      firmware (raw), or the kernel when there is none
//   ram_base + 2 MiB              kernel (Image, raw)
//   ...                           free
//   below the info page, 4 KiB    initrd
//   below the DTB, 4 KiB          fw_dynamic_info
//   ram_end - kDtbSlot            device tree (headroom for OpenSBI's fixups)
//
// Every hart starts in M-mode with a0 = hartid, a1 = DTB, a2 = &fw_dynamic_info: at the
// firmware's entry, or with no firmware (QEMU's -bios none) at the kernel's entry, a2 = 0;
// then an Image whose header says text_offset 0 (an M-mode no-MMU kernel) goes to ram_base.
// One convention serves every firmware: fw_dynamic reads next_addr (the kernel's entry)
// from the info; fw_jump ignores a2 and jumps to its built-in FW_JUMP_ADDR, which in
// Debian's generic build is ram_base + 2 MiB, where Images and raw kernels go. Debian's
// fw_jump also copies the device tree to its FW_JUMP_FDT_ADDR (ram_base + 34 MiB) and hands
// that copy on: a kernel given to fw_jump must end below it.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>

#include "base/result.h"
#include "core/guest_memory.h"

namespace doppel::rv64boot {

// struct fw_dynamic_info (OpenSBI include/sbi/fw_dynamic.h), rv64: six unsigned longs.
struct FwDynamicInfo {
  uint64_t magic = kMagic;
  uint64_t version = 2;
  uint64_t next_addr = 0;
  uint64_t next_mode = kNextModeS;
  uint64_t options = 0;
  uint64_t boot_hart = ~0ull;  // -1: any hart may do the cold boot (lottery)
  static constexpr uint64_t kMagic = 0x4942534f;  // "OSBI"
  static constexpr uint64_t kNextModeS = 1;
};
static_assert(sizeof(FwDynamicInfo) == 48);

constexpr uint64_t kDtbSlot = 2 * 1024 * 1024;  // at the top of RAM, 2 MiB aligned

constexpr uint64_t kKernelOffset = 2 * 1024 * 1024;  // a raw kernel's place after firmware

// What kind of file a kernel is, from its first bytes (64 are enough).
enum class ImageKind { kLinuxImage, kElf, kRaw };
ImageKind detect_image_kind(std::span<const uint8_t> head);
std::string_view to_string(ImageKind kind);

struct BootLayout {
  uint64_t entry = 0;  // where every hart starts, in M-mode
  bool has_firmware = true;
  ImageKind kernel_kind = ImageKind::kLinuxImage;
  uint64_t kernel_entry = 0;  // where the firmware hands over (fw_dynamic_info.next_addr)
  uint64_t kernel_addr = 0;   // lowest address the kernel occupies
  uint64_t kernel_end = 0;    // one past its highest (with bss / Image image_size)
  std::optional<std::pair<uint64_t, uint64_t>> initrd;  // [start, end)
  uint64_t fw_info_addr = 0;  // 0 without firmware (none is written)
  uint64_t dtb_addr = 0;
};

// What a Linux RISC-V Image header says (64 bytes at the start of the file).
struct ImageHeader {
  uint64_t text_offset = 0;
  uint64_t image_size = 0;
};
// Errors name the file: "kernel '/x/Image': not a RISC-V Linux Image (no "RSC\x05" magic)".
Result<ImageHeader> parse_image_header(std::span<const uint8_t> head, const std::string& path);

// Loads firmware (none if firmware_path is empty), kernel and (if initrd_path is not empty)
// the initrd into the one RAM region of `memory` starting at ram_base; returns where
// everything went. The DTB and the info struct are placed by place_boot_data().
Result<BootLayout> load_images(GuestMemory& memory, uint64_t ram_base,
                               const std::string& firmware_path, const std::string& kernel_path,
                               const std::string& initrd_path);

// Writes the DTB and, with firmware, fw_dynamic_info (next_addr = the kernel's entry)
// where `layout` says.
Result<void> place_boot_data(GuestMemory& memory, const BootLayout& layout,
                             std::span<const uint8_t> dtb);

}  // namespace doppel::rv64boot
