// The stack a Linux process starts with (System V ABI, "Process Initialization"; as the
// kernel's create_elf_tables() lays it out for riscv64):
//
//   sp -> argc
//         argv[0..argc-1], NULL
//         envp[0..], NULL
//         auxv pairs (type, value) ..., AT_NULL
//         ... 16 random bytes (AT_RANDOM), the strings (argv, envp, AT_EXECFN, AT_PLATFORM)
//   stack top
//
// sp is 16-byte aligned (RISC-V psABI).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "base/result.h"
#include "core/guest_memory.h"
#include "engines/emu/riscv64/user/elf_loader.h"

namespace doppel::rv64::user {

// Auxiliary vector types (linux/auxvec.h).
enum AuxType : uint64_t {
  kAtNull = 0,
  kAtPhdr = 3,
  kAtPhent = 4,
  kAtPhnum = 5,
  kAtPagesz = 6,
  kAtBase = 7,
  kAtFlags = 8,
  kAtEntry = 9,
  kAtUid = 11,
  kAtEuid = 12,
  kAtGid = 13,
  kAtEgid = 14,
  kAtPlatform = 15,
  kAtHwcap = 16,
  kAtClktck = 17,
  kAtSecure = 23,
  kAtRandom = 25,
  kAtExecfn = 31,
};

// AT_HWCAP on riscv64: one bit per single-letter extension ('a' = bit 0): IMAFDC.
constexpr uint64_t kHwcapRv64imafdc = (1u << ('i' - 'a')) | (1u << ('m' - 'a')) |
                                      (1u << ('a' - 'a')) | (1u << ('f' - 'a')) |
                                      (1u << ('d' - 'a')) | (1u << ('c' - 'a'));

struct StackSpec {
  std::vector<std::string> argv;
  std::vector<std::string> envp;
  std::string execfn;              // AT_EXECFN: the path the program was started as
  std::array<uint8_t, 16> random{};  // AT_RANDOM bytes (the caller picks them)
};

// Writes the initial stack below `top` (exclusive), never below `bottom`, and returns sp.
// Fails if it does not fit.
Result<uint64_t> build_initial_stack(GuestMemory& memory, uint64_t bottom, uint64_t top,
                                     const ElfImage& image, const StackSpec& spec);

}  // namespace doppel::rv64::user
