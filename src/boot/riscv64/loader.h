// Loads OpenSBI fw_dynamic, a Linux RISC-V Image and an initrd into guest RAM, and places
// the device tree and the struct fw_dynamic_info OpenSBI reads (OpenSBI
// docs/firmware/fw_dynamic.md; Linux Documentation/riscv/boot-image-header.rst).
//
// Layout (RAM = [ram_base, ram_end)):
//   ram_base                      fw_dynamic.bin (must end below the kernel)
//   ram_base + text_offset        kernel Image (text_offset from its header, 2 MiB on rv64);
//                                 its header's image_size (text + bss) must fit
//   ...                           free
//   below the info page, 4 KiB    initrd
//   below the DTB, 4 KiB          fw_dynamic_info
//   ram_end - kDtbSlot            device tree (headroom for OpenSBI's fixups)
//
// Every hart starts at ram_base with a0 = hartid, a1 = DTB, a2 = &fw_dynamic_info.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
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

struct BootLayout {
  uint64_t entry = 0;  // firmware entry, where every hart starts
  uint64_t kernel_addr = 0;
  uint64_t kernel_end = 0;  // kernel_addr + image_size (text + bss)
  std::optional<std::pair<uint64_t, uint64_t>> initrd;  // [start, end)
  uint64_t fw_info_addr = 0;
  uint64_t dtb_addr = 0;
};

// What a Linux RISC-V Image header says (64 bytes at the start of the file).
struct ImageHeader {
  uint64_t text_offset = 0;
  uint64_t image_size = 0;
};
// Errors name the file: "kernel /x/Image: not a RISC-V Linux Image (no "RSC\x05" magic)".
Result<ImageHeader> parse_image_header(std::span<const uint8_t> head, const std::string& path);

// Loads firmware, kernel and (if initrd_path is not empty) the initrd into the one RAM
// region of `memory` starting at ram_base; returns where everything went. The DTB and the
// info struct are placed by place_boot_data().
Result<BootLayout> load_images(GuestMemory& memory, uint64_t ram_base,
                               const std::string& firmware_path, const std::string& kernel_path,
                               const std::string& initrd_path);

// Writes the DTB and fw_dynamic_info (next_addr = the kernel) where `layout` says.
Result<void> place_boot_data(GuestMemory& memory, const BootLayout& layout,
                             std::span<const uint8_t> dtb);

}  // namespace doppel::rv64boot
