// What a debugger (the gdb stub, gdb/) asks of a vCPU: its registers as a described list,
// breakpoints, watchpoints and single-step, and the guest's page tables for virtual
// addresses. The engine implements it (Vcpu's debug_* calls, core/engine.h); the Machine
// only carries it. Architecture-neutral: a register list says its names and sizes, which
// is all the stub needs to build gdb's target description.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

namespace doppel {

// One register as the debugger sees it (gdb's target description: name, size, type, the
// feature it belongs to). Registers are numbered by their position in the list.
struct DebugRegister {
  std::string_view name;
  unsigned bits = 64;
  std::string_view type = "int";  // gdb's types: int, code_ptr, data_ptr, ieee_double ...
  std::string_view feature;       // e.g. org.gnu.gdb.riscv.cpu
  std::string_view group;         // "" or general, float, system
};

// The register list and gdb's architecture name for a vCPU.
struct DebugArch {
  std::string_view gdb_arch;  // "riscv:rv64", "i386:x86-64"
  std::vector<DebugRegister> registers;
  // The breakpoint instruction a debugger writes into guest code for a software breakpoint
  // (x86: int3), for engines that stop on it (DebugControl::software_breakpoints); empty
  // where the engine checks breakpoint addresses itself (the emulator).
  std::vector<uint8_t> sw_break;
};

enum class WatchKind : uint8_t { kWrite = 2, kRead = 3, kAccess = 4 };  // gdb's Z2, Z3, Z4

struct Watchpoint {
  uint64_t addr = 0;  // guest virtual
  uint64_t len = 1;
  WatchKind kind = WatchKind::kWrite;
};

// What a vCPU does for the debugger while it runs. Set only while the vCPU is parked.
struct DebugControl {
  std::vector<uint64_t> breakpoints;  // guest virtual addresses of instructions
  std::vector<Watchpoint> watchpoints;
  bool single_step = false;  // stop after one instruction (interrupts held off meanwhile)
  bool hold = false;         // stay stopped while the others run (gdb's vCont with no action)
  // The debugger wrote DebugArch::sw_break at its software breakpoints: stop on it (and
  // not let the guest take it as its own exception).
  bool software_breakpoints = false;
  bool active() const {
    return single_step || hold || software_breakpoints || !breakpoints.empty() ||
           !watchpoints.empty();
  }
};

// Why a vCPU stopped for the debugger (VcpuExit::Reason::kDebug).
enum class DebugStopKind : uint8_t { kBreakpoint, kStep, kWatchWrite, kWatchRead, kWatchAccess };

}  // namespace doppel
