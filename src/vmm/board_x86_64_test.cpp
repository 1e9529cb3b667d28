// The x86-64 machine end to end on the host's /dev/kvm, with a tiny bzImage built here
// around tests/guests/long_mode.S: doppel's bzImage loader, boot_params, page tables and
// GDT put it in 64-bit mode at startup_64; it prints on the COM1 UART and powers off
// through the ACPI sleep register.
#include "vmm/board_x86_64.h"
#include "vmm/machine.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>

#include "../../tests/guests/test_guests.h"
#include "base/bits.h"
#include "boot/x86_64/acpi.h"
#include "boot/x86_64/layout.h"
#include "boot/x86_64/loader.h"
#include "boot/x86_64/mptable.h"
#include "vmm/exit_codes.h"

namespace doppel {
namespace {

// A bzImage: one setup sector after the boot sector, then the 64-bit code.
std::vector<uint8_t> tiny_bzimage(std::span<const uint8_t> payload) {
  std::vector<uint8_t> img(1024 + payload.size(), 0);
  std::copy(payload.begin(), payload.end(), img.begin() + 1024);
  img[0x1f1] = 1;                              // setup_sects
  store_le<uint16_t>(img.data() + 0x1fe, 0xaa55);
  img[0x200] = 0xeb;                           // jmp: the header ends at 0x202 + 0x66
  img[0x201] = 0x66;
  store_le<uint32_t>(img.data() + 0x202, 0x53726448);  // "HdrS"
  store_le<uint16_t>(img.data() + 0x206, 0x020f);      // protocol 2.15
  store_le<uint32_t>(img.data() + 0x22c, 0x7fffffff);  // initrd_addr_max
  store_le<uint16_t>(img.data() + 0x236, 0x1);         // XLF_KERNEL_64
  store_le<uint32_t>(img.data() + 0x238, 2048);        // cmdline_size
  store_le<uint32_t>(img.data() + 0x260, 0x100000);    // init_size
  return img;
}

std::string write_temp(const std::vector<uint8_t>& bytes) {
  char path[] = "/tmp/doppel-x86-test-XXXXXX";
  const int fd = mkstemp(path);
  EXPECT_GE(fd, 0);
  EXPECT_EQ(::write(fd, bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
  close(fd);
  return path;
}

TEST(BoardX86_64, TinyBzImageBootsIn64BitModePrintsAndPowersOff) {
  if (access("/dev/kvm", R_OK | W_OK) != 0)
    GTEST_SKIP() << "/dev/kvm is not available here: KVM machine test skipped";
  const auto image = tiny_bzimage(test_guests::kLongMode);
  const std::string kernel = write_temp(image);
  VmConfig config;
  config.arch = Arch::kX86_64;
  config.engine = EngineKind::kKvm;
  config.kernel = kernel;
  config.cmdline = "console=ttyS0";
  config.memory = 32 * MiB;
  char out_path[] = "/tmp/doppel-x86-out-XXXXXX";
  const int out_fd = mkstemp(out_path);
  ASSERT_GE(out_fd, 0);
  auto console = Console::create({-1, out_fd, false});
  ASSERT_TRUE(console.ok()) << console.error().message();
  auto machine = Machine::create(config, **console);
  ASSERT_TRUE(machine.ok()) << machine.error().message();
  EXPECT_NE(static_cast<BoardX86_64&>((*machine)->board()).cmdline().find("virtio_mmio.device=4K@0xd0000000:5"), std::string::npos)
      << static_cast<BoardX86_64&>((*machine)->board()).cmdline();
  auto code = (*machine)->run();
  ASSERT_TRUE(code.ok()) << code.error().message();
  const auto lines = (*console)->recent_lines();
  std::string all;
  for (const auto& l : lines) all += l + "\n";
  EXPECT_NE(all.find("long mode ok"), std::string::npos) << all;
  EXPECT_EQ(*code, kExitPowerOff) << "exit 3 means the guest found no \"HdrS\" at RSI, or was not "
                                     "in 64-bit mode, and reset through the i8042";
  close(out_fd);
  unlink(out_path);
  unlink(kernel.c_str());
}

TEST(BoardX86_64, NotABzImageIsAClearError) {
  if (access("/dev/kvm", R_OK | W_OK) != 0) GTEST_SKIP() << "/dev/kvm is not available here";
  const std::string kernel = write_temp(std::vector<uint8_t>(8192, 0x90));
  VmConfig config;
  config.arch = Arch::kX86_64;
  config.engine = EngineKind::kKvm;
  config.kernel = kernel;
  config.memory = 32 * MiB;
  auto console = Console::create({-1, STDERR_FILENO, false});
  ASSERT_TRUE(console.ok());
  auto machine = Machine::create(config, **console);
  ASSERT_FALSE(machine.ok());
  EXPECT_NE(machine.error().message().find(kernel), std::string::npos);
  EXPECT_NE(machine.error().message().find("not a bzImage"), std::string::npos)
      << machine.error().message();
  unlink(kernel.c_str());
}

TEST(X86Boot, E820ReservesEbdaAndBiosAreaAndSplitsAtTheHole) {
  auto mem = GuestMemory::create(x86boot::ram_regions(4 * GiB));
  ASSERT_TRUE(mem.ok());
  const auto map = x86boot::e820_map(**mem);
  ASSERT_EQ(map.size(), 5u);
  EXPECT_EQ(map[0].addr, 0u);
  EXPECT_EQ(map[0].size, x86boot::kEbdaStart);
  EXPECT_EQ(map[1].type, x86boot::E820Type::kReserved);
  EXPECT_EQ(map[2].addr, x86boot::kAcpiAddr);
  EXPECT_EQ(map[3].addr, x86boot::kKernelAddr);
  EXPECT_EQ(map[3].addr + map[3].size, x86boot::kHoleStart);
  EXPECT_EQ(map[4].addr, x86boot::kHighRamStart);
  EXPECT_EQ(map[4].size, 1 * GiB);
}

uint8_t sum(std::span<const uint8_t> b) {
  uint8_t s = 0;
  for (auto x : b) s = static_cast<uint8_t>(s + x);
  return s;
}

TEST(X86Boot, AcpiTablesChecksumAndDescribePcPowerManagement) {
  const unsigned level[] = {5, 6};
  const auto t = x86boot::build_acpi_tables(0xe0000, 4, level);
  ASSERT_GE(t.bytes.size(), 0x2c0u);
  auto at = [&](uint64_t gpa) { return gpa - 0xe0000; };
  auto sig = [&](uint64_t off) {
    return std::string(t.bytes.begin() + static_cast<long>(off),
                       t.bytes.begin() + static_cast<long>(off) + 4);
  };
  const auto rsdp = std::span(t.bytes).first(36);
  EXPECT_EQ(std::string(rsdp.begin(), rsdp.begin() + 8), "RSD PTR ");
  EXPECT_EQ(sum(rsdp.first(20)), 0);
  EXPECT_EQ(sum(rsdp), 0);
  const uint64_t xsdt = at(load_le<uint64_t>(t.bytes.data() + 24));
  const uint64_t fadt = at(load_le<uint64_t>(t.bytes.data() + xsdt + 36));
  const uint64_t madt = at(load_le<uint64_t>(t.bytes.data() + xsdt + 44));
  for (uint64_t off : {xsdt, fadt, madt}) {
    const uint32_t len = load_le<uint32_t>(t.bytes.data() + off + 4);
    EXPECT_EQ(sum(std::span(t.bytes).subspan(off, len)), 0) << "table at " << off;
  }
  EXPECT_EQ(sig(fadt), "FACP");
  EXPECT_EQ(sig(madt), "APIC");
  // A PC FADT: HW_REDUCED_ACPI would cost Linux its legacy PIC and the ISA IRQs of COM1
  // and the virtio devices.
  EXPECT_FALSE(load_le<uint32_t>(t.bytes.data() + fadt + 112) & (1u << 20)) << "HW_REDUCED_ACPI";
  EXPECT_EQ(load_le<uint16_t>(t.bytes.data() + fadt + 46), x86boot::kAcpiSciIrq);
  EXPECT_EQ(load_le<uint32_t>(t.bytes.data() + fadt + 64), x86boot::kAcpiPm1aCntPort);
  EXPECT_EQ(t.bytes[fadt + 89], 2u);  // PM1_CNT_LEN
  EXPECT_EQ(load_le<uint64_t>(t.bytes.data() + fadt + 172 + 4), x86boot::kAcpiPm1aCntPort);
  EXPECT_EQ(load_le<uint32_t>(t.bytes.data() + fadt + 56), x86boot::kAcpiPm1aEvtPort);
  EXPECT_EQ(load_le<uint32_t>(t.bytes.data() + fadt + 76), x86boot::kAcpiPmTimerPort);
  EXPECT_EQ(load_le<uint64_t>(t.bytes.data() + fadt + 116 + 4), x86boot::kAcpiResetPort);
  const uint64_t facs = at(load_le<uint32_t>(t.bytes.data() + fadt + 36));
  EXPECT_EQ(sig(facs), "FACS");
  EXPECT_EQ((facs + 0xe0000) % 64, 0u) << "the FACS must be 64-byte aligned";
  const uint64_t dsdt = at(load_le<uint64_t>(t.bytes.data() + fadt + 140));
  EXPECT_EQ(sig(dsdt), "DSDT");
  const std::string aml(t.bytes.begin() + static_cast<long>(dsdt) + 36,
                        t.bytes.begin() + static_cast<long>(dsdt) +
                            load_le<uint32_t>(t.bytes.data() + dsdt + 4));
  EXPECT_NE(aml.find("_S5_"), std::string::npos);
  // MADT: 4 local APICs with IDs 0..3; level-triggered overrides for the SCI and virtio.
  int lapics = 0;
  std::vector<unsigned> level_isos;
  const uint32_t madt_len = load_le<uint32_t>(t.bytes.data() + madt + 4);
  for (uint64_t off = madt + 44; off < madt + madt_len; off += t.bytes[off + 1]) {
    if (t.bytes[off] == 0) {
      EXPECT_EQ(t.bytes[off + 3], lapics++);
    }
    if (t.bytes[off] == 2 && (load_le<uint16_t>(t.bytes.data() + off + 8) >> 2) == 3) {
      level_isos.push_back(t.bytes[off + 3]);
    }
    ASSERT_GT(t.bytes[off + 1], 0);
  }
  EXPECT_EQ(lapics, 4);
  EXPECT_EQ(level_isos, (std::vector<unsigned>{9, 5, 6}));
}

TEST(X86Boot, VirtioIrqsAreFreeIsaLines) {
  for (unsigned slot = 0; slot < x86boot::kVirtioSlots; ++slot) {
    const unsigned irq = x86boot::virtio_irq(slot);
    EXPECT_LT(irq, 16u) << "Linux maps only ISA IRQs before a driver asks";
    for (unsigned taken : {0u, 1u, 2u, x86boot::kCom1Irq, 8u, x86boot::kAcpiSciIrq})
      EXPECT_NE(irq, taken) << "slot " << slot;
  }
}

TEST(X86Boot, MpTableChecksumsAndCountsProcessors) {
  const unsigned level[] = {5};
  const auto t = x86boot::build_mp_table(0x9fc00, 8, level);
  EXPECT_EQ(std::string(t.begin(), t.begin() + 4), "_MP_");
  EXPECT_EQ(sum(std::span(t).first(16)), 0);
  EXPECT_EQ(load_le<uint32_t>(t.data() + 4), 0x9fc10u);
  const auto table = std::span(t).subspan(16);
  EXPECT_EQ(std::string(table.begin(), table.begin() + 4), "PCMP");
  const uint16_t len = load_le<uint16_t>(table.data() + 4);
  EXPECT_EQ(len, table.size());
  EXPECT_EQ(sum(table), 0);
  int cpus = 0;
  for (size_t off = 44; off < len; off += table[off] == 0 ? 20 : 8) cpus += table[off] == 0;
  EXPECT_EQ(cpus, 8);
}

TEST(X86Boot, BzImageLoaderRejectsOldProtocolAndFillsBootParams) {
  auto mem = GuestMemory::create(x86boot::ram_regions(64 * MiB));
  ASSERT_TRUE(mem.ok());
  auto image = tiny_bzimage(test_guests::kLongMode);
  const std::vector<uint8_t> initrd(5000, 0xab);
  auto entry = x86boot::load_bzimage(**mem, {image, initrd, "console=ttyS0", 0xe0000});
  ASSERT_TRUE(entry.ok()) << entry.error().message();
  EXPECT_EQ(entry->rip, 0x100200u);
  EXPECT_EQ(entry->rsi, x86boot::kBootParamsAddr);
  const uint64_t bp = x86boot::kBootParamsAddr;
  EXPECT_EQ(*(*mem)->read_le<uint32_t>(bp + 0x202), 0x53726448u);
  EXPECT_EQ(*(*mem)->read_le<uint8_t>(bp + 0x210), 0xffu);
  EXPECT_EQ(*(*mem)->read_le<uint32_t>(bp + 0x218), entry->initrd_start);
  EXPECT_EQ(*(*mem)->read_le<uint32_t>(bp + 0x21c), 5000u);
  EXPECT_EQ(entry->initrd_start % 4096, 0u);
  EXPECT_LE(entry->initrd_start + 5000, 64 * MiB);
  EXPECT_EQ(*(*mem)->read_le<uint64_t>(bp + 0x070), 0xe0000u);
  EXPECT_EQ(*(*mem)->read_le<uint8_t>(bp + 0x1e8), 4u);  // e820 entries
  EXPECT_EQ(*(*mem)->read_le<uint8_t>(x86boot::kCmdlineAddr), 'c');

  store_le<uint16_t>(image.data() + 0x206, 0x0208);
  auto old = x86boot::load_bzimage(**mem, {image, {}, "", 0});
  ASSERT_FALSE(old.ok());
  EXPECT_NE(old.error().message().find("2.08"), std::string::npos) << old.error().message();
}

}  // namespace
}  // namespace doppel
