// libFuzzer: the riscv64 interrupt controllers as a hostile guest drives them. Arbitrary
// register reads and writes to the PLIC (priorities, pending, enables, thresholds,
// claim/complete, for every context of 4 harts) and the CLINT (msip, mtimecmp, mtime),
// interleaved with device interrupt lines going up and down.
//
// Input: 11-byte operations: op (target and kind), region, offset (2 bytes), value
// (7 bytes, sign-extended so all-ones values are reachable).
// Invariant beyond "no crash, no UB": the pins a controller drives stay within its own
// mip bits (PLIC: MEIP/SEIP; CLINT: MSIP/MTIP).
#include <array>
#include <cstdlib>
#include <vector>

#include "engines/emu/riscv64/clint.h"
#include "engines/emu/riscv64/plic.h"

using namespace doppel::rv64;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  constexpr unsigned kHarts = 4, kSources = 40;
  std::array<InterruptPins, kHarts> plic_pins, clint_pins;
  std::vector<InterruptPins*> plic_harts, clint_harts;
  for (unsigned i = 0; i < kHarts; ++i) {
    plic_harts.push_back(&plic_pins[i]);
    clint_harts.push_back(&clint_pins[i]);
  }
  Plic plic(kSources, plic_harts);
  Timebase timebase;
  Clint clint(timebase, clint_harts);

  // PLIC regions (riscv-plic spec): priorities, pending, enables, per-context registers.
  constexpr std::array<uint64_t, 5> kPlicRegions{0x0, 0x1000, 0x2000, 0x200000, 0x3fff000};
  constexpr std::array<uint64_t, 4> kClintRegions{Clint::kMsipBase, Clint::kMtimecmpBase,
                                                  Clint::kMtime & ~0xfffull, 0x8000};
  constexpr size_t kOpSize = 11;
  for (size_t at = 0; at + kOpSize <= size; at += kOpSize) {
    const uint8_t* op = data + at;
    const unsigned kind = op[0] % 5;  // 0/1 PLIC read/write, 2/3 CLINT read/write, 4 line
    const unsigned access = 1u << ((op[0] >> 3) % 4);
    const uint64_t low = static_cast<uint64_t>(op[2]) | (static_cast<uint64_t>(op[3]) << 8);
    uint64_t value = 0;
    for (int i = 0; i < 7; ++i) value |= static_cast<uint64_t>(op[4 + i]) << (8 * i);
    if (value & (1ull << 55)) value |= 0xffull << 56;
    switch (kind) {
      case 0:
      case 1: {
        // Per-context registers are 0x1000 apart; region 3 spreads over all contexts.
        uint64_t offset = kPlicRegions[op[1] % kPlicRegions.size()];
        offset += (op[1] % kPlicRegions.size() == 3) ? (low & 0xffff) * 0x10 % 0x10000 : low;
        if (kind == 0) (void)plic.read(offset, access);
        else plic.write(offset, access, value);
        break;
      }
      case 2:
      case 3: {
        const uint64_t offset = kClintRegions[op[1] % kClintRegions.size()] + (low & 0xfff);
        if (kind == 2) (void)clint.read(offset, access);
        else clint.write(offset, access, value);
        break;
      }
      case 4:
        plic.line(1 + op[1] % (kSources - 1)).set_level(op[2] & 1);
        break;
    }
    for (unsigned i = 0; i < kHarts; ++i) {
      if (plic_pins[i].pending() & ~(kMipMEIP | kMipSEIP)) std::abort();
      if (clint_pins[i].pending() & ~(kMipMSIP | kMipMTIP)) std::abort();
    }
  }
  return 0;
}
