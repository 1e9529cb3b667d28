// Model-specific registers a vCPU starts with.
#pragma once

#include <cstdint>
#include <vector>

namespace doppel::kvm {

enum class Msr : uint32_t {
  kIa32Tsc = 0x10,            // time-stamp counter
  kIa32SysenterCs = 0x174,    // SYSENTER target CS
  kIa32SysenterEsp = 0x175,   // SYSENTER target ESP
  kIa32SysenterEip = 0x176,   // SYSENTER target EIP
  kIa32MiscEnable = 0x1a0,    // bit 0: fast strings
  kIa32MtrrDefType = 0x2ff,   // bit 11: MTRRs enabled; [7:0] default memory type
  kStar = 0xc0000081,         // SYSCALL segments
  kLstar = 0xc0000082,        // SYSCALL 64-bit target
  kCstar = 0xc0000083,        // SYSCALL compat target
  kSyscallMask = 0xc0000084,  // SYSCALL RFLAGS mask
  kKernelGsBase = 0xc0000102, // SWAPGS value
};

struct MsrValue {
  Msr index;
  uint64_t value;
};

// The values at power-on that a Linux guest expects from its firmware: syscall MSRs
// cleared, fast strings on, MTRRs enabled with write-back as the default type (otherwise
// Linux treats all of RAM as uncached).
std::vector<MsrValue> boot_msrs();

}  // namespace doppel::kvm
