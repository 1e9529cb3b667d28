// The x86-64 vCPU as a debugger sees it, without KVM calls (so that it can be tested
// anywhere): gdb's amd64 register layout (org.gnu.gdb.i386.core, .segments and the
// control registers) from and to KVM's register structs, and the debug registers
// (DR0-DR3, DR7) for breakpoints and watchpoints (Intel SDM vol. 3, 18.2).
#pragma once

#include <linux/kvm.h>

#include <array>
#include <cstdint>
#include <span>
#include <vector>

#include "base/result.h"
#include "core/vcpu_debug.h"

namespace doppel::kvm {

// Register numbers (positions in x86_64_debug_arch().registers; gdb's remote numbers).
enum X86DebugReg : unsigned {
  kX86Rax = 0,   // rax rbx rcx rdx rsi rdi rbp rsp r8..r15: 0..15
  kX86Rip = 16,
  kX86Eflags = 17,
  kX86Cs = 18,   // cs ss ds es fs gs: 18..23 (selectors)
  kX86St0 = 24,  // st0..st7: 24..31 (80 bits each)
  kX86Fctrl = 32,  // fctrl fstat ftag fiseg fioff foseg fooff fop: 32..39
  kX86FsBase = 40,
  kX86GsBase = 41,
  kX86Cr0 = 42,  // cr0 cr2 cr3 cr4 cr8 efer: 42..47
  kX86Efer = 47,
  kX86RegCount = 48,
};

const DebugArch& x86_64_debug_arch();

// Every register, as gdb's 'g' packet wants them (each little-endian, bits/8 bytes).
std::vector<uint8_t> x86_64_encode_registers(const kvm_regs& regs, const kvm_sregs& sregs,
                                             const kvm_fpu& fpu);

// Register `index` set to `value` in regs/sregs. The general registers, rip and eflags
// are written; any other register only to its current value (gdb's 'G' sends them all);
// another value there is an error naming the register.
Result<void> x86_64_apply_register(unsigned index, std::span<const uint8_t> value,
                                   kvm_regs& regs, const kvm_sregs& sregs, const kvm_fpu& fpu);

// Breakpoints and watchpoints in the four debug registers. Each slot says what it holds,
// for telling a debug exception's DR6 bits apart.
struct X86DebugSlot {
  bool watch = false;
  WatchKind kind = WatchKind::kWrite;
  uint64_t addr = 0;
};
struct X86DebugRegs {
  std::array<uint64_t, 4> dr{};
  uint64_t dr7 = 0;
  std::vector<X86DebugSlot> slots;  // slot i is DRi
};
// Fails when more than four are asked, for a read-only watchpoint (x86 has none), or for
// a watchpoint that is not 1, 2, 4 or 8 bytes aligned to its size.
Result<X86DebugRegs> x86_plan_debug_registers(const std::vector<uint64_t>& breakpoints,
                                              const std::vector<Watchpoint>& watchpoints);

}  // namespace doppel::kvm
