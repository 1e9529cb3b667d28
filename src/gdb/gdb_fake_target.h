// A GdbTarget for tests and the fuzzer: N vCPUs with a small register file (x0..x3 and
// pc, 64-bit), 64 KiB of "RAM" at 0x80000000, virtual addresses = physical + an offset
// above 0xffffffff00000000 (anything else unmapped), and a record of every resume.
#pragma once

#include <cstring>

#include "gdb/gdb_session.h"

namespace doppel::gdb {

class FakeTarget final : public GdbTarget {
 public:
  static constexpr uint64_t kRamBase = 0x80000000, kRamSize = 0x10000;
  static constexpr uint64_t kVirtOffset = 0xffffffff00000000ull;

  // sw_break: the arch plants software breakpoints (as x86's int3) instead of the engine
  // checking addresses.
  explicit FakeTarget(unsigned vcpus = 2, std::vector<uint8_t> sw_break = {})
      : regs(vcpus, std::vector<uint8_t>(40)), ram(kRamSize) {
    m_arch.gdb_arch = "riscv:rv64";
    m_arch.sw_break = std::move(sw_break);
    for (const char* name : {"x0", "x1", "x2", "x3"})
      m_arch.registers.push_back({name, 64, "int", "org.gnu.gdb.riscv.cpu", "general"});
    m_arch.registers.push_back({"pc", 64, "code_ptr", "org.gnu.gdb.riscv.cpu", "general"});
  }

  unsigned vcpu_count() override { return static_cast<unsigned>(regs.size()); }
  const DebugArch& arch() override { return m_arch; }
  Result<void> stop() override {
    if (exited) return Error("ended");
    running = false;
    ++stops;
    return ok();
  }
  Result<void> resume(const std::vector<DebugControl>& controls) override {
    if (exited) return Error("ended");
    if (running) return Error("not stopped");
    running = true;
    resumes.push_back(controls);
    event.reset();
    return ok();
  }
  std::optional<Stop> stop_event() override { return event; }
  std::optional<int> exit_code() override { return exited; }
  Result<std::vector<uint8_t>> read_registers(unsigned vcpu) override {
    if (running || vcpu >= regs.size()) return Error("no");
    return regs[vcpu];
  }
  Result<void> write_register(unsigned vcpu, unsigned index, std::span<const uint8_t> v) override {
    if (running || vcpu >= regs.size() || index >= 5 || v.size() != 8) return Error("no");
    std::memcpy(regs[vcpu].data() + index * 8, v.data(), 8);
    return ok();
  }
  Result<uint64_t> translate(unsigned, uint64_t va) override {
    if (va >= kVirtOffset) return va - kVirtOffset;
    return Error("unmapped");
  }
  Result<void> read_physical(uint64_t pa, std::span<uint8_t> out) override {
    if (running || pa < kRamBase || pa - kRamBase > kRamSize || out.size() > kRamSize - (pa - kRamBase))
      return Error("not RAM");
    std::memcpy(out.data(), ram.data() + (pa - kRamBase), out.size());
    return ok();
  }
  Result<void> write_physical(uint64_t pa, std::span<const uint8_t> data) override {
    if (running || pa < kRamBase || pa - kRamBase > kRamSize ||
        data.size() > kRamSize - (pa - kRamBase))
      return Error("not RAM");
    std::memcpy(ram.data() + (pa - kRamBase), data.data(), data.size());
    return ok();
  }
  std::string describe(unsigned vcpu) override { return "registers of " + std::to_string(vcpu) + "\n"; }
  std::string status() override { return running ? "running" : "paused"; }
  void kill() override { killed = true; }

  std::vector<std::vector<uint8_t>> regs;
  std::vector<uint8_t> ram;
  std::vector<std::vector<DebugControl>> resumes;
  std::optional<Stop> event;
  std::optional<int> exited;
  bool running = true;
  bool killed = false;
  unsigned stops = 0;

 private:
  DebugArch m_arch;
};

}  // namespace doppel::gdb
