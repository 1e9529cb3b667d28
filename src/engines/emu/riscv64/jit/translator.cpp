// Emission (see translator.h). Host register use inside a translation:
//   rbx  the Hart (guest x registers at m_x: x0 reads 0, [32] is a sink)
//   rbp  the data TLB's read table for the current context (hart.m_tlb_read; its write
//        table follows it): set by the prologue, since what changes the context (CSR and
//        system instructions, traps) ends the block and leaves the translations (their
//        handlers return false: an exit, never a chain)
//   r8-r15  guest x registers cached inside the translation (RegCache below)
//   xmm3-xmm15  guest f registers cached inside the translation (the same RegCache)
//   rax, rcx, rdx, rsi, rdi, xmm0-xmm2  scratch (caller-saved: dead across handler calls)
// The cache is write-back: a register written in the block stays in its host register
// (dirty) and is stored to hart.m_x (m_f) when its slot is reused, and before anything that
// reads or leaves memory as the state: a handler call (then the cache is forgotten: the
// handler may write any register, and calls clobber r8-r11 and every xmm register), a
// slow path (it stores what was dirty where the fast path left for it), every way out of
// the block, and every jump to an instruction another one of the block also branches to (a
// forward target starts with the cache empty; a loop head, see branch(), with its own
// cache).
#include "engines/emu/riscv64/jit/translator.h"

#if !defined(__x86_64__)
// Other hosts: no emitter (xbyak assembles x86-64 only); the interpreter runs everything.
namespace doppel::rv64::jit {
Result<std::unique_ptr<Translator>> Translator::create(Hart&, size_t) {
  return Error("the JIT emits x86-64 code; on this host only the interpreter runs (--jit off)");
}
Translator::Translator(Hart& hart, uint8_t* base, size_t size)
    : m_hart(hart), m_base(base), m_size(size) {}
Translator::~Translator() = default;
void Translator::remember(uint64_t, uint64_t, BlockFn) {}
void Translator::reset() { m_used = 0; }
BlockFn Translator::translate(const void*, const DecodedInsn*, uint32_t, uint32_t) {
  (void)m_hart;
  (void)m_base;
  return nullptr;
}
}  // namespace doppel::rv64::jit
#else
#define XBYAK_NO_EXCEPTION

#include <sys/mman.h>

#include <bit>
#include <cerrno>
#include <cstring>
#include <memory>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

#include <xbyak/xbyak.h>

#include "engines/emu/riscv64/decode.h"
#include "engines/emu/riscv64/fpu.h"
#include "engines/emu/riscv64/hart.h"

namespace doppel::rv64::jit {

namespace {

// The most code one block can need: 64 instructions of at most ~500 bytes in line (a
// branch's loop check, reconciliation of 21 cached registers and exit with their stores)
// and ~400 out of line (a slow path's stores, handler call, reloads and way out), plus the
// prologue. A block starts only where this much is free; if it still does not fit, the
// cache is dropped and it is emitted again (translate()).
constexpr size_t kMaxBlockCode = 64 * 1024 + 512;

bool illegal_handler(Hart& h, const DecodedInsn& d) { return h.illegal(d); }

// A displacement as xbyak takes it (size_t, wrapping for negative ones).
size_t disp(int64_t v) { return static_cast<size_t>(v); }
uint32_t imm32(int64_t v) { return static_cast<uint32_t>(static_cast<int32_t>(v)); }

enum class Op : uint8_t {
  kCall,  // the instruction table's handler
  kLui, kAuipc, kJal, kJalr,
  kBeq, kBne, kBlt, kBge, kBltu, kBgeu,
  kLb, kLh, kLw, kLd, kLbu, kLhu, kLwu, kSb, kSh, kSw, kSd, kFld, kFsd,
  kAddi, kSlti, kSltiu, kXori, kOri, kAndi, kSlli, kSrli, kSrai,
  kAdd, kSub, kSll, kSlt, kSltu, kXor, kSrl, kSra, kOr, kAnd,
  kAddiw, kSlliw, kSrliw, kSraiw, kAddw, kSubw, kSllw, kSrlw, kSraw,
  kMul, kMulh, kMulhu, kMulw, kDiv, kDivu, kRem, kRemu, kDivw, kDivuw, kRemw, kRemuw,
  kFaddD, kFsubD, kFmulD, kFdivD, kFmaddD, kFmsubD, kFnmsubD, kFnmaddD,
  kFsgnjD, kFsgnjnD, kFsgnjxD, kFmvXD, kFmvDX, kFcvtDW, kFcvtDWu,
};

// The native form of each entry of the instruction table, by spec index (built once).
Op op_of(const DecodedInsn& d) {
  static const std::vector<Op> kOps = [] {
    static constexpr struct {
      std::string_view name;
      Op op;
    } kNative[] = {
        {"lui", Op::kLui},       {"auipc", Op::kAuipc},     {"jal", Op::kJal},
        {"jalr", Op::kJalr},     {"beq", Op::kBeq},         {"bne", Op::kBne},
        {"blt", Op::kBlt},       {"bge", Op::kBge},         {"bltu", Op::kBltu},
        {"bgeu", Op::kBgeu},     {"lb", Op::kLb},           {"lh", Op::kLh},
        {"lw", Op::kLw},         {"ld", Op::kLd},           {"lbu", Op::kLbu},
        {"lhu", Op::kLhu},       {"lwu", Op::kLwu},         {"sb", Op::kSb},
        {"sh", Op::kSh},         {"sw", Op::kSw},           {"sd", Op::kSd},
        {"addi", Op::kAddi},     {"slti", Op::kSlti},       {"sltiu", Op::kSltiu},
        {"xori", Op::kXori},     {"ori", Op::kOri},         {"andi", Op::kAndi},
        {"slli", Op::kSlli},     {"srli", Op::kSrli},       {"srai", Op::kSrai},
        {"add", Op::kAdd},       {"sub", Op::kSub},         {"sll", Op::kSll},
        {"slt", Op::kSlt},       {"sltu", Op::kSltu},       {"xor", Op::kXor},
        {"srl", Op::kSrl},       {"sra", Op::kSra},         {"or", Op::kOr},
        {"and", Op::kAnd},       {"addiw", Op::kAddiw},     {"slliw", Op::kSlliw},
        {"srliw", Op::kSrliw},   {"sraiw", Op::kSraiw},     {"addw", Op::kAddw},
        {"subw", Op::kSubw},     {"sllw", Op::kSllw},       {"srlw", Op::kSrlw},
        {"sraw", Op::kSraw},     {"mul", Op::kMul},         {"mulh", Op::kMulh},
        {"mulhu", Op::kMulhu},   {"mulw", Op::kMulw},       {"div", Op::kDiv},
        {"divu", Op::kDivu},     {"rem", Op::kRem},         {"remu", Op::kRemu},
        {"divw", Op::kDivw},     {"divuw", Op::kDivuw},     {"remw", Op::kRemw},
        {"remuw", Op::kRemuw},   {"fld", Op::kFld},         {"fsd", Op::kFsd},
        {"fadd.d", Op::kFaddD},  {"fsub.d", Op::kFsubD},    {"fmul.d", Op::kFmulD},
        {"fdiv.d", Op::kFdivD},  {"fmadd.d", Op::kFmaddD},  {"fmsub.d", Op::kFmsubD},
        {"fnmsub.d", Op::kFnmsubD}, {"fnmadd.d", Op::kFnmaddD}, {"fsgnj.d", Op::kFsgnjD},
        {"fsgnjn.d", Op::kFsgnjnD}, {"fsgnjx.d", Op::kFsgnjxD}, {"fmv.x.d", Op::kFmvXD},
        {"fmv.d.x", Op::kFmvDX}, {"fcvt.d.w", Op::kFcvtDW}, {"fcvt.d.wu", Op::kFcvtDWu},
    };
    size_t count = 0;
    for (auto span : {rv64i_specs(), rv64m_specs(), rv64a_specs(), rv64fd_specs(), system_specs()})
      count += span.size();
    std::vector<Op> ops(count, Op::kCall);
    for (size_t i = 0; i < count; ++i) {
      const std::string_view name = spec_at(static_cast<uint16_t>(i)).name;
      for (const auto& n : kNative)
        if (n.name == name) ops[i] = n.op;
    }
    return ops;
  }();
  return d.spec < kOps.size() ? kOps[d.spec] : Op::kCall;
}

bool is_fma(Op op) {
  return op == Op::kFmaddD || op == Op::kFmsubD || op == Op::kFnmsubD || op == Op::kFnmaddD;
}

bool is_branch(Op op) {
  return op == Op::kBeq || op == Op::kBne || op == Op::kBlt || op == Op::kBge ||
         op == Op::kBltu || op == Op::kBgeu;
}

// A load or store's size in bytes and direction; size 0 for any other operation.
struct Access {
  unsigned size = 0;
  bool store = false;
};
Access access_of(Op op) {
  switch (op) {
    case Op::kLb: case Op::kLbu: return {1, false};
    case Op::kLh: case Op::kLhu: return {2, false};
    case Op::kLw: case Op::kLwu: return {4, false};
    case Op::kLd: case Op::kFld: return {8, false};
    case Op::kSb: return {1, true};
    case Op::kSh: return {2, true};
    case Op::kSw: return {4, true};
    case Op::kSd: case Op::kFsd: return {8, true};
    default: return {};
  }
}

// Whether d may write x register r (an over-estimate: any destination field equal to r but
// a store's or a branch's, which have none).
bool writes_x(const DecodedInsn& d, unsigned r) {
  const uint32_t opcode = d.raw & 0x7f;
  return d.rd == r && opcode != 0x23 && opcode != 0x27 && opcode != 0x63;
}

// The x registers an instruction's native form may read or write, a bit each (an
// over-estimate is harmless: see Emitter::loop_head_cache()); none for a handler call.
// Never x0: the common forms read none for it (a loop whose body does reconciles on its
// way back, branch()).
uint64_t x_regs(const DecodedInsn& d) {
  const Op op = op_of(d);
  if (op == Op::kCall) return 0;
  const uint32_t opcode = d.raw & 0x7f;
  uint64_t m = 0;
  const bool fp_op = opcode == 0x53 || opcode == 0x43 || opcode == 0x47 || opcode == 0x4b ||
                     opcode == 0x4f;
  if (!fp_op || op == Op::kFmvDX || op == Op::kFcvtDW || op == Op::kFcvtDWu) m |= 1ull << d.rs1;
  if (opcode == 0x33 || opcode == 0x3b || opcode == 0x63 || opcode == 0x23) m |= 1ull << d.rs2;
  if (d.rd < 32 && (opcode == 0x13 || opcode == 0x1b || opcode == 0x33 || opcode == 0x3b ||
                    opcode == 0x37 || opcode == 0x17 || opcode == 0x03 || op == Op::kFmvXD))
    m |= 1ull << d.rd;
  return m & ~1ull;
}

// The f registers instruction d names (as DecodedInsn::rd, rs1, rs2, rs3), a bit each.
uint32_t f_regs(const DecodedInsn& d) {
  if (d.spec == 0xffff) return 0;
  const uint8_t f = spec_at(d.spec).fregs;
  uint32_t m = 0;
  if ((f & kRdF) && d.rd < 32) m |= 1u << d.rd;
  if (f & kRs1F) m |= 1u << d.rs1;
  if (f & kRs2F) m |= 1u << d.rs2;
  if ((f & kRs3F) && d.rs3 < 32) m |= 1u << d.rs3;
  return m;
}

}  // namespace

// Offsets into Hart of what translations touch (Hart is not standard-layout, so they are
// measured on the live object rather than with offsetof).
struct HartLayout {
  int32_t x, f, mstatus, frm, fflags, pc, block_pc, tlb_read, instret,
      instret_limit, chain_key, block, scratch;
  uint32_t tlb_index_mask;  // (Hart::kTlbSize - 1) * sizeof(Hart::TlbEntry)
  uint32_t tlb_write_delta;  // m_tlb_write - m_tlb_read in bytes (the write table follows)
  uint32_t fs_mask;  // mstatus.FS: 0 (off) makes F/D instructions illegal; set to 3 (dirty)
  uint64_t jump;  // the address of the translator's jump cache
  // In the code cache (Emitter::stubs()).
  uint64_t chain_stub, link_stub, link_page_stub, fail_stub, epilogue_stub;
  bool fma;       // the host has FMA3 (fpu_host.h's fast path needs it too)
  bool bmi2;      // the host has BMI2 (shlx, shrx, sarx: shifts by a register, any operands)
  static int32_t off(const Hart& h, const void* member) {
    return static_cast<int32_t>(reinterpret_cast<const uint8_t*>(member) -
                                reinterpret_cast<const uint8_t*>(&h));
  }
};

// The register cache's name for Hart::m_instret (not a guest register: x0-x31, and 32 the
// x0 sink): a loop keeps it in a host register (loop_head_cache()), so that its count and
// limit test do not go through memory on every pass.
constexpr unsigned kInstret = 33;
// A hoisted loop's most loads and stores without page checks (Emitter::Hoist): their
// addends and the loop's limit are Hart::m_jit_scratch.
constexpr uint32_t kMaxHoistSites = 4;

// The register cache's name for guest f register f: kF + f.
constexpr unsigned kF = 64;

// A set of the register cache's names: x registers and kInstret in x, f registers in f.
struct RegSet {
  uint64_t x = 0;
  uint32_t f = 0;
  bool has(unsigned r) const { return r >= kF ? (f >> (r - kF) & 1) != 0 : (x >> r & 1) != 0; }
};

// Which guest register each cache slot holds, and whether it is dirty (see the top): x
// registers (and kInstret) in slots 0-7, r8-r15; f registers in slots 8-20, xmm3-xmm15.
// Allocation is least recently used within each kind; a register an instruction has just
// read is never the one evicted for its next operand, since each pool holds more than three.
class RegCache {
 public:
  static constexpr int kX = 8;       // slots [0, kX): r8-r15
  static constexpr int kPool = 21;   // slots [kX, kPool): xmm3-xmm15
  static Xbyak::Reg64 host(int slot) { return Xbyak::Reg64(8 + slot); }
  static Xbyak::Xmm xmm(int slot) { return Xbyak::Xmm(3 + slot - kX); }
  void forget() {
    for (int s = 0; s < kPool; ++s) {
      m_guest[s] = -1;
      m_dirty[s] = false;
    }
  }
  // The slot holding guest register r, or -1.
  int find(unsigned r) const {
    for (int s = 0; s < kPool; ++s)
      if (m_guest[s] == static_cast<int>(r)) return s;
    return -1;
  }
  void touch(int slot) { m_age[slot] = ++m_clock; }
  // The slot to give register r, which is not cached: a free one of its kind, else the
  // least recent (whose register the caller stores first if it is dirty: Emitter::claim()).
  int victim(unsigned r) const {
    const int from = r >= kF ? kX : 0, to = r >= kF ? kPool : kX;
    int best = from;
    for (int s = from; s < to; ++s) {
      if (m_guest[s] < 0) return s;
      if (m_age[s] < m_age[best]) best = s;
    }
    return best;
  }
  void assign(int slot, unsigned r) {
    m_guest[slot] = static_cast<int>(r);
    m_dirty[slot] = false;
    touch(slot);
  }
  int guest(int slot) const { return m_guest[slot]; }
  bool dirty(int slot) const { return m_dirty[slot]; }
  void set_dirty(int slot, bool d) { m_dirty[slot] = d; }
  void drop(int slot) {
    m_guest[slot] = -1;
    m_dirty[slot] = false;
  }
  // Every cached register but x0 (never written) taken as dirty: the state where control
  // arrives from more than one place, each of which may have it dirty.
  void all_dirty() {
    for (int s = 0; s < kPool; ++s) m_dirty[s] = m_guest[s] > 0;
  }

 private:
  int m_guest[kPool] = {-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
                       -1, -1, -1, -1, -1, -1, -1, -1, -1, -1};
  bool m_dirty[kPool] = {};
  uint32_t m_age[kPool] = {};
  uint32_t m_clock = 0;
};

class Emitter : public Xbyak::CodeGenerator {
 public:
  Emitter(size_t room, uint8_t* at, const HartLayout& layout)
      : Xbyak::CodeGenerator(room, at), m_l(layout) {}

  // page_offset: the block's first pc within its 4 KiB page.
  void block(const void* block, const DecodedInsn* first, uint32_t count, uint32_t page_offset);
  void stubs();
  size_t chained_offset() const { return m_chained_offset; }
  size_t link_offset() const { return m_link_offset; }
  size_t link_page_offset() const { return m_link_page_offset; }
  size_t fail_offset() const { return m_fail_offset; }
  size_t epilogue_offset() const { return m_epilogue_offset; }

 private:
  using Reg64 = Xbyak::Reg64;
  // Guest register r's home in the Hart; kInstret's is m_instret.
  Xbyak::Address xmem(unsigned r) {
    if (r == kInstret) return hart(m_l.instret);
    return qword[rbx + disp(m_l.x + 8 * static_cast<int32_t>(r))];
  }
  Xbyak::Address fmem(unsigned r) { return qword[rbx + disp(m_l.f + 8 * static_cast<int32_t>(r))]; }
  Xbyak::Address hart(int32_t off) { return qword[rbx + disp(off)]; }
  // Cache slot s from / to the home of guest register g (x, kInstret or kF + f).
  void load_slot(int s, int g) {
    const auto r = static_cast<unsigned>(g);
    if (s < RegCache::kX) mov(RegCache::host(s), xmem(r));
    else movsd(RegCache::xmm(s), fmem(r - kF));
  }
  void store_slot(int s, int g) {
    const auto r = static_cast<unsigned>(g);
    if (s < RegCache::kX) mov(xmem(r), RegCache::host(s));
    else movsd(fmem(r - kF), RegCache::xmm(s));
  }
  // A slot for guest register r, which is not cached (the victim's dirty value stored).
  int claim(unsigned r) {
    const int s = m_regs.victim(r);
    if (m_regs.guest(s) >= 0 && m_regs.dirty(s)) store_slot(s, m_regs.guest(s));
    m_regs.assign(s, r);
    return s;
  }
  // The xmm register holding guest f register f (loaded on a miss).
  Xbyak::Xmm frx(unsigned f) {
    int s = m_regs.find(kF + f);
    if (s < 0) {
      s = claim(kF + f);
      movsd(RegCache::xmm(s), fmem(f));
    } else {
      m_regs.touch(s);
    }
    return RegCache::xmm(s);
  }
  // f register f's xmm register, to be written (dirty from now on).
  Xbyak::Xmm fdest(unsigned f) {
    int s = m_regs.find(kF + f);
    if (s < 0) s = claim(kF + f);
    m_regs.touch(s);
    m_regs.set_dirty(s, true);
    return RegCache::xmm(s);
  }
  // The host register holding guest register r (loaded on a miss).
  Reg64 rx(unsigned r) {
    int s = m_regs.find(r);
    if (s < 0) {
      s = claim(r);
      mov(RegCache::host(s), xmem(r));
    } else {
      m_regs.touch(s);
    }
    return RegCache::host(s);
  }
  // rd's host register, to be written (dirty from now on); 32 (the x0 sink) never is.
  Reg64 dest(unsigned rd) {
    int s = m_regs.find(rd);
    if (s < 0) s = claim(rd);
    m_regs.touch(s);
    m_regs.set_dirty(s, true);
    return RegCache::host(s);
  }
  // Writes guest register rd (32: the x0 sink, no effect) from `v`.
  void wx(unsigned rd, const Reg64& v) {
    if (rd == 32) return;
    mov(dest(rd), v);
  }
  // Stores every dirty register of `regs` (memory is the state after).
  void store_dirty(const RegCache& regs) {
    for (int s = 0; s < RegCache::kPool; ++s)
      if (regs.guest(s) >= 0 && regs.dirty(s)) store_slot(s, regs.guest(s));
  }
  void spill() {
    store_dirty(m_regs);
    for (int s = 0; s < RegCache::kPool; ++s) m_regs.set_dirty(s, false);
  }
  // A handler call from the fast path: memory is the state before, nothing cached after.
  void call_out(const DecodedInsn& d, uint32_t index) {
    spill();
    call_handler(d, index);
    m_regs.forget();
    m_fp = {};
  }
  // rax = the pc of the instruction at pc_off in this block, plus `add`.
  void pc_to_rax(int64_t add) {
    mov(rax, hart(m_l.block_pc));
    if (add != 0) add_imm(rax, add);
  }
  void add_imm(const Reg64& r, int64_t v) {
    if (v >= INT32_MIN && v <= INT32_MAX) {
      add(r, imm32(v));
    } else {
      mov(rdx, static_cast<uint64_t>(v));
      add(r, rdx);
    }
  }
  Xbyak::Label& exit_label(uint32_t index) {
    m_exit_used[index] = true;
    return m_exit[index];
  }
  struct OutOfLine;
  OutOfLine& slow_path(const DecodedInsn& d, uint32_t index);
  void slow_resume(OutOfLine& o);
  void slow_from(OutOfLine& o);
  void call_handler(const DecodedInsn& d, uint32_t index);
  void chain(uint32_t index, int64_t retired_adjust);
  void chain_direct(uint32_t index, int64_t retired_adjust, int64_t offset);
  void chained_entry(uint32_t count, Xbyak::Label& fail);
  void insn(const DecodedInsn& d, uint32_t index);  // one instruction's code
  void tlb_lookup(const Reg64& base, int64_t offset, unsigned size, bool store,
                  Xbyak::Label& miss);
  void memory(Op op, const DecodedInsn& d, uint32_t index);
  void branch(Op op, const DecodedInsn& d, uint32_t index);
  // cmp of m_instret, where cache `c` holds it, with the Hart word at `limit`.
  void cmp_instret(const RegCache& c, int32_t limit);
  void alu(Op op, const DecodedInsn& d);
  bool alu_in_place(Op op, const DecodedInsn& d);
  void with_zero(Op op, const DecodedInsn& d, bool reg_reg);
  void loop_head_cache(const RegSet& regs);
  // m_instret += v: in its host register when a loop holds it there, else in memory.
  void add_instret(int32_t v);
  // Makes the cache `head` (stores what is dirty and not where head has it, then loads
  // what head holds and this does not); m_regs is left as it was.
  void reconcile(const RegCache& head);
  bool same_cache(const RegCache& head) const;  // reconcile(head) would emit nothing
  void divide(Op op, const DecodedInsn& d, uint32_t index);
  void fp(Op op, const DecodedInsn& d, uint32_t index);
  // The constants of fp()'s result check, emitted after the code once a block uses them.
  Xbyak::Label& fp_constants() {
    m_fp_constants_used = true;
    return m_fp_constants;
  }

  const HartLayout& m_l;
  uint32_t m_count = 0;
  uint32_t m_page_offset = 0;
  RegCache m_regs;
  std::unique_ptr<Xbyak::Label[]> m_insn;  // per instruction: its code (in-block targets)
  // Per instruction: kForward / kBackward if an in-block branch goes there (from before or
  // from after it), and the register cache there (m_head: a loop head's, see branch()).
  // (kAfterLoop: after a hoisted loop, where its copy goes on: see Hoist.)
  static constexpr uint8_t kForward = 1, kBackward = 2, kAfterLoop = 4;
  std::unique_ptr<uint8_t[]> m_target;
  std::unique_ptr<RegSet[]> m_loop_regs;  // a loop head's: the registers of its body
  std::unique_ptr<RegCache[]> m_head;
  std::unique_ptr<bool[]> m_head_set;
  std::unique_ptr<Xbyak::Label[]> m_exit;  // per instruction: leave with its index
  std::unique_ptr<bool[]> m_exit_used;
  size_t m_chained_offset = 0;
  size_t m_link_offset = 0;
  size_t m_link_page_offset = 0;
  size_t m_fail_offset = 0;
  // This block as a way out names it to the next one's chained entry (r8): its Block in
  // the low 48 bits, the exit's index above them (stubs(): fail).
  uint64_t m_block_ptr = 0;
  uint64_t from(uint32_t index) const { return m_block_ptr | uint64_t{index} << 48; }
  // A direct way out (chain_direct()): its LinkSlot, emitted after the code, and the path
  // that asks the link stub to patch it.
  struct Link {
    Xbyak::Label slot, relink;
    uint32_t index = 0;
    int64_t retired_adjust = 0, offset = 0;
    bool in_page = false;
  };
  std::unique_ptr<Link[]> m_links;
  uint32_t m_link_count = 0;
  size_t m_epilogue_offset = 0;
  // A fast path's way out: the instruction's handler (which may trap), then back with the
  // register cache as the fast path leaves it.
  struct OutOfLine {
    const DecodedInsn* d = nullptr;
    uint32_t index = 0;
    Xbyak::Label slow, resume;
    RegCache pre;   // the cache where the fast path jumps to `slow` (slow_from())
    RegCache regs;  // the cache at `resume`
    // fflags.NX and frm = RNE, which the fast path establishes and the handler may not:
    // after the handler, the slow path tests them, and where they do not hold it leaves
    // the block after this instruction instead of resuming (the code after it takes them
    // as known).
    bool check_nx = false, check_rne = false;
    bool used = false;  // the fast path jumps to `slow` (to_slow()): else it is not emitted
  };
  Xbyak::Label& to_slow(OutOfLine& o) {
    o.used = true;
    return o.slow;
  }
  std::unique_ptr<OutOfLine[]> m_slow;
  uint32_t m_slow_count = 0;
  // A loop whose page checks are hoisted: its body (instructions [head, end), `end` the
  // branch back to `head`) is straight-line native code, and its loads and stores at
  // `sites` have a base register the body moves by a constant `stride` per pass (one
  // addi; `pre`: before the access) or not at all. Its head looks each site's page up in
  // the TLB for the next pass (hoist_check()), keeps the addends in Hart::m_jit_scratch,
  // and counts the passes that stay in those pages; then a copy of the loop without TLB
  // checks (`fast`) runs them, back to the head when they are done (or to leave when
  // the instret limit says so). Where a check fails, the head goes on into the loop as
  // translated without hoisting, which takes its slow paths.
  struct Hoist {
    static constexpr uint32_t kMaxSites = kMaxHoistSites;
    struct Site {
      uint32_t index = 0;
      int64_t stride = 0;
      bool pre = false;
    };
    uint32_t head = 0, end = 0;
    Site sites[kMaxSites];
    uint32_t sites_count = 0;
    Xbyak::Label fast;
  };
  std::unique_ptr<Hoist[]> m_hoist;  // per instruction: the loop it heads, if hoisted
  const Hoist* m_fast = nullptr;     // the loop whose copy is being emitted
  const DecodedInsn* m_first = nullptr;
  void find_hoist(uint32_t head, uint32_t end);
  void hoist_check(const Hoist& h);
  // Which of m_jit_scratch's addends the access at `index` uses, or -1 (a TLB lookup).
  int hoisted_site(uint32_t index) const {
    if (m_fast != nullptr)
      for (uint32_t k = 0; k < m_fast->sites_count; ++k)
        if (m_fast->sites[k].index == index) return static_cast<int>(k);
    return -1;
  }
  Xbyak::Label m_fp_constants;
  bool m_fp_constants_used = false;
  // What the code emitted so far has established about the F/D state on every path to
  // here, so that later F/D instructions do not test it again (see fp()): mstatus.FS on
  // (not off), FS dirty, fflags.NX accrued, frm round-to-nearest-even. A handler that
  // returns true leaves each of them as it found it (it can only set FS dirty and accrue
  // flags); what can change them goes through call_out(), which forgets them, as does
  // every instruction more than one path reaches (a branch target).
  struct FpKnown {
    bool on = false, dirty = false, nx = false, rne = false;
  };
  FpKnown m_fp;
};

Emitter::OutOfLine& Emitter::slow_path(const DecodedInsn& d, uint32_t index) {
  OutOfLine& o = m_slow[m_slow_count++];
  o.d = &d;
  o.index = index;
  return o;
}

// Where the fast path rejoins: the slow one reloads what the cache holds here.
void Emitter::slow_resume(OutOfLine& o) {
  o.regs = m_regs;
  L(o.resume);
}

// The cache from which the fast path jumps to o.slow (no register may be loaded or written
// between this and its last such jump): the slow path stores what is dirty in it.
void Emitter::slow_from(OutOfLine& o) { o.pre = m_regs; }

void Emitter::call_handler(const DecodedInsn& d, uint32_t index) {
  const bool illegal = d.spec == 0xffff;
  if (illegal || needs_pc(d.raw)) {
    pc_to_rax(d.pc_off);
    mov(hart(m_l.pc), rax);
  }
  const Handler h = illegal ? &illegal_handler : spec_at(d.spec).handler;
  mov(rdi, rbx);
  mov(rsi, reinterpret_cast<uintptr_t>(&d));
  mov(rax, reinterpret_cast<uintptr_t>(h));
  call(rax);
  test(al, al);
  jz(exit_label(index), T_NEAR);
}

// Leaves for pc rcx from the instruction at `index` (see translator.h: Chaining), through
// the shared chain stub; m_instret + retired_adjust instructions retired before the next
// block.
void Emitter::chain(uint32_t index, int64_t retired_adjust) {
  mov(r8, from(index));
  mov(r9, static_cast<uint64_t>(retired_adjust));  // (a uint32_t would zero-extend)
  jmp(reinterpret_cast<const void*>(m_l.chain_stub), T_NEAR);
}

// chain() for a pc known here, m_block_pc + offset (a jump, a taken branch, the block's
// end), through a patched link (translator.h). The way out jumps straight to the
// translation its LinkSlot names while the chain key is the one the slot was patched
// under, and, for a pc in another page than the block's, the pc is the one it was patched
// for; otherwise it asks the link stub, which looks the pc up and patches the slot (see
// stubs()). Into the block's own page the pc is not needed in rcx: the way out moves
// m_block_pc itself and enters past the chained entry's store of it.
void Emitter::chain_direct(uint32_t index, int64_t retired_adjust, int64_t offset) {
  const int64_t in_page = static_cast<int64_t>(m_page_offset) + offset;
  Link& link = m_links[m_link_count++];
  link.index = index;
  link.retired_adjust = retired_adjust;
  link.offset = offset;
  link.in_page = in_page >= 0 && in_page < 4096;
  if (!link.in_page) {
    mov(rcx, hart(m_l.block_pc));
    add_imm(rcx, offset);
    cmp(rcx, qword[rip + link.slot + static_cast<int>(offsetof(LinkSlot, va))]);
    jne(link.relink, T_NEAR);
  }
  mov(rax, hart(m_l.chain_key));
  cmp(rax, qword[rip + link.slot + static_cast<int>(offsetof(LinkSlot, key))]);
  jne(link.relink, T_NEAR);
  if (link.in_page && offset != 0) add(hart(m_l.block_pc), imm32(offset));
  mov(r8, from(index));
  mov(r9, static_cast<uint64_t>(retired_adjust));
  jmp(qword[rip + link.slot + static_cast<int>(offsetof(LinkSlot, to))]);
}

// What every translation of this cache shares, emitted first into it:
//   the chain stub: in: rcx the next pc, r8 the way out (Emitter::from(): the jumping
//     block and the index to leave with), r9 the instructions retired before the next block
//     less m_instret (r8-r15 are free here: a block stores its dirty registers before it
//     leaves). Jumps into the next translation's chained entry when the jump cache has it
//     (translator.h), else leaves through `fail`;
//   the link stubs (r10 the LinkSlot to patch), one for links into another page and one for
//     links into the block's own page (whose way out has not moved m_block_pc yet);
//   fail: leaves for pc rcx as the way out r8 names: m_block its block, eax its index;
//   the epilogue: in: eax the index; pops what every translation's prologue pushed.
void Emitter::stubs() {
  Xbyak::Label fail, epilogue;
  // rdx = the jump cache entry for pc rcx, if it holds rcx under the current chain key
  // (rax = that key); else out through `fail`.
  auto lookup = [&] {
    mov(edx, ecx);
    shr(edx, 1);
    and_(edx, static_cast<uint32_t>(Translator::kJumpEntries - 1));
    static_assert(sizeof(JumpEntry) == 32);
    shl(edx, 5);
    mov(rax, m_l.jump);
    add(rdx, rax);
    cmp(rcx, qword[rdx + offsetof(JumpEntry, va)]);
    jne(fail, T_NEAR);
    mov(rax, hart(m_l.chain_key));
    cmp(rax, qword[rdx + offsetof(JumpEntry, key)]);
    jne(fail, T_NEAR);
  };
  lookup();
  jmp(qword[rdx + offsetof(JumpEntry, chained)]);
  // The link stub: as the chain stub, and when the entry is there, the direct way out that
  // asked (its link at r10: LinkSlot) is patched to go to the same place itself from now on,
  // under the same chain key.
  m_link_offset = getSize();
  lookup();
  mov(qword[r10 + offsetof(LinkSlot, key)], rax);
  mov(rax, qword[rdx + offsetof(JumpEntry, chained)]);
  mov(qword[r10 + offsetof(LinkSlot, to)], rax);
  mov(qword[r10 + offsetof(LinkSlot, va)], rcx);
  jmp(rax);
  // Into the block's own page: the slot names the entry past the chained entry's first
  // instruction, the store of m_block_pc from rcx (block()), which that way out does itself.
  Xbyak::Label measured;
  jmp(measured, T_NEAR);
  const size_t store_at = getSize();
  mov(hart(m_l.block_pc), rcx);
  const auto store_bytes = static_cast<uint32_t>(getSize() - store_at);
  L(measured);
  m_link_page_offset = getSize();
  lookup();
  mov(qword[r10 + offsetof(LinkSlot, key)], rax);
  mov(rax, qword[rdx + offsetof(JumpEntry, chained)]);
  lea(rsi, ptr[rax + store_bytes]);
  mov(qword[r10 + offsetof(LinkSlot, to)], rsi);
  mov(qword[r10 + offsetof(LinkSlot, va)], rcx);
  jmp(rax);
  L(fail);
  m_fail_offset = getSize();
  mov(hart(m_l.pc), rcx);
  mov(rax, r8);
  shr(rax, 48);  // eax = the index
  shl(r8, 16);
  shr(r8, 16);
  mov(hart(m_l.block), r8);
  L(epilogue);
  m_epilogue_offset = getSize();
  add(rsp, 8);
  pop(r15);
  pop(r14);
  pop(r13);
  pop(r12);
  pop(rbp);
  pop(rbx);
  ret();
}

// Hart::load_fast()/store_fast(): the tag of the access's last byte (tlb_tag_last()) at
// the index of its first, so a page-crossing access misses (to `miss`). The address is
// `base` itself when the offset is 0, else rsi; after a hit, rax is the entry's offset
// from rbp within the read table.
void Emitter::tlb_lookup(const Reg64& base, int64_t offset, unsigned size, bool store,
                         Xbyak::Label& miss) {
  const Reg64 va = offset == 0 ? base : rsi;
  if (offset != 0) lea(rsi, ptr[base + disp(offset)]);
  // The entry: ((address >> 12) & (kTlbSize - 1)) * 16 bytes.
  if (m_l.bmi2) {
    rorx(eax, va.cvt32(), 12 - 4);  // (the bits rotated in at the top are masked off)
  } else {
    mov(eax, va.cvt32());
    shr(eax, 12 - 4);
  }
  and_(eax, m_l.tlb_index_mask);
  const size_t table = store ? m_l.tlb_write_delta : 0;
  lea(rdx, ptr[va + disp(size - 1)]);
  or_(rdx, 0xfff);
  cmp(rdx, qword[rbp + rax + table]);
  jne(miss, T_NEAR);
}

void Emitter::memory(Op op, const DecodedInsn& d, uint32_t index) {
  const Access access = access_of(op);
  const unsigned size = access.size;
  const bool is_store = access.store;
  const bool fp = op == Op::kFld || op == Op::kFsd;
  OutOfLine& o = slow_path(d, index);
  // The operands first: the slow path starts from the cache as it is after them.
  const Reg64 base = rx(d.rs1);
  const bool store_zero = is_store && !fp && d.rs2 == 0;  // x0 takes no cache slot
  const Reg64 value = is_store && !fp && !store_zero ? rx(d.rs2) : rax;
  const Xbyak::Xmm fvalue = is_store && fp ? frx(d.rs2) : xmm0;
  slow_from(o);
  if (fp && !m_fp.on) {
    // FS off: the handler raises the illegal-instruction exception.
    test(dword[rbx + disp(m_l.mstatus)], m_l.fs_mask);
    jz(to_slow(o), T_NEAR);
  }
  Xbyak::RegExp at = rsi;
  if (const int site = hoisted_site(index); site >= 0) {
    // In a loop's copy whose page checks its head made (hoist_check()): the entry's addend.
    mov(rsi, qword[rbx + disp(m_l.scratch + 8 * site)]);
    at = rsi + base + disp(d.imm);
  } else {
    tlb_lookup(base, d.imm, size, is_store, to_slow(o));
    // The host address: va + the entry's addend.
    const size_t table = is_store ? m_l.tlb_write_delta : 0;
    if (d.imm != 0) {
      add(rsi, qword[rbp + rax + table + 8]);
    } else {
      mov(rsi, qword[rbp + rax + table + 8]);
      at = rsi + base;
    }
  }
  if (store_zero) {
    switch (size) {
      case 1: mov(byte[at], 0); break;
      case 2: mov(word[at], 0); break;
      case 4: mov(dword[at], 0); break;
      default: mov(qword[at], 0); break;
    }
  } else if (is_store) {
    const Reg64 v = value;
    switch (size) {
      case 1: mov(byte[at], v.cvt8()); break;
      case 2: mov(word[at], v.cvt16()); break;
      case 4: mov(dword[at], v.cvt32()); break;
      default:
        if (fp) movsd(qword[at], fvalue);
        else mov(qword[at], v);
        break;
    }
  } else if (fp) {  // put_d(): raw bits, FS dirty
    movsd(fdest(d.rd), qword[at]);
    if (!m_fp.dirty) or_(dword[rbx + disp(m_l.mstatus)], m_l.fs_mask);
    m_fp.dirty = true;
  } else {
    // Straight into rd's cache register (a victim it evicts is stored here, after the
    // last jump to the slow path, which stores it from o.pre).
    const Reg64 to = d.rd == 32 ? rax : dest(d.rd);
    switch (op) {
      case Op::kLb: movsx(to, byte[at]); break;
      case Op::kLh: movsx(to, word[at]); break;
      case Op::kLw: movsxd(to, dword[at]); break;
      case Op::kLbu: movzx(to.cvt32(), byte[at]); break;
      case Op::kLhu: movzx(to.cvt32(), word[at]); break;
      case Op::kLwu: mov(to.cvt32(), dword[at]); break;
      default: mov(to, qword[at]); break;
    }
  }
  m_fp.on = m_fp.on || fp;  // (the handler's success says the same)
  slow_resume(o);
}

void Emitter::branch(Op op, const DecodedInsn& d, uint32_t index) {
  Xbyak::Label not_taken;
  // x0 takes no cache slot: test for rs2 = x0 (beqz, bltz...), rax = 0 for rs1 = x0.
  if (d.rs2 == 0) {
    const Reg64 a = rx(d.rs1);
    test(a, a);
  } else if (d.rs1 == 0) {
    const Reg64 b = rx(d.rs2);
    xor_(eax, eax);
    cmp(rax, b);
  } else {
    const Reg64 a = rx(d.rs1);
    cmp(a, rx(d.rs2));
  }
  switch (op) {
    case Op::kBeq: jne(not_taken, T_NEAR); break;
    case Op::kBne: je(not_taken, T_NEAR); break;
    case Op::kBlt: jge(not_taken, T_NEAR); break;
    case Op::kBge: jl(not_taken, T_NEAR); break;
    case Op::kBltu: jae(not_taken, T_NEAR); break;
    default: jb(not_taken, T_NEAR); break;  // bgeu
  }
  // The taken paths below store what is dirty; the not-taken one goes on with the cache.
  const RegCache at_branch = m_regs;
  // Taken. To an instruction of this block (DecodedInsn::rs3), as the interpreter's
  // branch_in_block() (decode.h) does, with the same instret bookkeeping: forward, straight
  // there; back (a loop), there while the loop stays below the instret limit and no
  // interrupt or stop request is pending, else out as any taken branch. An instruction
  // control reaches from more than one place has one cache (m_head): the one of the first
  // way in to be emitted (a forward branch to it, or the way in from above; a loop head
  // reached only from below first holds the registers of its body, loop_head_cache()), all
  // taken as dirty; every other way in reconciles to it, so a loop or an if keeps its
  // registers in host registers.
  const int distance = d.rs3 == 0 ? 0 : d.rs3 - DecodedInsn::kInBlock;
  const int64_t target = static_cast<int64_t>(index) + distance;
  if (d.rs3 != 0 && target >= 0 && target < static_cast<int64_t>(m_count)) {
    const auto t = static_cast<uint32_t>(target);
    if (distance > 0) {
      if (distance > 1) add_instret(1 - distance);
      if (!m_head_set[t]) {  // the first way there: the target takes this cache
        m_head[t] = m_regs;
        m_head[t].all_dirty();
        m_head_set[t] = true;
      } else {
        reconcile(m_head[t]);
      }
      jmp(m_insn[t], T_NEAR);
    } else {
      // Counted first and taken back on the way out. The limit (m_jit_limit) is 0 once an
      // interrupt or stop request may be pending (hart.h), so it is the only test.
      Xbyak::Label leave;
      const auto body = static_cast<int32_t>(1 - distance);
      add_instret(body);
      cmp_instret(m_regs, m_l.instret_limit);
      if (m_fast != nullptr && index == m_fast->end) {
        // The copy without page checks: again while in the passes hoist_check() counted,
        // else back to the head, which checks again.
        jae(leave, T_NEAR);
        reconcile(m_head[t]);
        cmp_instret(m_head[t], m_l.scratch + 8 * static_cast<int32_t>(Hoist::kMaxSites));
        jb(m_fast->fast, T_NEAR);
        jmp(m_insn[t], T_NEAR);
        L(leave);
      } else if (same_cache(m_head[t])) {
        jb(m_insn[t], T_NEAR);
      } else {
        jae(leave, T_NEAR);
        reconcile(m_head[t]);
        jmp(m_insn[t], T_NEAR);
        L(leave);
      }
      add_instret(-body);
    }
  }
  spill();
  chain_direct(index, static_cast<int64_t>(index) + 2 - m_count, d.pc_off + d.imm);
  m_regs = at_branch;
  L(not_taken);
}

void Emitter::cmp_instret(const RegCache& c, int32_t limit) {
  if (const int s = c.find(kInstret); s >= 0) {
    cmp(RegCache::host(s), hart(limit));
  } else {
    mov(rax, hart(limit));
    cmp(hart(m_l.instret), rax);
  }
}

// Whether the loop [head, end] can have its page checks hoisted (see Hoist), and where.
void Emitter::find_hoist(uint32_t head, uint32_t end) {
  for (uint32_t k = head; k < end; ++k) {
    const Op op = op_of(m_first[k]);
    if (op == Op::kCall || op == Op::kJal || op == Op::kJalr || is_branch(op)) return;
  }
  Hoist& h = m_hoist[head];
  for (uint32_t k = head; k < end && h.sites_count < Hoist::kMaxSites; ++k) {
    const DecodedInsn& d = m_first[k];
    if (access_of(op_of(d)).size == 0 || d.rs1 == 0) continue;
    Hoist::Site site{k, 0, false};
    bool moved = false, other = false;
    for (uint32_t w = head; w < end; ++w) {
      const DecodedInsn& x = m_first[w];
      if (!writes_x(x, d.rs1)) continue;
      if (moved || op_of(x) != Op::kAddi || x.rs1 != d.rs1 || x.imm == 0) {
        other = true;
        break;
      }
      moved = true;
      site.stride = x.imm;
      site.pre = w < k;
    }
    if (!other) h.sites[h.sites_count++] = site;
  }
  if (h.sites_count == 0) return;
  h.head = head;
  h.end = end;
  if (end + 1 < m_count) m_target[end + 1] |= kAfterLoop;  // where the copy goes on
}

// At a hoisted loop's head (see Hoist), before its first instruction, with the head's
// cache: for each site, its address on the next pass looked up in the TLB (on a miss, on
// into the checked loop below), its addend to m_jit_scratch[site], and how many passes
// from here stay in that page; then m_jit_scratch[kMaxSites] = m_instret after the fewest
// of them, the limit of the copy without checks, and into it.
void Emitter::hoist_check(const Hoist& h) {
  Xbyak::Label checked;
  mov(ecx, 0x7fffffff);  // the fewest passes after the next that stay in their pages
  for (uint32_t k = 0; k < h.sites_count; ++k) {
    const Hoist::Site& site = h.sites[k];
    const DecodedInsn& d = m_first[site.index];
    const Access access = access_of(op_of(d));
    const int64_t offset = d.imm + (site.pre ? site.stride : 0);
    if (const int s = m_regs.find(d.rs1); s >= 0) {
      lea(rsi, ptr[RegCache::host(s) + disp(offset)]);
    } else {
      mov(rsi, xmem(d.rs1));
      if (offset != 0) add(rsi, imm32(offset));
    }
    tlb_lookup(rsi, 0, access.size, access.store, checked);
    const size_t table = access.store ? m_l.tlb_write_delta : 0;
    mov(rdx, qword[rbp + rax + table + 8]);
    mov(qword[rbx + disp(m_l.scratch + 8 * static_cast<int32_t>(k))], rdx);
    if (site.stride == 0) continue;
    // The bytes of the page beyond this pass's access, on the side it moves to, over the
    // stride: the passes after this one that stay.
    if (site.stride > 0) {
      lea(edx, ptr[rsi + disp(access.size - 1)]);
      not_(edx);
    } else {
      mov(edx, esi);
    }
    and_(edx, 0xfff);
    const uint64_t step = site.stride < 0 ? -static_cast<uint64_t>(site.stride)
                                          : static_cast<uint64_t>(site.stride);
    if (std::has_single_bit(step)) {
      if (step != 1) shr(edx, static_cast<uint8_t>(std::countr_zero(step)));
    } else {
      // bytes / step as bytes * (2^32 / step + 1) >> 32: exact while bytes * step < 2^32
      // (bytes < 2^12, step < 2^12); the factor is below 2^31 for a step of 3 or more.
      imul(rdx, rdx, static_cast<int32_t>((uint64_t{1} << 32) / step + 1));
      shr(rdx, 32);
    }
    cmp(ecx, edx);
    cmova(ecx, edx);
  }
  const auto body = static_cast<int32_t>(h.end + 1 - h.head);
  inc(ecx);  // with this one
  imul(rcx, rcx, body);
  if (const int s = m_regs.find(kInstret); s >= 0) add(rcx, RegCache::host(s));
  else add(rcx, hart(m_l.instret));
  mov(qword[rbx + disp(m_l.scratch + 8 * static_cast<int32_t>(Hoist::kMaxSites))], rcx);
  jmp(h.fast, T_NEAR);
  L(checked);
}

bool Emitter::same_cache(const RegCache& head) const {
  for (int slot = 0; slot < RegCache::kPool; ++slot) {
    const int g = m_regs.guest(slot);
    if (g >= 0 && m_regs.dirty(slot) && head.guest(slot) != g) return false;
    if (head.guest(slot) >= 0 && g != head.guest(slot)) return false;
  }
  return true;
}

void Emitter::add_instret(int32_t v) {
  const int s = m_regs.find(kInstret);
  if (s < 0) {
    add(hart(m_l.instret), imm32(v));
    return;
  }
  add(RegCache::host(s), imm32(v));
  m_regs.set_dirty(s, true);
}

void Emitter::reconcile(const RegCache& head) {
  for (int slot = 0; slot < RegCache::kPool; ++slot) {
    const int g = m_regs.guest(slot);
    if (g >= 0 && m_regs.dirty(slot) && head.guest(slot) != g) store_slot(slot, g);
  }
  for (int slot = 0; slot < RegCache::kPool; ++slot) {
    const int g = head.guest(slot);
    if (g >= 0 && m_regs.guest(slot) != g) load_slot(slot, g);
  }
}

// On the way into a loop (a block's own backward branch target): the cache holds the
// registers the loop body uses (`regs`), as many as fit, and nothing else, so the loop
// neither loads them nor reloads others on its way back (branch()).
void Emitter::loop_head_cache(const RegSet& regs) {
  for (int slot = 0; slot < RegCache::kPool; ++slot) {
    const int g = m_regs.guest(slot);
    if (g >= 0 && !regs.has(static_cast<unsigned>(g))) {
      if (m_regs.dirty(slot)) store_slot(slot, g);
      m_regs.drop(slot);
    }
  }
  const auto take = [&](unsigned from, unsigned to) {
    for (unsigned r = from; r <= to; ++r) {
      if (!regs.has(r) || m_regs.find(r) >= 0) continue;
      const int slot = m_regs.victim(r);
      if (m_regs.guest(slot) >= 0) return;  // full
      m_regs.assign(slot, r);
      load_slot(slot, static_cast<int>(r));
    }
  };
  take(0, kInstret);
  take(kF, kF + 31);
}

// The common two-operand forms, computed in rd's own cache register (no copy through rax):
// false if `op` is not one of them, or rd is rs2 of a non-commutative one.
bool Emitter::alu_in_place(Op op, const DecodedInsn& d) {
  const uint32_t imm = imm32(d.imm);
  const auto shamt = static_cast<uint8_t>(d.imm & 63);
  bool reg_reg = false, commutative = false;
  switch (op) {
    case Op::kAddi: case Op::kXori: case Op::kOri: case Op::kAndi: case Op::kSlli:
    case Op::kSrli: case Op::kSrai:
      break;
    case Op::kAdd: case Op::kXor: case Op::kOr: case Op::kAnd: case Op::kMul:
      reg_reg = commutative = true;
      break;
    case Op::kSub:
      reg_reg = true;
      break;
    default:
      return false;
  }
  if (d.rs1 == 0 || (reg_reg && d.rs2 == 0)) {  // li, mv, neg...: x0 takes no slot
    with_zero(op, d, reg_reg);
    return true;
  }
  if (reg_reg && d.rd == d.rs2 && d.rd != d.rs1 && !commutative) return false;
  // Both operands first (the most recently used slots), then rd's slot, which therefore
  // evicts neither.
  Reg64 a = rx(d.rs1);
  Reg64 b = reg_reg ? rx(d.rs2) : a;
  const Reg64 dst = dest(d.rd);
  if (reg_reg && d.rd == d.rs2 && d.rd != d.rs1) std::swap(a, b);  // commutative: dst op= a
  if (dst.getIdx() != a.getIdx()) {
    if (op == Op::kAddi) {  // (addi rd, rs, 0 is mv)
      if (d.imm) lea(dst, ptr[a + disp(d.imm)]);
      else mov(dst, a);
      return true;
    }
    if (op == Op::kAdd) {
      lea(dst, ptr[a + b]);
      return true;
    }
    mov(dst, a);
  }
  switch (op) {
    case Op::kAddi: if (d.imm) add(dst, imm); break;
    case Op::kXori: xor_(dst, imm); break;
    case Op::kOri: or_(dst, imm); break;
    case Op::kAndi: and_(dst, imm); break;
    case Op::kSlli: shl(dst, shamt); break;
    case Op::kSrli: shr(dst, shamt); break;
    case Op::kSrai: sar(dst, shamt); break;
    case Op::kAdd: add(dst, b); break;
    case Op::kSub: sub(dst, b); break;
    case Op::kXor: xor_(dst, b); break;
    case Op::kOr: or_(dst, b); break;
    case Op::kAnd: and_(dst, b); break;
    default: imul(dst, b); break;  // mul
  }
  return true;
}

// alu_in_place()'s operations with x0 as an operand: x0 is not read into the cache.
void Emitter::with_zero(Op op, const DecodedInsn& d, bool reg_reg) {
  // The value is 0 op imm (the immediate forms), or the other operand, negated for
  // 0 - rs2, or 0 (and, mul, x0 - x0, the shifts of x0).
  std::optional<unsigned> other;
  if (reg_reg && (op == Op::kAdd || op == Op::kXor || op == Op::kOr || op == Op::kSub)) {
    if (d.rs1 != 0) other = d.rs1;
    else if (d.rs2 != 0) other = d.rs2;
  }
  if (other) {
    const Reg64 a = rx(*other);
    const Reg64 dst = dest(d.rd);
    if (dst.getIdx() != a.getIdx()) mov(dst, a);
    if (op == Op::kSub && d.rs1 == 0) neg(dst);
    return;
  }
  const bool imm_value = !reg_reg && (op == Op::kAddi || op == Op::kXori || op == Op::kOri);
  const Reg64 dst = dest(d.rd);
  if (imm_value && d.imm != 0) mov(dst, static_cast<uint64_t>(d.imm));
  else xor_(dst.cvt32(), dst.cvt32());
}

void Emitter::alu(Op op, const DecodedInsn& d) {
  const uint32_t imm = imm32(d.imm);
  const auto shamt = static_cast<uint8_t>(d.imm & 63);
  if (d.rd == 32) return;  // writes x0: no effect (these cannot trap)
  if (alu_in_place(op, d)) return;
  // The operands are read first and rd's register taken after (dest()), so that its slot
  // evicts neither; the 32-bit forms compute in eax and sign-extend it into rd.
  const bool reg_reg = op == Op::kSub || op == Op::kMulw || op == Op::kMulh ||
                       op == Op::kMulhu || op == Op::kSlt || op == Op::kSltu ||
                       op == Op::kSll || op == Op::kSrl || op == Op::kSra ||
                       op == Op::kAddw || op == Op::kSubw || op == Op::kSllw ||
                       op == Op::kSrlw || op == Op::kSraw;
  const bool reads_rs1 = op != Op::kLui && op != Op::kAuipc;
  const Reg64 a = reads_rs1 ? rx(d.rs1) : rax;
  const Reg64 b = reg_reg ? rx(d.rs2) : rax;
  const bool by_cl = !m_l.bmi2 && (op == Op::kSll || op == Op::kSrl || op == Op::kSra ||
                                   op == Op::kSllw || op == Op::kSrlw || op == Op::kSraw);
  if (by_cl) mov(rcx, b);
  switch (op) {
    case Op::kLui: mov(dest(d.rd), static_cast<uint64_t>(d.imm)); return;
    case Op::kAuipc: {
      const Reg64 dst = dest(d.rd);
      mov(dst, hart(m_l.block_pc));
      add_imm(dst, d.pc_off + d.imm);
      return;
    }
    // (addi, xori, ori, andi, the immediate shifts, add, sub, xor, or, and, mul: alu_in_place())
    case Op::kSlti: case Op::kSltiu:
    case Op::kSlt: case Op::kSltu:
      if (op == Op::kSlti || op == Op::kSltiu) cmp(a, imm);
      else cmp(a, b);
      if (op == Op::kSlti || op == Op::kSlt) setl(al);
      else setb(al);
      movzx(dest(d.rd).cvt32(), al);
      return;
    case Op::kSub: mov(rax, a); sub(rax, b); mov(dest(d.rd), rax); return;  // rd = rs2 != rs1
    case Op::kMulh: case Op::kMulhu:
      mov(rax, a);
      if (op == Op::kMulh) imul(b);
      else mul(b);
      mov(dest(d.rd), rdx);
      return;
    case Op::kSll: case Op::kSrl: case Op::kSra:
      if (m_l.bmi2) {
        const Reg64 dst = dest(d.rd);
        if (op == Op::kSll) shlx(dst, a, b);
        else if (op == Op::kSrl) shrx(dst, a, b);
        else sarx(dst, a, b);
        return;
      }
      mov(rax, a);
      if (op == Op::kSll) shl(rax, cl);
      else if (op == Op::kSrl) shr(rax, cl);
      else sar(rax, cl);
      mov(dest(d.rd), rax);
      return;
    case Op::kAddiw:
      if (d.imm == 0) {  // sext.w
        movsxd(dest(d.rd), a.cvt32());
        return;
      }
      lea(eax, ptr[a + disp(d.imm)]);
      break;
    case Op::kSlliw: mov(eax, a.cvt32()); shl(eax, shamt & 31); break;
    case Op::kSrliw:
      if ((shamt & 31) != 0) {  // bit 31 of the result is 0: zero- is sign-extension
        const Reg64 dst = dest(d.rd);
        mov(dst.cvt32(), a.cvt32());
        shr(dst.cvt32(), shamt & 31);
        return;
      }
      mov(eax, a.cvt32());
      break;
    case Op::kSraiw: mov(eax, a.cvt32()); sar(eax, shamt & 31); break;
    case Op::kAddw: lea(eax, ptr[a + b]); break;
    case Op::kSubw: mov(eax, a.cvt32()); sub(eax, b.cvt32()); break;
    case Op::kMulw: mov(eax, a.cvt32()); imul(eax, b.cvt32()); break;
    case Op::kSllw: case Op::kSrlw: case Op::kSraw:  // counts mod 32, as the 32-bit forms
      if (m_l.bmi2) {
        if (op == Op::kSllw) shlx(eax, a.cvt32(), b.cvt32());
        else if (op == Op::kSrlw) shrx(eax, a.cvt32(), b.cvt32());
        else sarx(eax, a.cvt32(), b.cvt32());
        break;
      }
      mov(eax, a.cvt32());
      if (op == Op::kSllw) shl(eax, cl);
      else if (op == Op::kSrlw) shr(eax, cl);
      else sar(eax, cl);
      break;
    default: return;  // (block() sends only the operations above here)
  }
  movsxd(dest(d.rd), eax);
}

// Division: x86 div/idiv where the result is the plain quotient or remainder; a zero
// divisor, and -1 for the signed ones (the overflow case), go to the handler, which has
// table 7.1's answers (and x86 would fault).
void Emitter::divide(Op op, const DecodedInsn& d, uint32_t index) {
  OutOfLine& o = slow_path(d, index);
  const bool w32 = op == Op::kDivw || op == Op::kDivuw || op == Op::kRemw || op == Op::kRemuw;
  const bool is_signed = op == Op::kDiv || op == Op::kRem || op == Op::kDivw || op == Op::kRemw;
  const bool rem = op == Op::kRem || op == Op::kRemu || op == Op::kRemw || op == Op::kRemuw;
  mov(rcx, rx(d.rs2));
  mov(rax, rx(d.rs1));
  slow_from(o);
  if (w32) {
    test(ecx, ecx);
    jz(to_slow(o), T_NEAR);
    if (is_signed) {
      cmp(ecx, 0xffffffffu);
      je(to_slow(o), T_NEAR);
      cdq();
      idiv(ecx);
    } else {
      xor_(edx, edx);
      div(ecx);
    }
    movsxd(rax, rem ? edx : eax);
  } else {
    test(rcx, rcx);
    jz(to_slow(o), T_NEAR);
    if (is_signed) {
      cmp(rcx, 0xffffffffu);  // sign-extended: -1
      je(to_slow(o), T_NEAR);
      cqo();
      idiv(rcx);
    } else {
      xor_(edx, edx);
      div(rcx);
    }
    if (rem) mov(rax, rdx);
  }
  wx(d.rd, rax);
  slow_resume(o);
}

// Binary64 on the host's SSE/FMA unit: only where the host's answer is provably the
// software one. Arithmetic needs FS on, round-to-nearest-even (static, or dynamic with frm =
// RNE), NX already accrued in fflags (so the result's inexactness changes nothing) and a
// result that is finite and above the smallest normal; anything else is the handler, which
// works the flags out. That result check alone suffices, for any operands: both sides
// round correctly (IEEE 754, the host with MXCSR in its default state, which
// fpu::host::DefaultEnvScope holds), so their results agree; a NaN operand (quiet or
// signaling, whose payload rules differ) makes a NaN, an infinite one an infinity, NaN or
// zero, and every other flag (invalid, divide by zero, overflow, underflow) comes with a
// NaN, an infinity or a result at or below the smallest normal. (The handlers' fast path,
// fpu_host.h, also asks for normal operands, which it needs for its exact-sum shortcut.)
// Sign injection and moves need FS on only; fcvt.d.w(u) is exact, and needs a valid
// rounding mode.
void Emitter::fp(Op op, const DecodedInsn& d, uint32_t index) {
  const bool arith = op == Op::kFaddD || op == Op::kFsubD || op == Op::kFmulD ||
                     op == Op::kFdivD || is_fma(op);
  const bool cvt = op == Op::kFcvtDW || op == Op::kFcvtDWu;
  if ((arith && d.rm != 0 && d.rm != 7) || (cvt && d.rm > 4 && d.rm != 7) ||
      (is_fma(op) && !m_l.fma)) {
    call_out(d, index);
    return;
  }
  OutOfLine& o = slow_path(d, index);
  const bool from_x = op == Op::kFmvDX || cvt;  // reads an x register
  const bool sgnj = op == Op::kFsgnjD || op == Op::kFsgnjnD || op == Op::kFsgnjxD;
  // The operands into the cache first: the slow path starts from it as it is after them.
  const Reg64 src = from_x ? rx(d.rs1) : rax;
  const Xbyak::Xmm a = from_x ? xmm0 : frx(d.rs1);
  const Xbyak::Xmm b = arith || sgnj ? frx(d.rs2) : xmm0;
  const Xbyak::Xmm c = is_fma(op) ? frx(d.rs3) : xmm0;
  slow_from(o);
  // The tests this block has not made yet on the way here (m_fp); each holds from here on,
  // the slow path making sure of what its handler may leave otherwise (OutOfLine).
  if (!m_fp.on) {
    test(dword[rbx + disp(m_l.mstatus)], m_l.fs_mask);
    jz(to_slow(o), T_NEAR);
  }
  if (arith && d.rm == 7 && !m_fp.rne) {
    cmp(byte[rbx + disp(m_l.frm)], 0);
    jne(to_slow(o), T_NEAR);
    o.check_rne = true;
  } else if (cvt && d.rm == 7 && !m_fp.rne) {
    cmp(byte[rbx + disp(m_l.frm)], 4);  // a valid mode: the only fact needed
    ja(to_slow(o), T_NEAR);
  }
  if (arith && !m_fp.nx) {
    test(byte[rbx + disp(m_l.fflags)], fpu::kNX);
    jz(to_slow(o), T_NEAR);
    o.check_nx = true;
  }
  // The result goes to rd's cache register (fdest()) after the last jump to the slow path
  // (a victim it evicts is stored there, which the slow path does from o.pre).
  if (arith) {
    if (is_fma(op)) {
      // xmm0 = ±(rs1 * rs2) ± rs3, one rounding. RISC-V fnmsub is -(a*b)+c (x86 vfnmadd),
      // fnmadd is -(a*b)-c (x86 vfnmsub).
      movapd(xmm0, c);
      switch (op) {
        case Op::kFmaddD: vfmadd231sd(xmm0, a, b); break;
        case Op::kFmsubD: vfmsub231sd(xmm0, a, b); break;
        case Op::kFnmsubD: vfnmadd231sd(xmm0, a, b); break;
        default: vfnmsub231sd(xmm0, a, b); break;
      }
    } else {
      movapd(xmm0, a);
      switch (op) {
        case Op::kFaddD: addsd(xmm0, b); break;
        case Op::kFsubD: subsd(xmm0, b); break;
        case Op::kFmulD: mulsd(xmm0, b); break;
        default: divsd(xmm0, b); break;
      }
    }
    movq(rax, xmm0);
    // Finite and |result| > the smallest normal (fpu_host.h's safe_result64): with the
    // sign shifted out, 2|r| - 2(min + 1 ulp) < 2(inf - (min + 1 ulp)), unsigned.
    lea(rsi, ptr[rax + rax]);
    sub(rsi, qword[rip + fp_constants()]);
    cmp(rsi, qword[rip + fp_constants() + 8]);
    jae(to_slow(o), T_NEAR);
    movapd(fdest(d.rd), xmm0);
  } else {
    switch (op) {
      case Op::kFsgnjD: case Op::kFsgnjnD: case Op::kFsgnjxD:
        if (d.rs1 == d.rs2 && op == Op::kFsgnjD) {  // fmv.d
          if (d.rd != d.rs1) movapd(fdest(d.rd), a);
          break;
        }
        movq(rax, a);
        if (d.rs1 == d.rs2) {  // fneg.d, fabs.d
          if (op == Op::kFsgnjnD) btc(rax, 63);
          else btr(rax, 63);
        } else {
          movq(rcx, b);
          if (op == Op::kFsgnjnD) not_(rcx);
          shr(rcx, 63);  // rcx = the sign bit alone
          shl(rcx, 63);
          if (op != Op::kFsgnjxD) btr(rax, 63);
          if (op == Op::kFsgnjxD) xor_(rax, rcx);
          else or_(rax, rcx);
        }
        movq(fdest(d.rd), rax);
        break;
      case Op::kFmvXD:  // put_x() with no flags: FS unchanged
        if (d.rd != 32) movq(dest(d.rd), a);
        m_fp.on = true;
        slow_resume(o);
        return;
      case Op::kFmvDX:
        movq(fdest(d.rd), src);
        break;
      case Op::kFcvtDW:
        cvtsi2sd(fdest(d.rd), src.cvt32());
        break;
      default:  // fcvt.d.wu: the zero-extended value, exact in binary64
        mov(eax, src.cvt32());
        cvtsi2sd(fdest(d.rd), rax);
        break;
    }
  }
  if (!m_fp.dirty) or_(dword[rbx + disp(m_l.mstatus)], m_l.fs_mask);  // fp_dirty()
  m_fp.on = m_fp.dirty = true;
  m_fp.nx = m_fp.nx || arith;
  m_fp.rne = m_fp.rne || (arith && d.rm == 7);
  slow_resume(o);
}

void Emitter::insn(const DecodedInsn& d, uint32_t i) {
  const Op op = op_of(d);
  switch (op) {
    case Op::kCall:
      call_out(d, i);
      break;
    case Op::kJal:
      if (d.rd != 32) {
        pc_to_rax(d.pc_off + d.len);
        wx(d.rd, rax);
      }
      spill();
      chain_direct(i, static_cast<int64_t>(i) + 2 - m_count, d.pc_off + d.imm);
      break;
    case Op::kJalr:
      mov(rcx, rx(d.rs1));
      if (d.imm) add(rcx, imm32(d.imm));
      and_(rcx, 0xfffffffeu);  // sign-extended: ~1
      pc_to_rax(d.pc_off + d.len);
      wx(d.rd, rax);
      spill();
      chain(i, static_cast<int64_t>(i) + 2 - m_count);
      break;
    case Op::kBeq: case Op::kBne: case Op::kBlt: case Op::kBge: case Op::kBltu:
    case Op::kBgeu:
      branch(op, d, i);
      break;
    case Op::kLb: case Op::kLh: case Op::kLw: case Op::kLd: case Op::kLbu: case Op::kLhu:
    case Op::kLwu: case Op::kSb: case Op::kSh: case Op::kSw: case Op::kSd: case Op::kFld:
    case Op::kFsd:
      memory(op, d, i);
      break;
    case Op::kDiv: case Op::kDivu: case Op::kRem: case Op::kRemu: case Op::kDivw:
    case Op::kDivuw: case Op::kRemw: case Op::kRemuw:
      divide(op, d, i);
      break;
    case Op::kFaddD: case Op::kFsubD: case Op::kFmulD: case Op::kFdivD: case Op::kFmaddD:
    case Op::kFmsubD: case Op::kFnmsubD: case Op::kFnmaddD: case Op::kFsgnjD:
    case Op::kFsgnjnD: case Op::kFsgnjxD: case Op::kFmvXD: case Op::kFmvDX:
    case Op::kFcvtDW: case Op::kFcvtDWu:
      fp(op, d, i);
      break;
    default:
      alu(op, d);
      break;
  }
}

void Emitter::block(const void* block, const DecodedInsn* first, uint32_t count,
                    uint32_t page_offset) {
  m_count = count;
  m_page_offset = page_offset;
  m_block_ptr = reinterpret_cast<uintptr_t>(block);  // (below 2^48: Translator::emit())
  m_insn.reset(new Xbyak::Label[count + 1]);
  m_target.reset(new uint8_t[count + 1]());
  m_loop_regs.reset(new RegSet[count + 1]());
  m_head.reset(new RegCache[count + 1]);
  m_head_set.reset(new bool[count + 1]());
  m_exit.reset(new Xbyak::Label[count + 1]);
  m_exit_used.reset(new bool[count + 1]());
  m_first = first;
  m_hoist.reset(new Hoist[count]);
  for (uint32_t i = 0; i < count; ++i) {
    const DecodedInsn& d = first[i];
    if ((d.raw & 0x7f) == 0x63 && d.rs3 != 0) {
      const int64_t t = static_cast<int64_t>(i) + d.rs3 - DecodedInsn::kInBlock;
      if (t >= 0 && t < static_cast<int64_t>(count)) {
        m_target[static_cast<size_t>(t)] |= t > static_cast<int64_t>(i) ? kForward : kBackward;
        if (t <= static_cast<int64_t>(i)) {
          RegSet& loop = m_loop_regs[static_cast<size_t>(t)];
          loop.x |= 1ull << kInstret;
          for (auto k = static_cast<uint32_t>(t); k <= i; ++k) {
            loop.x |= x_regs(first[k]);
            loop.f |= f_regs(first[k]);
          }
          if (m_hoist[static_cast<size_t>(t)].sites_count == 0)
            find_hoist(static_cast<uint32_t>(t), i);
        }
      }
    }
  }
  // At most one per instruction, as translated and in a hoisted loop's copy, and one link
  // for the block's end in each.
  uint32_t copied = 0;
  for (uint32_t i = 0; i < count; ++i)
    if (m_hoist[i].sites_count != 0) copied += m_hoist[i].end + 1 - i;
  m_slow.reset(new OutOfLine[count + copied]);
  m_links.reset(new Link[count + copied + 2]);
  // Six pushes and 8 bytes after the return address: rsp is 16-byte aligned for the calls.
  push(rbx);
  push(rbp);
  push(r12);
  push(r13);
  push(r14);
  push(r15);
  sub(rsp, 8);
  mov(rbx, rdi);
  mov(rbp, hart(m_l.tlb_read));
  Xbyak::Label body, chained_fail;
  jmp(body, T_NEAR);
  m_chained_offset = getSize();  // where other translations enter (rbx already set)
  mov(hart(m_l.block_pc), rcx);    // (ways out into their own page enter after this)
  chained_entry(count, chained_fail);
  L(body);
  m_regs.forget();
  m_fp = {};
  for (uint32_t i = 0; i < count; ++i) {
    const DecodedInsn& d = first[i];
    if (m_target[i] != 0) {
      if (m_head_set[i]) {  // a forward branch got here first: this way in reconciles
        reconcile(m_head[i]);
        m_regs = m_head[i];
      } else {
        if ((m_target[i] & ~kAfterLoop) == kBackward) loop_head_cache(m_loop_regs[i]);
        m_regs.all_dirty();
        m_head[i] = m_regs;
        m_head_set[i] = true;
      }
      L(m_insn[i]);
      m_fp = {};
    }
    if (m_hoist[i].sites_count != 0) hoist_check(m_hoist[i]);
    insn(d, i);
  }
  // Ran to the end: pc past the block (the block_end() entry's offset), all retired.
  spill();
  chain_direct(count, 1, first[count].pc_off);
  // The hoisted loops' copies without page checks (see Hoist), from their heads' caches;
  // when the branch back is not taken, on after the loop as translated above.
  for (uint32_t head = 0; head < count; ++head) {
    const Hoist& h = m_hoist[head];
    if (h.sites_count == 0) continue;
    L(m_hoist[head].fast);
    m_regs = m_head[head];
    m_fp = {};
    m_fast = &h;
    for (uint32_t i = head; i <= h.end; ++i) insn(first[i], i);
    m_fast = nullptr;
    if (h.end + 1 < count) {
      reconcile(m_head[h.end + 1]);
      jmp(m_insn[h.end + 1], T_NEAR);
    } else {
      spill();
      chain_direct(count, 1, first[count].pc_off);
    }
  }
  // Out of line: the slow paths (the handler, which may trap; then the register cache
  // reloaded as the fast path left it), then the exits.
  for (uint32_t s = 0; s < m_slow_count; ++s) {
    OutOfLine& o = m_slow[s];
    if (!o.used) continue;
    L(o.slow);
    store_dirty(o.pre);
    call_handler(*o.d, o.index);
    Xbyak::Label leave;
    if (o.check_nx) {
      test(byte[rbx + disp(m_l.fflags)], fpu::kNX);
      jz(leave, T_NEAR);
    }
    if (o.check_rne) {
      cmp(byte[rbx + disp(m_l.frm)], 0);
      jne(leave, T_NEAR);
    }
    for (int slot = 0; slot < RegCache::kPool; ++slot)
      if (o.regs.guest(slot) >= 0) load_slot(slot, o.regs.guest(slot));
    jmp(o.resume, T_NEAR);
    if (o.check_nx || o.check_rne) {  // on to the next instruction, from memory
      L(leave);
      chain_direct(o.index, static_cast<int64_t>(o.index) + 2 - count, o.d->pc_off + o.d->len);
    }
  }
  // The exits name this block in m_block: a block entered through its chained entry has
  // not (see chained_entry()).
  Xbyak::Label exit;
  for (uint32_t i = 0; i <= count; ++i) {
    if (!m_exit_used[i]) continue;
    L(m_exit[i]);
    mov(eax, i);
    jmp(exit, T_NEAR);
  }
  L(exit);
  mov(rdx, m_block_ptr);
  mov(hart(m_l.block), rdx);
  jmp(reinterpret_cast<const void*>(m_l.epilogue_stub), T_NEAR);
  // The chained entry's way out: as the translation that jumped here would have left
  // (m_block_pc is this block's pc: the way out of the jumping one set it, or the entry).
  L(chained_fail);
  mov(rcx, hart(m_l.block_pc));
  jmp(reinterpret_cast<const void*>(m_l.fail_stub), T_NEAR);
  for (uint32_t l = 0; l < m_link_count; ++l) {
    Link& link = m_links[l];
    L(link.relink);
    if (link.in_page) {
      mov(rcx, hart(m_l.block_pc));
      add_imm(rcx, link.offset);
    }
    mov(r8, from(link.index));
    mov(r9, static_cast<uint64_t>(link.retired_adjust));
    lea(r10, ptr[rip + link.slot]);
    jmp(reinterpret_cast<const void*>(link.in_page ? m_l.link_page_stub : m_l.link_stub),
        T_NEAR);
  }
  // The slots: data after the code. A key no chain key ever is (~0: the epoch would have
  // to wrap) and a pc no pc is (odd) until the link stub patches one.
  align(8);
  for (uint32_t l = 0; l < m_link_count; ++l) {
    L(m_links[l].slot);
    dq(~0ull);
    dq(0);
    dq(~0ull);
    dq(0);
  }
  if (m_fp_constants_used) {
    constexpr uint64_t kLow = 0x0010000000000001;  // the smallest normal + 1 ulp
    L(m_fp_constants);
    dq(kLow << 1);
    dq((0x7ff0000000000000 - kLow) << 1);
  }
}

// Where another translation (or the chain stub) jumps in, after block() has stored rcx, the
// pc, as m_block_pc (Hart::insn_pc() reads it; a way out into its own page moves it itself
// and enters here): r8 the way out (Emitter::from()) and r9 the instructions it retired
// less m_instret (chain()). Does what of the run loop's bookkeeping (run_translated()) a
// translation needs while it runs, when its block fits below the instret limit
// (m_jit_limit: 0 when an interrupt or stop request may be pending); otherwise leaves as
// the jumping translation would have (the fail stub). That is m_instret. Not m_block:
// run_translated() reads it only after the translations return, and every way back sets
// it (an exit to its own block, the fail stub to the jumping one's). Not m_pc: every
// instruction that reads it or can trap sets it first (call_handler(), decode.h
// needs_pc()), and every way out sets it. Not m_block_first: run_translated() takes it
// from m_block. Nothing tests m_stopped: what sets it (an exception, WFI, an illegal
// instruction) returns false and so leaves through an exit, never through a chain.
void Emitter::chained_entry(uint32_t count, Xbyak::Label& fail) {
  // (rbp, the TLB table, is the prologue's: what changes the context ends its block, and
  // leaves through an exit.) This block must fit below the limit: retired + count <=
  // m_jit_limit, that is, its m_instret (the count before its last instruction) below it.
  mov(rax, hart(m_l.instret));
  lea(rax, ptr[rax + r9 + disp(count - 1)]);
  cmp(rax, hart(m_l.instret_limit));
  jae(fail, T_NEAR);
  mov(hart(m_l.instret), rax);
}

Result<std::unique_ptr<Translator>> Translator::create(Hart& hart, size_t cache_bytes) {
  size_t size = cache_bytes < kMinCacheBytes ? kMinCacheBytes : cache_bytes;
  size = (size + 4095) & ~size_t{4095};
  // Reserved, not committed: the host backs pages only as code is written to them.
  void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE | PROT_EXEC,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED)
    return Error::format("jit: cannot map a {} byte code cache: {}", size, std::strerror(errno));
  madvise(p, size, MADV_HUGEPAGE);  // committed 2 MiB at a time: fewer faults as it fills
  return std::unique_ptr<Translator>(new Translator(hart, static_cast<uint8_t*>(p), size));
}

Translator::Translator(Hart& hart, uint8_t* base, size_t size)
    : m_hart(hart), m_base(base), m_size(size) {}

Translator::~Translator() { munmap(m_base, m_size); }

void Translator::remember(uint64_t va, uint64_t key, BlockFn fn) {
  JumpEntry& e = m_jump[(va >> 1) & (kJumpEntries - 1)];
  e.va = va;
  e.key = key;
  e.chained = reinterpret_cast<const uint8_t*>(fn) + m_chained_offset;
}

void Translator::reset() {
  m_used = 0;
  ++m_generation;
  m_stats.bytes_used = 0;
}

BlockFn Translator::translate(const void* block, const DecodedInsn* first, uint32_t count,
                              uint32_t page_offset) {
  if (m_size - m_used < kMaxBlockCode) {
    reset();
    ++m_stats.flushes;
  }
  if (BlockFn fn = emit(block, first, count, page_offset)) return fn;
  if (m_used <= m_stub_bytes) return nullptr;  // not even into an empty cache
  reset();
  ++m_stats.flushes;
  return emit(block, first, count, page_offset);
}

BlockFn Translator::emit(const void* block, const DecodedInsn* first, uint32_t count,
                         uint32_t page_offset) {
  // A way out names its block in the low 48 bits of a register (Emitter::from()): a user
  // space address on x86-64 fits, but if one did not, the block would stay threaded.
  if (reinterpret_cast<uintptr_t>(block) >> 48 != 0) return nullptr;
  HartLayout layout{};
  layout.x = HartLayout::off(m_hart, &m_hart.m_x[0]);
  layout.f = HartLayout::off(m_hart, &m_hart.m_f[0]);
  layout.mstatus = HartLayout::off(m_hart, &m_hart.m_mstatus);
  layout.frm = HartLayout::off(m_hart, &m_hart.m_frm);
  layout.fflags = HartLayout::off(m_hart, &m_hart.m_fflags);
  layout.fs_mask = static_cast<uint32_t>(Hart::kMstatusFS);
  layout.fma = __builtin_cpu_supports("fma") != 0;
  layout.bmi2 = __builtin_cpu_supports("bmi2") != 0;
  layout.pc = HartLayout::off(m_hart, &m_hart.m_pc);
  layout.block_pc = HartLayout::off(m_hart, &m_hart.m_block_pc);
  layout.tlb_read = HartLayout::off(m_hart, &m_hart.m_tlb_read);
  static_assert(sizeof(Hart::TlbEntry) == 16);
  layout.tlb_index_mask = (Hart::kTlbSize - 1) << 4;
  static_assert(Hart::kTlbWrite == Hart::kTlbRead + 1);  // m_tlb[ctx][kTlbWrite] follows
  layout.tlb_write_delta = Hart::kTlbSize * sizeof(Hart::TlbEntry);
  layout.instret = HartLayout::off(m_hart, &m_hart.m_instret);
  layout.instret_limit = HartLayout::off(m_hart, &m_hart.m_jit_limit);
  static_assert(sizeof(std::atomic<uint64_t>) == 8);  // read as a plain qword
  layout.chain_key = HartLayout::off(m_hart, &m_hart.m_chain_key);
  layout.block = HartLayout::off(m_hart, &m_hart.m_block);
  layout.scratch = HartLayout::off(m_hart, &m_hart.m_jit_scratch[0]);
  static_assert(sizeof(Hart::m_jit_scratch) == 8 * (kMaxHoistSites + 1));
  layout.jump = reinterpret_cast<uintptr_t>(m_jump.get());
  Xbyak::ClearError();
  if (m_used == 0) {  // a new cache: the shared stubs first
    Emitter s(m_size, m_base, layout);
    s.stubs();
    if (Xbyak::GetError() != 0) {
      Xbyak::ClearError();
      return nullptr;
    }
    m_chain_stub = m_base;
    m_link_stub = m_base + s.link_offset();
    m_link_page_stub = m_base + s.link_page_offset();
    m_fail_stub = m_base + s.fail_offset();
    m_epilogue_stub = m_base + s.epilogue_offset();
    m_used = m_stub_bytes = (s.getSize() + 15) & ~size_t{15};
  }
  layout.chain_stub = reinterpret_cast<uintptr_t>(m_chain_stub);
  layout.link_stub = reinterpret_cast<uintptr_t>(m_link_stub);
  layout.link_page_stub = reinterpret_cast<uintptr_t>(m_link_page_stub);
  layout.fail_stub = reinterpret_cast<uintptr_t>(m_fail_stub);
  layout.epilogue_stub = reinterpret_cast<uintptr_t>(m_epilogue_stub);
  uint8_t* at = m_base + m_used;
  Emitter e(m_size - m_used, at, layout);
  e.block(block, first, count, page_offset);
  if (Xbyak::GetError() != 0) {
    Xbyak::ClearError();
    return nullptr;
  }
  const size_t bytes = e.getSize();
  m_chained_offset = e.chained_offset();
  m_used += (bytes + 15) & ~size_t{15};
  ++m_stats.blocks;
  m_stats.bytes_used = m_used;
  return reinterpret_cast<BlockFn>(at);
}

}  // namespace doppel::rv64::jit
#endif  // __x86_64__
