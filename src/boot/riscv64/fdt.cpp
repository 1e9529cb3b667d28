#include "boot/riscv64/fdt.h"

#include <libfdt.h>

#include <tuple>

#include <fmt/format.h>

namespace doppel::rv64boot {

namespace {

// Interrupt cause numbers used in interrupts-extended (mip bit numbers).
constexpr uint32_t kIrqMSoft = 3, kIrqMTimer = 7, kIrqSExt = 9, kIrqMExt = 11;
// sifive,test1 commands (devices/legacy/sifive_finisher.h).
constexpr uint32_t kFinisherPass = 0x5555, kFinisherReset = 0x7777;

// The sequential-write libfdt calls, with errors as values.
class Writer {
 public:
  explicit Writer(size_t size) : m_buf(size) {}

  Result<void> check(int rc, const char* what) {
    if (rc < 0) return Error::format("device tree: {}: {}", what, fdt_strerror(rc));
    return {};
  }
  void* fdt() { return m_buf.data(); }
  std::vector<uint8_t>& buffer() { return m_buf; }

  Result<void> begin(const std::string& name) {
    return check(fdt_begin_node(fdt(), name.c_str()), "begin_node");
  }
  Result<void> end() { return check(fdt_end_node(fdt()), "end_node"); }
  Result<void> prop(const char* name, const std::string& value) {
    return check(fdt_property(fdt(), name, value.c_str(), static_cast<int>(value.size() + 1)), name);
  }
  // A list of strings ("a\0b\0").
  Result<void> strings(const char* name, std::initializer_list<const char*> values) {
    std::string blob;
    for (const char* v : values) {
      blob += v;
      blob.push_back('\0');
    }
    return check(fdt_property(fdt(), name, blob.data(), static_cast<int>(blob.size())), name);
  }
  Result<void> u32(const char* name, uint32_t v) {
    return check(fdt_property_u32(fdt(), name, v), name);
  }
  Result<void> u64(const char* name, uint64_t v) {
    return check(fdt_property_u64(fdt(), name, v), name);
  }
  Result<void> cells(const char* name, const std::vector<uint32_t>& values) {
    std::vector<fdt32_t> be;
    for (uint32_t v : values) be.push_back(cpu_to_fdt32(v));
    return check(fdt_property(fdt(), name, be.data(), static_cast<int>(be.size() * 4)), name);
  }
  Result<void> empty(const char* name) { return check(fdt_property(fdt(), name, nullptr, 0), name); }
  // reg = <base size> with #address-cells = #size-cells = 2.
  Result<void> reg(uint64_t base, uint64_t size) {
    return cells("reg", {hi(base), lo(base), hi(size), lo(size)});
  }
  static uint32_t hi(uint64_t v) { return static_cast<uint32_t>(v >> 32); }
  static uint32_t lo(uint64_t v) { return static_cast<uint32_t>(v); }

 private:
  std::vector<uint8_t> m_buf;
};

std::string node(const char* name, uint64_t base) { return fmt::format("{}@{:x}", name, base); }

}  // namespace

std::string uart_node_path(uint64_t base) { return "/soc/" + node("serial", base); }

Result<std::vector<uint8_t>> build_fdt(const FdtDescription& d) {
  if (d.harts == 0) return Error("device tree: no harts");
  if (d.ram_size == 0) return Error("device tree: no RAM");
  // Phandles: 1..harts for the harts' interrupt controllers, then the PLIC.
  const auto intc_phandle = [](unsigned h) { return h + 1; };
  const uint32_t plic_phandle = d.harts + 1;
  const uint32_t test_phandle = d.harts + 2;

  Writer w(64 * 1024 + 4096 * d.virtio.size());
  TRY(w.check(fdt_create(w.fdt(), static_cast<int>(w.buffer().size())), "create"));
  TRY(w.check(fdt_finish_reservemap(w.fdt()), "finish_reservemap"));
  TRY(w.begin(""));
  TRY(w.u32("#address-cells", 2));
  TRY(w.u32("#size-cells", 2));
  TRY(w.prop("compatible", "riscv-virtio"));
  TRY(w.prop("model", "doppel riscv64 virt"));

  TRY(w.begin("chosen"));
  TRY(w.prop("bootargs", d.bootargs));
  TRY(w.prop("stdout-path", uart_node_path(d.uart.base)));
  if (d.initrd) {
    TRY(w.u64("linux,initrd-start", d.initrd->first));
    TRY(w.u64("linux,initrd-end", d.initrd->second));
  }
  TRY(w.end());

  TRY(w.begin("aliases"));
  TRY(w.prop("serial0", uart_node_path(d.uart.base)));
  TRY(w.end());

  TRY(w.begin(node("memory", d.ram_base)));
  TRY(w.prop("device_type", "memory"));
  TRY(w.reg(d.ram_base, d.ram_size));
  TRY(w.end());

  TRY(w.begin("cpus"));
  TRY(w.u32("#address-cells", 1));
  TRY(w.u32("#size-cells", 0));
  TRY(w.u32("timebase-frequency", static_cast<uint32_t>(d.timebase_hz)));
  for (unsigned h = 0; h < d.harts; ++h) {
    TRY(w.begin(node("cpu", h)));
    TRY(w.prop("device_type", "cpu"));
    TRY(w.u32("reg", h));
    TRY(w.prop("status", "okay"));
    TRY(w.prop("compatible", "riscv"));
    TRY(w.prop("riscv,isa", d.isa));
    TRY(w.prop("mmu-type", d.mmu_type));
    TRY(w.begin("interrupt-controller"));
    TRY(w.u32("#interrupt-cells", 1));
    TRY(w.empty("interrupt-controller"));
    TRY(w.prop("compatible", "riscv,cpu-intc"));
    TRY(w.u32("phandle", intc_phandle(h)));
    TRY(w.end());
    TRY(w.end());
  }
  TRY(w.end());  // cpus

  // Power off and reset by writing the finisher's commands, through the generic syscon
  // drivers Linux and U-Boot have (QEMU virt's nodes; devices/legacy/sifive_finisher.h).
  for (const auto& [name, compatible, value] :
       {std::tuple{"poweroff", "syscon-poweroff", kFinisherPass},
        std::tuple{"reboot", "syscon-reboot", kFinisherReset}}) {
    TRY(w.begin(name));
    TRY(w.prop("compatible", compatible));
    TRY(w.u32("regmap", test_phandle));
    TRY(w.u32("offset", 0));
    TRY(w.u32("value", value));
    TRY(w.end());
  }

  TRY(w.begin("soc"));
  TRY(w.u32("#address-cells", 2));
  TRY(w.u32("#size-cells", 2));
  TRY(w.prop("compatible", "simple-bus"));
  TRY(w.empty("ranges"));

  // OpenSBI 1.1's generic platform resets through "sifive,test1" (SBI SRST); Linux and
  // U-Boot write it directly through the /poweroff and /reboot syscon nodes.
  TRY(w.begin(node("test", d.test.base)));
  TRY(w.strings("compatible", {"sifive,test1", "sifive,test0", "syscon"}));
  TRY(w.reg(d.test.base, d.test.size));
  TRY(w.u32("phandle", test_phandle));
  TRY(w.end());

  TRY(w.begin(node("clint", d.clint.base)));
  TRY(w.strings("compatible", {"sifive,clint0", "riscv,clint0"}));
  TRY(w.reg(d.clint.base, d.clint.size));
  {
    std::vector<uint32_t> ie;
    for (unsigned h = 0; h < d.harts; ++h) {
      ie.insert(ie.end(), {intc_phandle(h), kIrqMSoft, intc_phandle(h), kIrqMTimer});
    }
    TRY(w.cells("interrupts-extended", ie));
  }
  TRY(w.end());

  TRY(w.begin(node("plic", d.plic.base)));
  TRY(w.strings("compatible", {"sifive,plic-1.0.0", "riscv,plic0"}));
  TRY(w.reg(d.plic.base, d.plic.size));
  TRY(w.u32("#address-cells", 0));
  TRY(w.u32("#interrupt-cells", 1));
  TRY(w.empty("interrupt-controller"));
  {
    // Context 2h: hart h M-mode external; context 2h+1: S-mode external.
    std::vector<uint32_t> ie;
    for (unsigned h = 0; h < d.harts; ++h) {
      ie.insert(ie.end(), {intc_phandle(h), kIrqMExt, intc_phandle(h), kIrqSExt});
    }
    TRY(w.cells("interrupts-extended", ie));
  }
  TRY(w.u32("riscv,ndev", d.plic_ndev));
  TRY(w.u32("phandle", plic_phandle));
  TRY(w.end());

  TRY(w.begin(node("serial", d.uart.base)));
  TRY(w.prop("compatible", "ns16550a"));
  TRY(w.reg(d.uart.base, d.uart.size));
  TRY(w.u32("clock-frequency", d.uart_clock_hz));
  TRY(w.u32("interrupt-parent", plic_phandle));
  TRY(w.u32("interrupts", d.uart.irq));
  TRY(w.end());

  for (const MmioNode& v : d.virtio) {
    TRY(w.begin(node("virtio_mmio", v.base)));
    TRY(w.prop("compatible", "virtio,mmio"));
    TRY(w.reg(v.base, v.size));
    TRY(w.u32("interrupt-parent", plic_phandle));
    TRY(w.u32("interrupts", v.irq));
    TRY(w.end());
  }

  TRY(w.end());  // soc
  TRY(w.end());  // root
  TRY(w.check(fdt_finish(w.fdt()), "finish"));

  // Give the blob headroom for the firmware's fixups.
  const uint32_t used = fdt_totalsize(w.fdt());
  std::vector<uint8_t> out(used + kFdtPadding);
  TRY(w.check(fdt_open_into(w.fdt(), out.data(), static_cast<int>(out.size())), "open_into"));
  TRY(w.check(fdt_pack(out.data()), "pack"));
  fdt_set_totalsize(out.data(), static_cast<uint32_t>(out.size()));
  return out;
}

}  // namespace doppel::rv64boot
