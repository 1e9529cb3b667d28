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

TEST(Loader, RejectsAFileThatIsNotAnImage) {
  auto mem = ram(64 * MiB);
  TempFile fw(std::vector<uint8_t>(1000, 0));
  std::vector<uint8_t> elf(4096, 0);
  std::memcpy(elf.data(), "\x7f" "ELF", 4);
  TempFile kernel(elf);
  auto r = load_images(*mem, kRam, fw.path(), kernel.path(), "");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("ELF"), std::string::npos) << r.error().message();
  EXPECT_NE(r.error().message().find(kernel.path()), std::string::npos);
  TempFile junk(std::vector<uint8_t>(4096, 7));
  r = load_images(*mem, kRam, fw.path(), junk.path(), "");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("not a RISC-V Linux Image"), std::string::npos);
}

TEST(Loader, MissingFilesAreNamed) {
  auto mem = ram(64 * MiB);
  TempFile kernel(image(0x200000, 1 * MiB, 1 * MiB));
  auto r = load_images(*mem, kRam, "/nonexistent/fw_dynamic.bin", kernel.path(), "");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message(), "firmware /nonexistent/fw_dynamic.bin: No such file or directory");
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
  EXPECT_NE(r.error().message().find("overlap the kernel"), std::string::npos);
}

TEST(Loader, HostileHeaderValuesAreRejectedNotTrusted) {
  auto mem = ram(64 * MiB);
  TempFile fw(std::vector<uint8_t>(1000, 0));
  TempFile huge_offset(image(~0ull & ~0xfffull, 1 * MiB, 1 * MiB));
  EXPECT_FALSE(load_images(*mem, kRam, fw.path(), huge_offset.path(), "").ok());
  TempFile huge_size(image(0x200000, ~0ull, 1 * MiB));
  EXPECT_FALSE(load_images(*mem, kRam, fw.path(), huge_size.path(), "").ok());
}

}  // namespace
}  // namespace doppel::rv64boot
