// RV64M multiply and divide (unprivileged spec chapter 7). Division by zero and overflow
// produce the results in table 7.1; they never trap.
#include <limits>

#include "engines/emu/riscv64/insn_common.h"

namespace doppel::rv64 {
namespace {

using i64 = int64_t;
using u64 = uint64_t;
using i128 = __int128;
using u128 = unsigned __int128;

u64 div64(u64 a, u64 b) {
  const i64 x = static_cast<i64>(a), y = static_cast<i64>(b);
  if (y == 0) return ~0ull;
  if (x == std::numeric_limits<i64>::min() && y == -1) return a;
  return static_cast<u64>(x / y);
}
u64 rem64(u64 a, u64 b) {
  const i64 x = static_cast<i64>(a), y = static_cast<i64>(b);
  if (y == 0) return a;
  if (x == std::numeric_limits<i64>::min() && y == -1) return 0;
  return static_cast<u64>(x % y);
}
u64 divw(u64 a, u64 b) {
  const int32_t x = static_cast<int32_t>(a), y = static_cast<int32_t>(b);
  if (y == 0) return ~0ull;
  if (x == std::numeric_limits<int32_t>::min() && y == -1) return ux32(static_cast<u64>(x));
  return ux32(static_cast<u64>(static_cast<uint32_t>(x / y)));
}
u64 remw(u64 a, u64 b) {
  const int32_t x = static_cast<int32_t>(a), y = static_cast<int32_t>(b);
  if (y == 0) return ux32(a);
  if (x == std::numeric_limits<int32_t>::min() && y == -1) return 0;
  return ux32(static_cast<u64>(static_cast<uint32_t>(x % y)));
}

const InsnSpec kSpecs[] = {
    INSN("mul", kMaskF7, 0x02000033, kR, 0, false, RD = RS1 * RS2; return true;),
    INSN("mulh", kMaskF7, 0x02001033, kR, 0, false,
         RD = static_cast<u64>((static_cast<i128>(static_cast<i64>(RS1)) *
                                static_cast<i128>(static_cast<i64>(RS2))) >> 64);
         return true;),
    INSN("mulhsu", kMaskF7, 0x02002033, kR, 0, false,
         RD = static_cast<u64>((static_cast<i128>(static_cast<i64>(RS1)) *
                                static_cast<i128>(static_cast<u128>(RS2))) >> 64);
         return true;),
    INSN("mulhu", kMaskF7, 0x02003033, kR, 0, false,
         RD = static_cast<u64>((static_cast<u128>(RS1) * static_cast<u128>(RS2)) >> 64);
         return true;),
    INSN("div", kMaskF7, 0x02004033, kR, 0, false, RD = div64(RS1, RS2); return true;),
    INSN("divu", kMaskF7, 0x02005033, kR, 0, false,
         RD = RS2 == 0 ? ~0ull : RS1 / RS2; return true;),
    INSN("rem", kMaskF7, 0x02006033, kR, 0, false, RD = rem64(RS1, RS2); return true;),
    INSN("remu", kMaskF7, 0x02007033, kR, 0, false,
         RD = RS2 == 0 ? RS1 : RS1 % RS2; return true;),
    INSN("mulw", kMaskF7, 0x0200003b, kR, 0, false, RD = ux32(RS1 * RS2); return true;),
    INSN("divw", kMaskF7, 0x0200403b, kR, 0, false, RD = divw(RS1, RS2); return true;),
    INSN("divuw", kMaskF7, 0x0200503b, kR, 0, false, {
      const uint32_t a = static_cast<uint32_t>(RS1), b = static_cast<uint32_t>(RS2);
      RD = b == 0 ? ~0ull : ux32(a / b);
      return true;
    }),
    INSN("remw", kMaskF7, 0x0200603b, kR, 0, false, RD = remw(RS1, RS2); return true;),
    INSN("remuw", kMaskF7, 0x0200703b, kR, 0, false, {
      const uint32_t a = static_cast<uint32_t>(RS1), b = static_cast<uint32_t>(RS2);
      RD = b == 0 ? ux32(a) : ux32(a % b);
      return true;
    }),
};

}  // namespace

std::span<const InsnSpec> rv64m_specs() { return kSpecs; }

}  // namespace doppel::rv64
