#include "engines/kvm/x86_debug_regs.h"

#include <algorithm>

#include <fmt/format.h>

namespace doppel::kvm {

namespace {

constexpr unsigned kGprCount = 16;

// The general registers in gdb's order (not KVM's struct order).
std::array<__u64*, kGprCount> gprs(kvm_regs& r) {
  return {&r.rax, &r.rbx, &r.rcx, &r.rdx, &r.rsi, &r.rdi, &r.rbp, &r.rsp,
          &r.r8,  &r.r9,  &r.r10, &r.r11, &r.r12, &r.r13, &r.r14, &r.r15};
}

}  // namespace

const DebugArch& x86_64_debug_arch() {
  // gdb's amd64 core feature (it refuses one without the x87 registers), the segment
  // bases as gdb's segments feature names them, and the control registers (gdb has no
  // feature of its own for them; QEMU's stub offers the same names).
  static const DebugArch arch = [] {
    static constexpr std::string_view kCore = "org.gnu.gdb.i386.core";
    static constexpr const char* kGpr[kGprCount] = {"rax", "rbx", "rcx", "rdx", "rsi", "rdi",
                                                    "rbp", "rsp", "r8",  "r9",  "r10", "r11",
                                                    "r12", "r13", "r14", "r15"};
    static constexpr const char* kSeg[6] = {"cs", "ss", "ds", "es", "fs", "gs"};
    static constexpr const char* kSt[8] = {"st0", "st1", "st2", "st3", "st4", "st5", "st6", "st7"};
    static constexpr const char* kFpCtl[8] = {"fctrl", "fstat", "ftag",  "fiseg",
                                              "fioff", "foseg", "fooff", "fop"};
    static constexpr const char* kCtl[6] = {"cr0", "cr2", "cr3", "cr4", "cr8", "efer"};
    DebugArch a;
    a.gdb_arch = "i386:x86-64";
    a.sw_break = {0xcc};  // int3
    for (unsigned i = 0; i < kGprCount; ++i)
      a.registers.push_back(
          {kGpr[i], 64, i == 6 || i == 7 ? "data_ptr" : "int64", kCore, "general"});
    a.registers.push_back({"rip", 64, "code_ptr", kCore, "general"});
    a.registers.push_back({"eflags", 32, "int32", kCore, "general"});
    for (const char* s : kSeg) a.registers.push_back({s, 32, "int32", kCore, "general"});
    for (const char* s : kSt) a.registers.push_back({s, 80, "i387_ext", kCore, "float"});
    for (const char* s : kFpCtl) a.registers.push_back({s, 32, "int", kCore, "float"});
    a.registers.push_back({"fs_base", 64, "int", "org.gnu.gdb.i386.segments", "system"});
    a.registers.push_back({"gs_base", 64, "int", "org.gnu.gdb.i386.segments", "system"});
    for (const char* s : kCtl)
      a.registers.push_back({s, 64, "int", "org.doppel.x86.control", "system"});
    return a;
  }();
  return arch;
}

std::vector<uint8_t> x86_64_encode_registers(const kvm_regs& regs, const kvm_sregs& s,
                                             const kvm_fpu& f) {
  std::vector<uint8_t> out;
  auto put = [&](uint64_t v, unsigned bytes) {
    for (unsigned i = 0; i < bytes; ++i) out.push_back(static_cast<uint8_t>(v >> (8 * i)));
  };
  kvm_regs r = regs;
  for (const __u64* v : gprs(r)) put(*v, 8);
  put(r.rip, 8);
  put(r.rflags, 4);
  for (const kvm_segment& seg : {s.cs, s.ss, s.ds, s.es, s.fs, s.gs}) put(seg.selector, 4);
  for (unsigned i = 0; i < 8; ++i) out.insert(out.end(), f.fpr[i], f.fpr[i] + 10);
  // The full tag word from FXSAVE's abridged one: 00 (valid) or 11 (empty) per register.
  uint32_t tag = 0;
  for (unsigned i = 0; i < 8; ++i)
    if (!(f.ftwx & (1u << i))) tag |= 3u << (2 * i);
  for (uint64_t v : {uint64_t{f.fcw}, uint64_t{f.fsw}, uint64_t{tag}, uint64_t{0},
                     uint64_t{f.last_ip & 0xffffffff}, uint64_t{0},
                     uint64_t{f.last_dp & 0xffffffff}, uint64_t{f.last_opcode}})
    put(v, 4);
  put(s.fs.base, 8);
  put(s.gs.base, 8);
  for (uint64_t v : {s.cr0, s.cr2, s.cr3, s.cr4, s.cr8, s.efer}) put(v, 8);
  return out;
}

Result<void> x86_64_apply_register(unsigned index, std::span<const uint8_t> value,
                                   kvm_regs& regs, const kvm_sregs& sregs, const kvm_fpu& fpu) {
  const DebugArch& arch = x86_64_debug_arch();
  if (index >= arch.registers.size())
    return Error::format("register {}: x86_64 has registers 0 to {}", index,
                         arch.registers.size() - 1);
  const DebugRegister& reg = arch.registers[index];
  const unsigned bytes = reg.bits / 8;
  if (value.size() != bytes)
    return Error::format("register {} ({}): {} bytes given, it has {}", index, reg.name,
                         value.size(), bytes);
  if (index <= kX86Eflags) {
    uint64_t v = 0;
    for (unsigned i = 0; i < bytes; ++i) v |= static_cast<uint64_t>(value[i]) << (8 * i);
    if (index < kGprCount) *gprs(regs)[index] = v;
    else if (index == kX86Rip) regs.rip = v;
    else regs.rflags = (regs.rflags & ~0xffffffffull) | v;
    return ok();
  }
  // Any other register: accepted only unchanged.
  const std::vector<uint8_t> now = x86_64_encode_registers(regs, sregs, fpu);
  size_t at = 0;
  for (unsigned i = 0; i < index; ++i) at += arch.registers[i].bits / 8;
  if (!std::equal(value.begin(), value.end(), now.begin() + static_cast<ptrdiff_t>(at)))
    return Error::format("register {} ({}): doppel writes only the general registers, rip "
                         "and eflags",
                         index, reg.name);
  return ok();
}

Result<X86DebugRegs> x86_plan_debug_registers(const std::vector<uint64_t>& breakpoints,
                                              const std::vector<Watchpoint>& watchpoints) {
  if (breakpoints.size() + watchpoints.size() > 4)
    return Error::format("x86 has 4 debug registers: {} hardware breakpoints and {} "
                         "watchpoints asked",
                         breakpoints.size(), watchpoints.size());
  X86DebugRegs out;
  // DR7 bit 10 reads as 1; GE (bit 9) asks for exact data breakpoints, as QEMU sets it.
  out.dr7 = 0x600;
  for (const uint64_t addr : breakpoints) {
    const unsigned i = static_cast<unsigned>(out.slots.size());
    out.dr[i] = addr;
    out.dr7 |= 2ull << (2 * i);  // Gi; R/Wi and LENi 00: an instruction fetch
    out.slots.push_back({false, WatchKind::kWrite, addr});
  }
  for (const Watchpoint& w : watchpoints) {
    if (w.kind == WatchKind::kRead)
      return Error("x86 debug registers cannot watch reads only (use an access watchpoint)");
    unsigned len_bits;
    switch (w.len) {
      case 1: len_bits = 0; break;
      case 2: len_bits = 1; break;
      case 4: len_bits = 3; break;
      case 8: len_bits = 2; break;
      default: return Error::format("x86 watchpoints are 1, 2, 4 or 8 bytes, not {}", w.len);
    }
    if (w.addr % w.len != 0)
      return Error::format("x86 watchpoint at {:#x}: not aligned to its {} bytes", w.addr, w.len);
    const unsigned i = static_cast<unsigned>(out.slots.size());
    out.dr[i] = w.addr;
    const uint64_t rw = w.kind == WatchKind::kWrite ? 1 : 3;  // 01 writes, 11 reads+writes
    out.dr7 |= (2ull << (2 * i)) | (rw << (16 + 4 * i)) | (uint64_t{len_bits} << (18 + 4 * i));
    out.slots.push_back({true, w.kind, w.addr});
  }
  return out;
}

}  // namespace doppel::kvm
