#include "boot/riscv64/loader.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <vector>

#include "base/bits.h"

namespace doppel::rv64boot {
namespace {

constexpr uint64_t kRam = 0x80000000;

class TempFile {
 public:
  explicit TempFile(const std::vector<uint8_t>& bytes) {
    char tmpl[] = "/tmp/doppel-loader-XXXXXX";
    const int fd = mkstemp(tmpl);
    EXPECT_GE(fd, 0);
    EXPECT_EQ(write(fd, bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
    close(fd);
    m_path = tmpl;
  }
  ~TempFile() { unlink(m_path.c_str()); }
  const std::string& path() const { return m_path; }

 private:
  std::string m_path;
};

std::vector<uint8_t> image(uint64_t text_offset, uint64_t image_size, size_t file_size) {
  std::vector<uint8_t> b(file_size, 0xab);
  store_le<uint64_t>(&b[8], text_offset);
  store_le<uint64_t>(&b[16], image_size);
  std::memcpy(&b[48], "RISCV\0\0\0", 8);
  std::memcpy(&b[56], "RSC\x05", 4);
  return b;
}

std::unique_ptr<GuestMemory> ram(uint64_t size) {
  return GuestMemory::create({{kRam, size}}).release_value();
}

TEST(Loader, PlacesFirmwareKernelInitrdAndBootData) {
  auto mem = ram(64 * MiB);
  TempFile fw(std::vector<uint8_t>(100'000, 0x13));
  TempFile kernel(image(0x200000, 8 * MiB, 3 * MiB));
  TempFile initrd(std::vector<uint8_t>(5 * MiB + 123, 0x42));
  auto layout = load_images(*mem, kRam, fw.path(), kernel.path(), initrd.path());
  ASSERT_TRUE(layout.ok()) << layout.error().message();
  EXPECT_EQ(layout->entry, kRam);
  EXPECT_EQ(layout->kernel_addr, kRam + 0x200000);
  EXPECT_EQ(layout->kernel_end, kRam + 0x200000 + 8 * MiB);  // bss counted
  ASSERT_TRUE(layout->initrd);
  EXPECT_EQ(layout->initrd->second - layout->initrd->first, 5 * MiB + 123);
  EXPECT_EQ(layout->initrd->first % 4096, 0u);
  EXPECT_GE(layout->initrd->first, layout->kernel_end);
  EXPECT_LE(layout->initrd->second, layout->fw_info_addr);
  EXPECT_LT(layout->fw_info_addr, layout->dtb_addr);
  EXPECT_LE(layout->dtb_addr + kDtbSlot, kRam + 64 * MiB);
  EXPECT_EQ(*mem->read_le<uint8_t>(kRam), 0x13);
  EXPECT_EQ(*mem->read_le<uint32_t>(kRam + 0x200000 + 56), load_le<uint32_t>("RSC\x05"));
  EXPECT_EQ(*mem->read_le<uint8_t>(layout->initrd->second - 1), 0x42);

  const std::vector<uint8_t> dtb = {0xd0, 0x0d, 0xfe, 0xed, 1, 2, 3};
  ASSERT_TRUE(place_boot_data(*mem, *layout, dtb).ok());
  EXPECT_EQ(*mem->read_le<uint32_t>(layout->dtb_addr), 0xedfe0dd0u);
  // struct fw_dynamic_info as OpenSBI reads it.
  EXPECT_EQ(*mem->read_le<uint64_t>(layout->fw_info_addr + 0), 0x4942534fu);
  EXPECT_EQ(*mem->read_le<uint64_t>(layout->fw_info_addr + 8), 2u);
  EXPECT_EQ(*mem->read_le<uint64_t>(layout->fw_info_addr + 16), kRam + 0x200000);
  EXPECT_EQ(*mem->read_le<uint64_t>(layout->fw_info_addr + 24), 1u);  // S-mode
  EXPECT_EQ(*mem->read_le<uint64_t>(layout->fw_info_addr + 40), ~0ull);
}

TEST(Loader, RejectsAnElfThatIsNotRiscv64) {
  auto mem = ram(64 * MiB);
  TempFile fw(std::vector<uint8_t>(1000, 0));
  std::vector<uint8_t> elf(4096, 0);
  std::memcpy(elf.data(), "\x7f" "ELF", 4);
  TempFile kernel(elf);
  auto r = load_images(*mem, kRam, fw.path(), kernel.path(), "");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("ELF"), std::string::npos) << r.error().message();
  EXPECT_NE(r.error().message().find(kernel.path()), std::string::npos);
  EXPECT_FALSE(parse_image_header(std::vector<uint8_t>(4096, 7), "junk").ok());
}

TEST(Loader, MissingFilesAreNamed) {
  auto mem = ram(64 * MiB);
  TempFile kernel(image(0x200000, 1 * MiB, 1 * MiB));
  auto r = load_images(*mem, kRam, "/nonexistent/fw_dynamic.bin", kernel.path(), "");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message(), "firmware '/nonexistent/fw_dynamic.bin': No such file or directory");
}

TEST(Loader, TooLittleRamIsAClearError) {
  auto mem = ram(16 * MiB);
  TempFile fw(std::vector<uint8_t>(1000, 0));
  TempFile kernel(image(0x200000, 20 * MiB, 1 * MiB));
  auto r = load_images(*mem, kRam, fw.path(), kernel.path(), "");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("more than the 16.0 MiB of guest RAM"), std::string::npos)
      << r.error().message();

  TempFile small(image(0x200000, 4 * MiB, 1 * MiB));
  TempFile initrd(std::vector<uint8_t>(12 * MiB, 1));
  r = load_images(*mem, kRam, fw.path(), small.path(), initrd.path());
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("--memory"), std::string::npos) << r.error().message();
}

TEST(Loader, FirmwareMustNotReachTheKernel) {
  auto mem = ram(64 * MiB);
  TempFile fw(std::vector<uint8_t>(3 * MiB, 0));
  TempFile kernel(image(0x200000, 1 * MiB, 1 * MiB));
  auto r = load_images(*mem, kRam, fw.path(), kernel.path(), "");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("overlaps the kernel"), std::string::npos) << r.error().message();
}

TEST(Loader, HostileHeaderValuesAreRejectedNotTrusted) {
  auto mem = ram(64 * MiB);
  TempFile fw(std::vector<uint8_t>(1000, 0));
  TempFile huge_offset(image(~0ull & ~0xfffull, 1 * MiB, 1 * MiB));
  EXPECT_FALSE(load_images(*mem, kRam, fw.path(), huge_offset.path(), "").ok());
  TempFile huge_size(image(0x200000, ~0ull, 1 * MiB));
  EXPECT_FALSE(load_images(*mem, kRam, fw.path(), huge_size.path(), "").ok());
}

// A 64-bit RISC-V ELF with one PT_LOAD segment: `data` at paddr, mem_size bytes in memory.
std::vector<uint8_t> elf(uint64_t entry, uint64_t paddr, const std::vector<uint8_t>& data,
                         uint64_t mem_size) {
  constexpr size_t kHeaders = 64 + 56;
  std::vector<uint8_t> b(kHeaders + data.size(), 0);
  std::memcpy(b.data(), "\x7f" "ELF", 4);
  b[4] = 2;                             // ELFCLASS64
  b[5] = 1;                             // little-endian
  b[6] = 1;                             // EV_CURRENT
  store_le<uint16_t>(&b[16], 2);        // ET_EXEC
  store_le<uint16_t>(&b[18], 243);      // EM_RISCV
  store_le<uint64_t>(&b[24], entry);
  store_le<uint64_t>(&b[32], 64);       // e_phoff
  store_le<uint16_t>(&b[54], 56);       // e_phentsize
  store_le<uint16_t>(&b[56], 1);        // e_phnum
  store_le<uint32_t>(&b[64], 1);        // PT_LOAD
  store_le<uint64_t>(&b[64 + 8], kHeaders);  // p_offset
  store_le<uint64_t>(&b[64 + 16], paddr);    // p_vaddr
  store_le<uint64_t>(&b[64 + 24], paddr);    // p_paddr
  store_le<uint64_t>(&b[64 + 32], data.size());
  store_le<uint64_t>(&b[64 + 40], mem_size);
  for (size_t i = 0; i < data.size(); ++i) b[kHeaders + i] = data[i];
  return b;
}

TEST(Loader, ElfKernelGoesToItsPhysicalAddressesWithBssZeroed) {
  auto mem = ram(64 * MiB);
  ASSERT_TRUE(mem->write_le<uint32_t>(kRam + 0x400000 + 8, 0xdeadbeef));  // bss: must be cleared
  TempFile fw(std::vector<uint8_t>(1000, 0x13));
  TempFile kernel(elf(kRam + 0x400004, kRam + 0x400000, {1, 2, 3, 4, 5, 6, 7, 8}, 0x1000));
  auto layout = load_images(*mem, kRam, fw.path(), kernel.path(), "");
  ASSERT_TRUE(layout.ok()) << layout.error().message();
  EXPECT_EQ(layout->kernel_kind, ImageKind::kElf);
  EXPECT_EQ(layout->entry, kRam);  // the firmware starts
  EXPECT_EQ(layout->kernel_entry, kRam + 0x400004);
  EXPECT_EQ(layout->kernel_addr, kRam + 0x400000);
  EXPECT_EQ(layout->kernel_end, kRam + 0x401000);
  EXPECT_EQ(*mem->read_le<uint64_t>(kRam + 0x400000), 0x0807060504030201u);
  EXPECT_EQ(*mem->read_le<uint32_t>(kRam + 0x400008), 0u);
  ASSERT_TRUE(place_boot_data(*mem, *layout, std::vector<uint8_t>(64, 0)).ok());
  EXPECT_EQ(*mem->read_le<uint64_t>(layout->fw_info_addr + 16), kRam + 0x400004);  // next_addr
}

TEST(Loader, ElfSegmentOutsideRamIsNamed) {
  auto mem = ram(64 * MiB);
  TempFile fw(std::vector<uint8_t>(1000, 0));
  TempFile low(elf(0x1000, 0x1000, {1, 2, 3, 4}, 4));
  auto r = load_images(*mem, kRam, fw.path(), low.path(), "");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message(),
            fmt::format("kernel '{}': ELF segment 0 at 0x1000 (0x4 bytes) lies outside guest RAM "
                        "[0x80000000, 0x84000000)",
                        low.path()));
  TempFile vmlinux(elf(0xffffffff80000000, 0xffffffff80000000, {1, 2, 3, 4}, 4));
  r = load_images(*mem, kRam, fw.path(), vmlinux.path(), "");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("give arch/riscv/boot/Image instead"), std::string::npos)
      << r.error().message();
  TempFile top(elf(kRam + 63 * MiB, kRam + 63 * MiB, {1, 2, 3, 4}, 4));  // the DTB's place
  r = load_images(*mem, kRam, fw.path(), top.path(), "");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("device tree area"), std::string::npos) << r.error().message();
}

TEST(Loader, RawKernelGoesTwoMibInWithFirmwareAndToTheStartWithout) {
  auto mem = ram(64 * MiB);
  TempFile fw(std::vector<uint8_t>(1000, 0x13));
  TempFile kernel(std::vector<uint8_t>(100, 0x6f));
  auto layout = load_images(*mem, kRam, fw.path(), kernel.path(), "");
  ASSERT_TRUE(layout.ok()) << layout.error().message();
  EXPECT_EQ(layout->kernel_kind, ImageKind::kRaw);
  EXPECT_EQ(layout->kernel_entry, kRam + 2 * MiB);
  EXPECT_EQ(*mem->read_le<uint8_t>(kRam + 2 * MiB + 99), 0x6f);

  // No firmware (--firmware none): the kernel starts where the harts do, with no info struct.
  auto bare = ram(64 * MiB);
  layout = load_images(*bare, kRam, "", kernel.path(), "");
  ASSERT_TRUE(layout.ok()) << layout.error().message();
  EXPECT_FALSE(layout->has_firmware);
  EXPECT_EQ(layout->entry, kRam);
  EXPECT_EQ(layout->kernel_entry, kRam);
  EXPECT_EQ(layout->fw_info_addr, 0u);
  EXPECT_EQ(*bare->read_le<uint8_t>(kRam), 0x6f);
  ASSERT_TRUE(place_boot_data(*bare, *layout, std::vector<uint8_t>(64, 0xd0)).ok());
}

TEST(Loader, ImageWithoutFirmwareGoesToItsTextOffsetOrTheStartOfRam) {
  auto mem = ram(64 * MiB);
  TempFile kernel(image(0x200000, 1 * MiB, 1 * MiB));
  auto layout = load_images(*mem, kRam, "", kernel.path(), "");
  ASSERT_TRUE(layout.ok()) << layout.error().message();
  EXPECT_EQ(layout->entry, kRam + 0x200000);
  TempFile nommu(image(0, 1 * MiB, 1 * MiB));  // text_offset 0: linked at the start of RAM
  layout = load_images(*mem, kRam, "", nommu.path(), "");
  ASSERT_TRUE(layout.ok()) << layout.error().message();
  EXPECT_EQ(layout->entry, kRam);
  TempFile fw(std::vector<uint8_t>(1000, 0));
  layout = load_images(*mem, kRam, fw.path(), nommu.path(), "");  // behind firmware: 2 MiB
  ASSERT_TRUE(layout.ok()) << layout.error().message();
  EXPECT_EQ(layout->kernel_entry, kRam + 0x200000);
}

TEST(Loader, ElfWithoutFirmwareStartsAtItsEntry) {
  auto mem = ram(64 * MiB);
  TempFile kernel(elf(kRam + 0x200010, kRam + 0x200000, std::vector<uint8_t>(32, 0x13), 32));
  auto layout = load_images(*mem, kRam, "", kernel.path(), "");
  ASSERT_TRUE(layout.ok()) << layout.error().message();
  EXPECT_EQ(layout->entry, kRam + 0x200010);
}

TEST(Loader, ElfFirmwareGoesWhereItIsLinked) {
  auto mem = ram(64 * MiB);
  TempFile fw(elf(kRam + 8, kRam, std::vector<uint8_t>(64, 0x13), 0x20000));
  TempFile kernel(image(0x200000, 1 * MiB, 1 * MiB));
  auto layout = load_images(*mem, kRam, fw.path(), kernel.path(), "");
  ASSERT_TRUE(layout.ok()) << layout.error().message();
  EXPECT_EQ(layout->entry, kRam + 8);
  EXPECT_EQ(layout->kernel_entry, kRam + 0x200000);

  TempFile big(elf(kRam, kRam, std::vector<uint8_t>(64, 0x13), 3 * MiB));  // bss into the kernel
  auto r = load_images(*mem, kRam, big.path(), kernel.path(), "");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("overlaps the kernel"), std::string::npos) << r.error().message();
}

}  // namespace
}  // namespace doppel::rv64boot
