// RV64I base integer instructions (unprivileged spec chapters 2 and 5).
#include "engines/emu/riscv64/insn_common.h"

namespace doppel::rv64 {
namespace {

template <typename T, typename Insn>
[[gnu::always_inline]] inline bool do_load(Hart& h, const Insn& d) {
  T v;
  if (!h.load<T>(d, h.xr(d.rs1) + static_cast<uint64_t>(d.imm), v)) return false;
  if constexpr (std::is_signed_v<T>)
    h.xr(d.rd) = static_cast<uint64_t>(static_cast<int64_t>(v));
  else
    h.xr(d.rd) = static_cast<uint64_t>(v);
  return true;
}

template <typename T, typename Insn>
[[gnu::always_inline]] inline bool do_store(Hart& h, const Insn& d) {
  return h.store<T>(d, h.xr(d.rs1) + static_cast<uint64_t>(d.imm), static_cast<T>(h.xr(d.rs2)));
}

// Branches do not set pc on entry (decode.h needs_pc()): the target comes from the
// instruction's address in its block.
bool branch_to(Hart& h, const DecodedInsn& d) {
  h.set_pc(h.insn_pc(d) + static_cast<uint64_t>(d.imm));
  return false;
}

const InsnSpec kSpecs[] = {
    INSN("lui", kMaskOpcode, 0x37, kU, 0, false, RD = SIMM; return true;),
    INSN("auipc", kMaskOpcode, 0x17, kU, 0, false, RD = h.pc() + SIMM; return true;),
    INSN("jal", kMaskOpcode, 0x6f, kJ, 0, true, {
      const uint64_t link = h.pc() + d.len;
      h.set_pc(h.pc() + SIMM);
      RD = link;
      return false;
    }),
    INSN("jalr", kMaskF3, 0x67, kJalr, 0, true, {
      const uint64_t target = (RS1 + SIMM) & ~1ull;
      RD = h.pc() + d.len;
      h.set_pc(target);
      return false;
    }),
    INSN("beq", kMaskF3, 0x0063, kBranch, 0, false, return RS1 == RS2 ? branch_to(h, d) : true;),
    INSN("bne", kMaskF3, 0x1063, kBranch, 0, false, return RS1 != RS2 ? branch_to(h, d) : true;),
    INSN("blt", kMaskF3, 0x4063, kBranch, 0, false,
         return static_cast<int64_t>(RS1) < static_cast<int64_t>(RS2) ? branch_to(h, d) : true;),
    INSN("bge", kMaskF3, 0x5063, kBranch, 0, false,
         return static_cast<int64_t>(RS1) >= static_cast<int64_t>(RS2) ? branch_to(h, d) : true;),
    INSN("bltu", kMaskF3, 0x6063, kBranch, 0, false, return RS1 < RS2 ? branch_to(h, d) : true;),
    INSN("bgeu", kMaskF3, 0x7063, kBranch, 0, false, return RS1 >= RS2 ? branch_to(h, d) : true;),

    INSN("lb", kMaskF3, 0x0003, kLoad, 0, false, return do_load<int8_t>(h, d);),
    INSN("lh", kMaskF3, 0x1003, kLoad, 0, false, return do_load<int16_t>(h, d);),
    INSN("lw", kMaskF3, 0x2003, kLoad, 0, false, return do_load<int32_t>(h, d);),
    INSN("ld", kMaskF3, 0x3003, kLoad, 0, false, return do_load<uint64_t>(h, d);),
    INSN("lbu", kMaskF3, 0x4003, kLoad, 0, false, return do_load<uint8_t>(h, d);),
    INSN("lhu", kMaskF3, 0x5003, kLoad, 0, false, return do_load<uint16_t>(h, d);),
    INSN("lwu", kMaskF3, 0x6003, kLoad, 0, false, return do_load<uint32_t>(h, d);),
    INSN("sb", kMaskF3, 0x0023, kStore, 0, false, return do_store<uint8_t>(h, d);),
    INSN("sh", kMaskF3, 0x1023, kStore, 0, false, return do_store<uint16_t>(h, d);),
    INSN("sw", kMaskF3, 0x2023, kStore, 0, false, return do_store<uint32_t>(h, d);),
    INSN("sd", kMaskF3, 0x3023, kStore, 0, false, return do_store<uint64_t>(h, d);),

    INSN("addi", kMaskF3, 0x0013, kI, 0, false, RD = RS1 + SIMM; return true;),
    INSN("slti", kMaskF3, 0x2013, kI, 0, false,
         RD = static_cast<int64_t>(RS1) < IMM ? 1 : 0; return true;),
    INSN("sltiu", kMaskF3, 0x3013, kI, 0, false, RD = RS1 < SIMM ? 1 : 0; return true;),
    INSN("xori", kMaskF3, 0x4013, kI, 0, false, RD = RS1 ^ SIMM; return true;),
    INSN("ori", kMaskF3, 0x6013, kI, 0, false, RD = RS1 | SIMM; return true;),
    INSN("andi", kMaskF3, 0x7013, kI, 0, false, RD = RS1 & SIMM; return true;),
    INSN("slli", kMaskShift64, 0x00001013, kShift, 0, false, RD = RS1 << (IMM & 63); return true;),
    INSN("srli", kMaskShift64, 0x00005013, kShift, 0, false, RD = RS1 >> (IMM & 63); return true;),
    INSN("srai", kMaskShift64, 0x40005013, kShift, 0, false,
         RD = static_cast<uint64_t>(static_cast<int64_t>(RS1) >> (IMM & 63)); return true;),

    INSN("add", kMaskF7, 0x00000033, kR, 0, false, RD = RS1 + RS2; return true;),
    INSN("sub", kMaskF7, 0x40000033, kR, 0, false, RD = RS1 - RS2; return true;),
    INSN("sll", kMaskF7, 0x00001033, kR, 0, false, RD = RS1 << (RS2 & 63); return true;),
    INSN("slt", kMaskF7, 0x00002033, kR, 0, false,
         RD = static_cast<int64_t>(RS1) < static_cast<int64_t>(RS2) ? 1 : 0; return true;),
    INSN("sltu", kMaskF7, 0x00003033, kR, 0, false, RD = RS1 < RS2 ? 1 : 0; return true;),
    INSN("xor", kMaskF7, 0x00004033, kR, 0, false, RD = RS1 ^ RS2; return true;),
    INSN("srl", kMaskF7, 0x00005033, kR, 0, false, RD = RS1 >> (RS2 & 63); return true;),
    INSN("sra", kMaskF7, 0x40005033, kR, 0, false,
         RD = static_cast<uint64_t>(static_cast<int64_t>(RS1) >> (RS2 & 63)); return true;),
    INSN("or", kMaskF7, 0x00006033, kR, 0, false, RD = RS1 | RS2; return true;),
    INSN("and", kMaskF7, 0x00007033, kR, 0, false, RD = RS1 & RS2; return true;),

    INSN("addiw", kMaskF3, 0x001b, kI, 0, false, RD = ux32(RS1 + SIMM); return true;),
    INSN("slliw", kMaskF7, 0x0000101b, kShift, 0, false,
         RD = ux32(static_cast<uint32_t>(RS1) << (IMM & 31)); return true;),
    INSN("srliw", kMaskF7, 0x0000501b, kShift, 0, false,
         RD = ux32(static_cast<uint32_t>(RS1) >> (IMM & 31)); return true;),
    INSN("sraiw", kMaskF7, 0x4000501b, kShift, 0, false,
         RD = static_cast<uint64_t>(static_cast<int64_t>(static_cast<int32_t>(RS1) >> (IMM & 31)));
         return true;),
    INSN("addw", kMaskF7, 0x0000003b, kR, 0, false, RD = ux32(RS1 + RS2); return true;),
    INSN("subw", kMaskF7, 0x4000003b, kR, 0, false, RD = ux32(RS1 - RS2); return true;),
    INSN("sllw", kMaskF7, 0x0000103b, kR, 0, false,
         RD = ux32(static_cast<uint32_t>(RS1) << (RS2 & 31)); return true;),
    INSN("srlw", kMaskF7, 0x0000503b, kR, 0, false,
         RD = ux32(static_cast<uint32_t>(RS1) >> (RS2 & 31)); return true;),
    INSN("sraw", kMaskF7, 0x4000503b, kR, 0, false,
         RD = static_cast<uint64_t>(static_cast<int64_t>(static_cast<int32_t>(RS1) >> (RS2 & 31)));
         return true;),

    // FENCE orders memory; host accesses are already ordered enough for a TSO host, and a
    // full fence covers the rest. fence.tso and pause are encodings of fence.
    INSN("fence", kMaskF3, 0x000f, kFence, 0, false,
         std::atomic_thread_fence(std::memory_order_seq_cst); return true;),
};

}  // namespace

std::span<const InsnSpec> rv64i_specs() { return kSpecs; }

}  // namespace doppel::rv64
