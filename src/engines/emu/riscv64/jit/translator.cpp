// Emission (see translator.h). Host register use inside a translation:
//   rbx  the Hart            rbp  &hart.m_x[0] (guest x registers, x0 reads 0, [32] a sink)
//   rax, rcx, rdx, rsi, rdi  scratch (caller-saved: dead across the handler calls)
// Guest registers stay in memory between instructions; a handler call sees them there.
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
void Translator::reset() { m_used = 0; }
BlockFn Translator::translate(const DecodedInsn*, uint32_t) {
  (void)m_hart;
  (void)m_base;
  return nullptr;
}
}  // namespace doppel::rv64::jit
#else
#define XBYAK_NO_EXCEPTION

#include <sys/mman.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <string_view>

#include <xbyak/xbyak.h>

#include "engines/emu/riscv64/decode.h"
#include "engines/emu/riscv64/hart.h"

namespace doppel::rv64::jit {

namespace {

// The most code one block can need: 64 instructions of at most ~120 bytes in line and
// ~60 out of line each, plus the prologue and epilogue. A block starts only where this
// much is free, so emission never runs out of room.
constexpr size_t kMaxBlockCode = 64 * 192 + 256;

bool illegal_handler(Hart& h, const DecodedInsn& d) { return h.illegal(d); }

// A displacement as xbyak takes it (size_t, wrapping for negative ones).
size_t disp(int64_t v) { return static_cast<size_t>(v); }

enum class Op {
  kCall,  // the instruction table's handler
  kLui, kAuipc, kJal, kJalr,
  kBeq, kBne, kBlt, kBge, kBltu, kBgeu,
  kLb, kLh, kLw, kLd, kLbu, kLhu, kLwu, kSb, kSh, kSw, kSd, kFld, kFsd,
  kAddi, kSlti, kSltiu, kXori, kOri, kAndi, kSlli, kSrli, kSrai,
  kAdd, kSub, kSll, kSlt, kSltu, kXor, kSrl, kSra, kOr, kAnd,
  kAddiw, kSlliw, kSrliw, kSraiw, kAddw, kSubw, kSllw, kSrlw, kSraw,
  kMul,
};

Op op_of(const DecodedInsn& d) {
  if (d.spec == 0xffff) return Op::kCall;
  static constexpr struct {
    std::string_view name;
    Op op;
  } kNative[] = {
      {"lui", Op::kLui},     {"auipc", Op::kAuipc}, {"jal", Op::kJal},     {"jalr", Op::kJalr},
      {"beq", Op::kBeq},     {"bne", Op::kBne},     {"blt", Op::kBlt},     {"bge", Op::kBge},
      {"bltu", Op::kBltu},   {"bgeu", Op::kBgeu},   {"lb", Op::kLb},       {"lh", Op::kLh},
      {"lw", Op::kLw},       {"ld", Op::kLd},       {"lbu", Op::kLbu},     {"lhu", Op::kLhu},
      {"lwu", Op::kLwu},     {"sb", Op::kSb},       {"sh", Op::kSh},       {"sw", Op::kSw},
      {"sd", Op::kSd},       {"addi", Op::kAddi},   {"slti", Op::kSlti},   {"sltiu", Op::kSltiu},
      {"xori", Op::kXori},   {"ori", Op::kOri},     {"andi", Op::kAndi},   {"slli", Op::kSlli},
      {"srli", Op::kSrli},   {"srai", Op::kSrai},   {"add", Op::kAdd},     {"sub", Op::kSub},
      {"sll", Op::kSll},     {"slt", Op::kSlt},     {"sltu", Op::kSltu},   {"xor", Op::kXor},
      {"srl", Op::kSrl},     {"sra", Op::kSra},     {"or", Op::kOr},       {"and", Op::kAnd},
      {"addiw", Op::kAddiw}, {"slliw", Op::kSlliw}, {"srliw", Op::kSrliw}, {"sraiw", Op::kSraiw},
      {"addw", Op::kAddw},   {"subw", Op::kSubw},   {"sllw", Op::kSllw},   {"srlw", Op::kSrlw},
      {"sraw", Op::kSraw},   {"mul", Op::kMul},     {"fld", Op::kFld},     {"fsd", Op::kFsd},
  };
  const std::string_view name = spec_at(d.spec).name;
  for (const auto& n : kNative)
    if (n.name == name) return n.op;
  return Op::kCall;
}

}  // namespace

// Offsets into Hart of what translations touch (Hart is not standard-layout, so they are
// measured on the live object rather than with offsetof).
struct HartLayout {
  int32_t x, f, mstatus, pc, block_pc, tlb_read, tlb_write, instret, instret_limit, irq_pin_mask,
      irq_soft;
  uint32_t fs_mask;  // mstatus.FS: 0 (off) makes F/D instructions illegal; set to 3 (dirty)
  uint64_t pins;  // the address of the hart's InterruptPins word
  static int32_t off(const Hart& h, const void* member) {
    return static_cast<int32_t>(reinterpret_cast<const uint8_t*>(member) -
                                reinterpret_cast<const uint8_t*>(&h));
  }
};

class Emitter : public Xbyak::CodeGenerator {
 public:
  Emitter(size_t room, uint8_t* at, const HartLayout& layout)
      : Xbyak::CodeGenerator(room, at), m_l(layout) {}

  void block(const DecodedInsn* first, uint32_t count);

 private:
  using Reg64 = Xbyak::Reg64;
  Xbyak::Address xreg(unsigned r) { return qword[rbp + disp(8 * r)]; }
  Xbyak::Address hart(int32_t off) { return qword[rbx + disp(off)]; }
  // rax = the pc of the instruction at pc_off in this block, plus `add`.
  void pc_to_rax(int64_t add) {
    mov(rax, hart(m_l.block_pc));
    if (add != 0) add_imm(rax, add);
  }
  void add_imm(const Reg64& r, int64_t v) {
    if (v >= INT32_MIN && v <= INT32_MAX) {
      add(r, static_cast<uint32_t>(static_cast<int32_t>(v)));
    } else {
      mov(rdx, static_cast<uint64_t>(v));
      add(r, rdx);
    }
  }
  void store_rd(const DecodedInsn& d, const Reg64& r) {
    if (d.rd != 32) mov(xreg(d.rd), r);
  }
  void call_handler(const DecodedInsn& d, uint32_t index);
  void memory(Op op, const DecodedInsn& d, uint32_t index);
  void branch(Op op, const DecodedInsn& d, uint32_t index);
  void alu(Op op, const DecodedInsn& d);

  const HartLayout& m_l;
  uint32_t m_count = 0;
  std::unique_ptr<Xbyak::Label[]> m_insn;  // per instruction: its code
  std::unique_ptr<Xbyak::Label[]> m_exit;  // per instruction: leave with its index
  Xbyak::Label m_epilogue;
  struct OutOfLine {
    const DecodedInsn* d = nullptr;
    uint32_t index = 0;
    Xbyak::Label slow, resume;
  };
  std::unique_ptr<OutOfLine[]> m_slow;
  uint32_t m_slow_count = 0;
};

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
  jz(m_exit[index], T_NEAR);
}

void Emitter::memory(Op op, const DecodedInsn& d, uint32_t index) {
  unsigned size = 8;
  bool is_store = false;
  switch (op) {
    case Op::kLb: case Op::kLbu: size = 1; break;
    case Op::kLh: case Op::kLhu: size = 2; break;
    case Op::kLw: case Op::kLwu: size = 4; break;
    case Op::kSb: size = 1; is_store = true; break;
    case Op::kSh: size = 2; is_store = true; break;
    case Op::kSw: size = 4; is_store = true; break;
    case Op::kSd: case Op::kFsd: is_store = true; break;
    default: break;
  }
  const bool fp = op == Op::kFld || op == Op::kFsd;
  OutOfLine& o = m_slow[m_slow_count++];
  o.d = &d;
  o.index = index;
  // Hart::load_fast()/store_fast(): the tag of the access's last byte (tlb_tag_last()) at
  // the index of its first, so a page-crossing access misses.
  if (fp) {
    // FS off: the handler raises the illegal-instruction exception.
    test(dword[rbx + disp(m_l.mstatus)], m_l.fs_mask);
    jz(o.slow, T_NEAR);
  }
  mov(rsi, xreg(d.rs1));
  if (d.imm != 0) add(rsi, static_cast<uint32_t>(static_cast<int32_t>(d.imm)));
  mov(rax, rsi);
  shr(rax, 12);
  and_(eax, 1023);
  shl(eax, 4);
  add(rax, hart(is_store ? m_l.tlb_write : m_l.tlb_read));
  lea(rdx, ptr[rsi + disp(size - 1)]);
  shr(rdx, 12);
  inc(rdx);
  cmp(rdx, qword[rax]);
  jne(o.slow, T_NEAR);
  add(rsi, qword[rax + 8]);
  if (is_store) {
    mov(rax, fp ? qword[rbx + disp(m_l.f + 8 * d.rs2)] : xreg(d.rs2));
    switch (size) {
      case 1: mov(byte[rsi], al); break;
      case 2: mov(word[rsi], ax); break;
      case 4: mov(dword[rsi], eax); break;
      default: mov(qword[rsi], rax); break;
    }
  } else {
    switch (op) {
      case Op::kLb: movsx(rax, byte[rsi]); break;
      case Op::kLh: movsx(rax, word[rsi]); break;
      case Op::kLw: movsxd(rax, dword[rsi]); break;
      case Op::kLbu: movzx(eax, byte[rsi]); break;
      case Op::kLhu: movzx(eax, word[rsi]); break;
      case Op::kLwu: mov(eax, dword[rsi]); break;
      default: mov(rax, qword[rsi]); break;
    }
    if (fp) {
      mov(qword[rbx + disp(m_l.f + 8 * d.rd)], rax);  // put_d(): raw bits, FS dirty
      or_(dword[rbx + disp(m_l.mstatus)], m_l.fs_mask);
    } else {
      store_rd(d, rax);
    }
  }
  L(o.resume);
}

void Emitter::branch(Op op, const DecodedInsn& d, uint32_t index) {
  Xbyak::Label not_taken;
  mov(rax, xreg(d.rs1));
  cmp(rax, xreg(d.rs2));
  switch (op) {
    case Op::kBeq: jne(not_taken, T_NEAR); break;
    case Op::kBne: je(not_taken, T_NEAR); break;
    case Op::kBlt: jge(not_taken, T_NEAR); break;
    case Op::kBge: jl(not_taken, T_NEAR); break;
    case Op::kBltu: jae(not_taken, T_NEAR); break;
    default: jb(not_taken, T_NEAR); break;  // bgeu
  }
  // Taken. To an instruction of this block (DecodedInsn::rs3), as the interpreter's
  // branch_in_block() (decode.h) does, with the same instret bookkeeping: forward, straight
  // there; back (a loop), there while the loop stays below the instret limit and no
  // interrupt or stop request is pending, else out as any taken branch.
  const int distance = d.rs3 == 0 ? 0 : d.rs3 - DecodedInsn::kInBlock;
  const int64_t target = static_cast<int64_t>(index) + distance;
  if (d.rs3 != 0 && target >= 0 && target < static_cast<int64_t>(m_count)) {
    const auto t = static_cast<uint32_t>(target);
    if (distance > 0) {
      if (distance > 1) sub(hart(m_l.instret), static_cast<uint32_t>(distance - 1));
      jmp(m_insn[t], T_NEAR);
    } else {
      Xbyak::Label leave;
      mov(rax, hart(m_l.instret));
      add(rax, static_cast<uint32_t>(1 - distance));
      cmp(rax, hart(m_l.instret_limit));
      jae(leave, T_NEAR);
      mov(rcx, m_l.pins);
      mov(rcx, qword[rcx]);
      and_(rcx, hart(m_l.irq_pin_mask));
      or_(rcx, hart(m_l.irq_soft));
      jnz(leave, T_NEAR);
      mov(hart(m_l.instret), rax);
      jmp(m_insn[t], T_NEAR);
      L(leave);
    }
  }
  pc_to_rax(d.pc_off + d.imm);
  mov(hart(m_l.pc), rax);
  jmp(m_exit[index], T_NEAR);
  L(not_taken);
}

void Emitter::alu(Op op, const DecodedInsn& d) {
  const auto imm32 = static_cast<uint32_t>(static_cast<int32_t>(d.imm));
  const auto shamt = static_cast<uint8_t>(d.imm & 63);
  if (d.rd == 32) return;  // writes x0: no effect (these cannot trap)
  switch (op) {
    case Op::kLui: mov(rax, static_cast<uint64_t>(d.imm)); break;
    case Op::kAuipc: pc_to_rax(d.pc_off + d.imm); break;
    case Op::kAddi: mov(rax, xreg(d.rs1)); if (d.imm) add(rax, imm32); break;
    case Op::kXori: mov(rax, xreg(d.rs1)); xor_(rax, imm32); break;
    case Op::kOri: mov(rax, xreg(d.rs1)); or_(rax, imm32); break;
    case Op::kAndi: mov(rax, xreg(d.rs1)); and_(rax, imm32); break;
    case Op::kSlti:
    case Op::kSltiu:
      mov(rcx, xreg(d.rs1));
      xor_(eax, eax);
      cmp(rcx, imm32);
      if (op == Op::kSlti) setl(al);
      else setb(al);
      break;
    case Op::kSlli: mov(rax, xreg(d.rs1)); shl(rax, shamt); break;
    case Op::kSrli: mov(rax, xreg(d.rs1)); shr(rax, shamt); break;
    case Op::kSrai: mov(rax, xreg(d.rs1)); sar(rax, shamt); break;
    case Op::kAdd: mov(rax, xreg(d.rs1)); add(rax, xreg(d.rs2)); break;
    case Op::kSub: mov(rax, xreg(d.rs1)); sub(rax, xreg(d.rs2)); break;
    case Op::kXor: mov(rax, xreg(d.rs1)); xor_(rax, xreg(d.rs2)); break;
    case Op::kOr: mov(rax, xreg(d.rs1)); or_(rax, xreg(d.rs2)); break;
    case Op::kAnd: mov(rax, xreg(d.rs1)); and_(rax, xreg(d.rs2)); break;
    case Op::kMul: mov(rax, xreg(d.rs1)); imul(rax, xreg(d.rs2)); break;
    case Op::kSlt:
    case Op::kSltu:
      mov(rcx, xreg(d.rs1));
      xor_(eax, eax);
      cmp(rcx, xreg(d.rs2));
      if (op == Op::kSlt) setl(al);
      else setb(al);
      break;
    case Op::kSll: mov(rcx, xreg(d.rs2)); mov(rax, xreg(d.rs1)); shl(rax, cl); break;
    case Op::kSrl: mov(rcx, xreg(d.rs2)); mov(rax, xreg(d.rs1)); shr(rax, cl); break;
    case Op::kSra: mov(rcx, xreg(d.rs2)); mov(rax, xreg(d.rs1)); sar(rax, cl); break;
    case Op::kAddiw: mov(rax, xreg(d.rs1)); add(eax, imm32); movsxd(rax, eax); break;
    case Op::kSlliw: mov(rax, xreg(d.rs1)); shl(eax, shamt & 31); movsxd(rax, eax); break;
    case Op::kSrliw: mov(rax, xreg(d.rs1)); shr(eax, shamt & 31); movsxd(rax, eax); break;
    case Op::kSraiw: mov(rax, xreg(d.rs1)); sar(eax, shamt & 31); movsxd(rax, eax); break;
    case Op::kAddw: mov(rax, xreg(d.rs1)); add(eax, dword[rbp + disp(8 * d.rs2)]); movsxd(rax, eax); break;
    case Op::kSubw: mov(rax, xreg(d.rs1)); sub(eax, dword[rbp + disp(8 * d.rs2)]); movsxd(rax, eax); break;
    case Op::kSllw:
      mov(rcx, xreg(d.rs2)); mov(rax, xreg(d.rs1)); shl(eax, cl); movsxd(rax, eax); break;
    case Op::kSrlw:
      mov(rcx, xreg(d.rs2)); mov(rax, xreg(d.rs1)); shr(eax, cl); movsxd(rax, eax); break;
    case Op::kSraw:
      mov(rcx, xreg(d.rs2)); mov(rax, xreg(d.rs1)); sar(eax, cl); movsxd(rax, eax); break;
    default: return;
  }
  mov(xreg(d.rd), rax);
}

void Emitter::block(const DecodedInsn* first, uint32_t count) {
  m_count = count;
  m_insn.reset(new Xbyak::Label[count + 1]);
  m_exit.reset(new Xbyak::Label[count + 1]);
  m_slow.reset(new OutOfLine[count]);
  // Three pushes after the return address: rsp is 16-byte aligned for the calls.
  push(rbx);
  push(rbp);
  push(r12);
  mov(rbx, rdi);
  lea(rbp, ptr[rdi + disp(m_l.x)]);
  for (uint32_t i = 0; i < count; ++i) {
    const DecodedInsn& d = first[i];
    const Op op = op_of(d);
    L(m_insn[i]);
    switch (op) {
      case Op::kCall:
        call_handler(d, i);
        break;
      case Op::kJal:
        pc_to_rax(d.pc_off + d.len);
        store_rd(d, rax);
        add_imm(rax, d.imm - d.len);
        mov(hart(m_l.pc), rax);
        jmp(m_exit[i], T_NEAR);
        break;
      case Op::kJalr:
        mov(rcx, xreg(d.rs1));
        if (d.imm) add(rcx, static_cast<uint32_t>(static_cast<int32_t>(d.imm)));
        and_(rcx, 0xfffffffeu);  // sign-extended: ~1
        pc_to_rax(d.pc_off + d.len);
        store_rd(d, rax);
        mov(hart(m_l.pc), rcx);
        jmp(m_exit[i], T_NEAR);
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
      default:
        alu(op, d);
        break;
    }
  }
  // Ran to the end: pc past the block (the block_end() entry's offset).
  pc_to_rax(first[count].pc_off);
  mov(hart(m_l.pc), rax);
  mov(eax, count);
  L(m_epilogue);
  pop(r12);
  pop(rbp);
  pop(rbx);
  ret();
  // Out of line: the slow paths of loads and stores (the handler, which may trap), then
  // the exits.
  for (uint32_t s = 0; s < m_slow_count; ++s) {
    OutOfLine& o = m_slow[s];
    L(o.slow);
    call_handler(*o.d, o.index);
    jmp(o.resume, T_NEAR);
  }
  for (uint32_t i = 0; i < count; ++i) {
    L(m_exit[i]);
    mov(eax, i);
    jmp(m_epilogue, T_NEAR);
  }
}

Result<std::unique_ptr<Translator>> Translator::create(Hart& hart, size_t cache_bytes) {
  size_t size = cache_bytes < kMinCacheBytes ? kMinCacheBytes : cache_bytes;
  size = (size + 4095) & ~size_t{4095};
  // Reserved, not committed: the host backs pages only as code is written to them.
  void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE | PROT_EXEC,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED)
    return Error::format("jit: cannot map a {} byte code cache: {}", size, std::strerror(errno));
  return std::unique_ptr<Translator>(new Translator(hart, static_cast<uint8_t*>(p), size));
}

Translator::Translator(Hart& hart, uint8_t* base, size_t size)
    : m_hart(hart), m_base(base), m_size(size) {}

Translator::~Translator() { munmap(m_base, m_size); }

void Translator::reset() {
  m_used = 0;
  ++m_generation;
  m_stats.bytes_used = 0;
}

BlockFn Translator::translate(const DecodedInsn* first, uint32_t count) {
  if (m_size - m_used < kMaxBlockCode) {
    reset();
    ++m_stats.flushes;
  }
  HartLayout layout{};
  layout.x = HartLayout::off(m_hart, &m_hart.m_x[0]);
  layout.f = HartLayout::off(m_hart, &m_hart.m_f[0]);
  layout.mstatus = HartLayout::off(m_hart, &m_hart.m_mstatus);
  layout.fs_mask = static_cast<uint32_t>(Hart::kMstatusFS);
  layout.pc = HartLayout::off(m_hart, &m_hart.m_pc);
  layout.block_pc = HartLayout::off(m_hart, &m_hart.m_block_pc);
  layout.tlb_read = HartLayout::off(m_hart, &m_hart.m_tlb_read);
  layout.tlb_write = HartLayout::off(m_hart, &m_hart.m_tlb_write);
  layout.instret = HartLayout::off(m_hart, &m_hart.m_instret);
  layout.instret_limit = HartLayout::off(m_hart, &m_hart.m_instret_limit);
  layout.irq_pin_mask = HartLayout::off(m_hart, &m_hart.m_irq_pin_mask);
  layout.irq_soft = HartLayout::off(m_hart, &m_hart.m_irq_soft);
  layout.pins = reinterpret_cast<uintptr_t>(m_hart.pins().raw_address());
  uint8_t* at = m_base + m_used;
  Xbyak::ClearError();
  Emitter e(m_size - m_used, at, layout);
  e.block(first, count);
  if (Xbyak::GetError() != 0) {
    Xbyak::ClearError();
    return nullptr;
  }
  const size_t bytes = e.getSize();
  m_used += (bytes + 15) & ~size_t{15};
  ++m_stats.blocks;
  m_stats.bytes_used = m_used;
  return reinterpret_cast<BlockFn>(at);
}

}  // namespace doppel::rv64::jit
#endif  // __x86_64__
