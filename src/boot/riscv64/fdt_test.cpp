#include "boot/riscv64/fdt.h"

#include <gtest/gtest.h>
#include <libfdt.h>

#include <cstring>
#include <string>

namespace doppel::rv64boot {
namespace {

FdtDescription machine(unsigned harts) {
  FdtDescription d;
  d.harts = harts;
  d.timebase_hz = 10'000'000;
  d.ram_base = 0x80000000;
  d.ram_size = 256ull << 20;
  d.test = {0x100000, 0x1000, 0};
  d.clint = {0x2000000, 0x10000, 0};
  d.plic = {0xc000000, 0x4000000, 0};
  d.plic_ndev = 31;
  d.uart = {0x10000000, 0x100, 10};
  d.uart_clock_hz = 3686400;
  d.virtio = {{0x10001000, 0x1000, 1}, {0x10002000, 0x1000, 2}};
  d.bootargs = "console=ttyS0 panic=-1";
  d.initrd = std::make_pair(0x8f000000ull, 0x8f400000ull);
  return d;
}

struct Dtb {
  std::vector<uint8_t> blob;
  const void* fdt() const { return blob.data(); }
  int node(const char* path) const { return fdt_path_offset(fdt(), path); }
  std::string str(const char* path, const char* prop) const {
    int len = 0;
    const void* p = fdt_getprop(fdt(), node(path), prop, &len);
    if (!p || len <= 0) return "<missing>";
    return std::string(static_cast<const char*>(p), static_cast<size_t>(len - 1));
  }
  std::vector<uint32_t> cells(const char* path, const char* prop) const {
    int len = 0;
    const auto* p = static_cast<const fdt32_t*>(fdt_getprop(fdt(), node(path), prop, &len));
    std::vector<uint32_t> out;
    for (int i = 0; p && i < len / 4; ++i) out.push_back(fdt32_to_cpu(p[i]));
    return out;
  }
  uint64_t u64(const char* path, const char* prop) const {
    int len = 0;
    const void* p = fdt_getprop(fdt(), node(path), prop, &len);
    if (!p || len != 8) return 0;
    fdt64_t raw;  // properties are only 4-byte aligned
    std::memcpy(&raw, p, sizeof raw);
    return fdt64_to_cpu(raw);
  }
  uint32_t phandle(const char* path) const { return fdt_get_phandle(fdt(), node(path)); }
};

Dtb build(const FdtDescription& d) {
  auto r = build_fdt(d);
  EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message());
  Dtb dtb{r.ok() ? r.release_value() : std::vector<uint8_t>{}};
  EXPECT_EQ(fdt_check_header(dtb.fdt()), 0);
  return dtb;
}

TEST(Fdt, BlobIsValidAndHasRoomForFirmwareFixups) {
  const Dtb dtb = build(machine(1));
  EXPECT_EQ(fdt_totalsize(dtb.fdt()), dtb.blob.size());
  // OpenSBI adds a /reserved-memory node in place: that must succeed without reallocating.
  std::vector<uint8_t> copy = dtb.blob;
  const int off = fdt_add_subnode(copy.data(), 0, "reserved-memory");
  EXPECT_GE(off, 0) << fdt_strerror(off);
}

TEST(Fdt, ChosenCarriesBootargsConsoleAndInitrd) {
  const Dtb dtb = build(machine(1));
  EXPECT_EQ(dtb.str("/chosen", "bootargs"), "console=ttyS0 panic=-1");
  EXPECT_EQ(dtb.str("/chosen", "stdout-path"), "/soc/serial@10000000");
  EXPECT_GE(dtb.node(dtb.str("/chosen", "stdout-path").c_str()), 0);
  EXPECT_EQ(dtb.u64("/chosen", "linux,initrd-start"), 0x8f000000u);
  EXPECT_EQ(dtb.u64("/chosen", "linux,initrd-end"), 0x8f400000u);
}

TEST(Fdt, NoInitrdMeansNoInitrdProperties) {
  FdtDescription d = machine(1);
  d.initrd.reset();
  const Dtb dtb = build(d);
  EXPECT_EQ(fdt_getprop(dtb.fdt(), dtb.node("/chosen"), "linux,initrd-start", nullptr), nullptr);
}

TEST(Fdt, MemoryNodeCoversRam) {
  const Dtb dtb = build(machine(1));
  EXPECT_EQ(dtb.str("/memory@80000000", "device_type"), "memory");
  EXPECT_EQ(dtb.cells("/memory@80000000", "reg"),
            (std::vector<uint32_t>{0, 0x80000000, 0, 256u << 20}));
}

TEST(Fdt, EachHartHasACpuNodeWithItsInterruptController) {
  const Dtb dtb = build(machine(4));
  EXPECT_EQ(dtb.cells("/cpus", "timebase-frequency"), std::vector<uint32_t>{10'000'000});
  for (unsigned h = 0; h < 4; ++h) {
    const std::string cpu = "/cpus/cpu@" + std::to_string(h);
    EXPECT_EQ(dtb.cells(cpu.c_str(), "reg"), std::vector<uint32_t>{h});
    EXPECT_EQ(dtb.str(cpu.c_str(), "device_type"), "cpu");
    EXPECT_EQ(dtb.str(cpu.c_str(), "riscv,isa").substr(0, 10), "rv64imafdc");
    EXPECT_EQ(dtb.str(cpu.c_str(), "mmu-type"), "riscv,sv48");
    const std::string intc = cpu + "/interrupt-controller";
    EXPECT_EQ(dtb.str(intc.c_str(), "compatible"), "riscv,cpu-intc");
    EXPECT_NE(dtb.phandle(intc.c_str()), 0u);
  }
  EXPECT_LT(dtb.node("/cpus/cpu@4"), 0);
}

TEST(Fdt, ClintAndPlicRouteToEveryHartsContexts) {
  const Dtb dtb = build(machine(2));
  const uint32_t i0 = dtb.phandle("/cpus/cpu@0/interrupt-controller");
  const uint32_t i1 = dtb.phandle("/cpus/cpu@1/interrupt-controller");
  EXPECT_EQ(dtb.cells("/soc/clint@2000000", "interrupts-extended"),
            (std::vector<uint32_t>{i0, 3, i0, 7, i1, 3, i1, 7}));
  // PLIC contexts: 0 = hart 0 M (MEIP 11), 1 = hart 0 S (SEIP 9), 2/3 = hart 1.
  EXPECT_EQ(dtb.cells("/soc/plic@c000000", "interrupts-extended"),
            (std::vector<uint32_t>{i0, 11, i0, 9, i1, 11, i1, 9}));
  EXPECT_EQ(dtb.cells("/soc/plic@c000000", "riscv,ndev"), std::vector<uint32_t>{31});
  EXPECT_EQ(dtb.cells("/soc/plic@c000000", "reg"),
            (std::vector<uint32_t>{0, 0xc000000, 0, 0x4000000}));
}

TEST(Fdt, UartTestDeviceAndVirtioSlotsArePresent) {
  const Dtb dtb = build(machine(1));
  const uint32_t plic = dtb.phandle("/soc/plic@c000000");
  ASSERT_NE(plic, 0u);
  EXPECT_EQ(dtb.str("/soc/serial@10000000", "compatible"), "ns16550a");
  EXPECT_EQ(dtb.cells("/soc/serial@10000000", "interrupts"), std::vector<uint32_t>{10});
  EXPECT_EQ(dtb.cells("/soc/serial@10000000", "interrupt-parent"), std::vector<uint32_t>{plic});
  EXPECT_EQ(dtb.cells("/soc/serial@10000000", "clock-frequency"), std::vector<uint32_t>{3686400});
  EXPECT_EQ(fdt_node_check_compatible(dtb.fdt(), dtb.node("/soc/test@100000"), "sifive,test1"), 0);
  EXPECT_EQ(dtb.str("/soc/virtio_mmio@10002000", "compatible"), "virtio,mmio");
  EXPECT_EQ(dtb.cells("/soc/virtio_mmio@10002000", "interrupts"), std::vector<uint32_t>{2});
  EXPECT_EQ(dtb.cells("/soc/virtio_mmio@10001000", "reg"),
            (std::vector<uint32_t>{0, 0x10001000, 0, 0x1000}));
  EXPECT_LT(dtb.node("/soc/virtio_mmio@10003000"), 0);  // only the devices the machine has
}

// U-Boot and Linux power off and reset through the generic syscon drivers, as on QEMU virt.
TEST(Fdt, PoweroffAndRebootAreSysconWritesToTheFinisher) {
  const Dtb dtb = build(machine(1));
  const uint32_t test = dtb.phandle("/soc/test@100000");
  ASSERT_NE(test, 0u);
  EXPECT_EQ(fdt_node_check_compatible(dtb.fdt(), dtb.node("/soc/test@100000"), "syscon"), 0);
  EXPECT_EQ(dtb.str("/poweroff", "compatible"), "syscon-poweroff");
  EXPECT_EQ(dtb.cells("/poweroff", "regmap"), std::vector<uint32_t>{test});
  EXPECT_EQ(dtb.cells("/poweroff", "offset"), std::vector<uint32_t>{0});
  EXPECT_EQ(dtb.cells("/poweroff", "value"), std::vector<uint32_t>{0x5555});
  EXPECT_EQ(dtb.str("/reboot", "compatible"), "syscon-reboot");
  EXPECT_EQ(dtb.cells("/reboot", "regmap"), std::vector<uint32_t>{test});
  EXPECT_EQ(dtb.cells("/reboot", "value"), std::vector<uint32_t>{0x7777});
}

TEST(Fdt, NoHartsIsAnError) {
  FdtDescription d = machine(1);
  d.harts = 0;
  EXPECT_FALSE(build_fdt(d).ok());
}

}  // namespace
}  // namespace doppel::rv64boot
