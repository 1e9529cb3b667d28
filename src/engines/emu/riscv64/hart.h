// One RV64IMAFDC hart (Zicsr, Zifencei, Zicntr; M/S/U modes; Sv39/Sv48) as an interpreter
// over a decoded-block cache keyed by physical PC.
//
// Two ways to drive it:
//  - The machine (EmuEngine) calls run_engine(): traps go to the guest's trap vectors,
//    interrupts are taken from pins(), WFI sleeps on pins().
//  - A user-mode runner (difftest) sets exit_on_trap(true), puts the hart in U-mode with
//    satp = 0, and calls step(): every exception (ECALL, faults, illegal instruction) is
//    returned to the caller as a Trap value with pc left at the trapping instruction, so
//    the caller can service an ECALL, set_pc(pc + 4) and call step() again.
//
// Threads: a Hart belongs to one host thread (its vCPU thread); only pins() may be touched
// from other threads. Guest RAM is shared with other harts: AMOs and LR/SC use host atomics.
//
// Dirty pages: every store (and AMO, SC, and the page walker's A/D update) marks its page in
// GuestMemory's dirty bitmap, at no cost on the store fast path: as with QEMU's
// TLB_NOTDIRTY, a page enters the write TLB only on a store's slow path, after it was marked,
// so later stores to it need not mark again. GuestMemory::clear_dirty() (called only while
// every hart is paused: outside run_engine() and step()) bumps the memory's dirty
// generation; run_engine() and step() compare it on entry and drop every write TLB entry
// when it changed (drop_write_tlb()), so the next store to each page takes the slow path and
// marks it again. No call from the VMM is needed; flush_tlb() also works on a paused hart.
//
// Self-modifying code: a page the hart decoded code from is a code page (one bit per page
// of RAM) and has no write TLB entry, so every store to it takes the slow path, which drops
// the page's decoded blocks (and their translations) and ends the storing instruction's
// block, as QEMU's TCG does: the next instruction is fetched anew, also without fence.i.
// AMOs drop the blocks too but do not end the block. Per hart: another hart's stores reach
// this hart's cache through fence.i (SBI's remote fence.i), as the ISA requires, which
// drops every block; the VMM's and devices' writes into RAM (DMA) too. The only hart of
// its VM has no other hart's stores to see, so its fence.i drops only the code pages
// GuestMemory saw written since they were decoded (set_sole_hart()): Linux runs fence.i
// whenever it maps a page of a program, hundreds of times in a boot.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "base/result.h"
#include "base/zero_pages.h"
#include "core/bus.h"
#include "core/guest_memory.h"
#include "core/vcpu_debug.h"
#include "engines/emu/riscv64/interrupt_pins.h"
#include "engines/emu/riscv64/timebase.h"

namespace doppel::rv64 {

enum class Priv : uint8_t { kU = 0, kS = 1, kM = 3 };

// Exception causes (privileged spec 3.1.15, mcause with the interrupt bit clear).
enum class Exception : uint64_t {
  kInsnMisaligned = 0,
  kInsnAccessFault = 1,
  kIllegalInsn = 2,
  kBreakpoint = 3,
  kLoadMisaligned = 4,
  kLoadAccessFault = 5,
  kStoreMisaligned = 6,  // also AMO
  kStoreAccessFault = 7,
  kEcallFromU = 8,
  kEcallFromS = 9,
  kEcallFromM = 11,
  kInsnPageFault = 12,
  kLoadPageFault = 13,
  kStorePageFault = 15,
};
constexpr uint64_t kInterruptBit = 1ull << 63;

// A trap as a value: cause as mcause encodes it (bit 63 set for interrupts), tval as mtval
// would hold it, pc of the trapping instruction.
struct Trap {
  uint64_t cause = 0;
  uint64_t tval = 0;
  uint64_t pc = 0;
  bool is_interrupt() const { return (cause & kInterruptBit) != 0; }
};

// Why step() returned.
struct StepResult {
  enum class Kind {
    kTrap,     // `trap` is set (exit_on_trap mode only)
    kBudget,   // ran max_instructions without a trap
    kWfi,      // a WFI with no interrupt pending (exit_on_trap mode only)
  };
  Kind kind = Kind::kBudget;
  Trap trap;
  uint64_t executed = 0;  // instructions executed in this call
};

// Why run_engine() returned.
enum class EngineExit { kKicked, kCrash };

// Plain, versioned register state (rule 9). Version 2 adds the mcycle/minstret offsets.
// Left out on purpose: an LR reservation (restore() drops it; the SC fails and the guest
// retries, as after any lost reservation), the interrupt pins (the CLINT's and PLIC's
// restore() drive them), the `time` CSR (the Timebase's).
struct HartState {
  static constexpr uint32_t kVersion = 2;
  uint32_t version = kVersion;
  uint64_t pc = 0;
  std::array<uint64_t, 32> x{};
  std::array<uint64_t, 32> f{};
  uint8_t priv = 3;
  uint8_t frm = 0;
  uint8_t fflags = 0;
  uint64_t mstatus = 0, medeleg = 0, mideleg = 0, mie = 0, mip = 0, mtvec = 0, mscratch = 0,
           mepc = 0, mcause = 0, mtval = 0, mcounteren = 0, menvcfg = 0, mcountinhibit = 0;
  uint64_t stvec = 0, sscratch = 0, sepc = 0, scause = 0, stval = 0, scounteren = 0,
           senvcfg = 0, satp = 0;
  uint64_t instret = 0;
  int64_t cycle_offset = 0;    // mcycle = instret + cycle_offset
  int64_t instret_offset = 0;  // minstret = instret + instret_offset
  std::array<uint8_t, 16> pmpcfg{};
  std::array<uint64_t, 16> pmpaddr{};
};

struct DecodedInsn;   // decode.h
struct SlowPathInsn;  // decode.h
class Hart;
namespace jit {
class Translator;  // jit/translator.h
}
// An instruction's semantics (InsnSpec::handler) or its threaded form, which the
// interpreter runs (InsnSpec::exec; decode.h threaded()). Semantics return true when the
// instruction completed and the next one follows at pc + length; false when it changed pc
// itself (taken branch, jump, trap taken, or an instruction that must end the block), in
// which case pc is already set, or when it called illegal().
using Handler = bool (*)(Hart&, const DecodedInsn&);

class Hart {
 public:
  Hart(GuestMemory& memory, const Bus& mmio, const Timebase& timebase, unsigned hart_id = 0);
  ~Hart();
  Hart(const Hart&) = delete;
  Hart& operator=(const Hart&) = delete;

  // ---- state, for runners, tests and debuggers ----
  uint64_t pc() const { return m_pc; }
  void set_pc(uint64_t pc) { m_pc = pc; }
  uint64_t x(unsigned i) const { return i == 0 ? 0 : m_x[i & 31]; }
  void set_x(unsigned i, uint64_t v) {
    if ((i & 31) != 0) m_x[i & 31] = v;
  }
  uint64_t f(unsigned i) const { return m_f[i & 31]; }  // raw 64 bits (NaN-boxed singles)
  void set_f(unsigned i, uint64_t v) { m_f[i & 31] = v; }
  Priv priv() const { return m_priv; }
  void set_priv(Priv p);
  unsigned hart_id() const { return m_hart_id; }

  // Debugger access to any implemented CSR by number, with no privilege checks and no
  // side effects beyond the architectural ones of a write. nullopt / false if the CSR does
  // not exist.
  std::optional<uint64_t> read_csr(uint16_t csr);
  bool write_csr(uint16_t csr, uint64_t value);

  // Exceptions come back from step() as values instead of entering the guest's handlers.
  void set_exit_on_trap(bool on) { m_exit_on_trap = on; }
  // For a user-mode runner: U-mode, satp = 0 (bare), mstatus.FS = Initial (F/D usable),
  // exit_on_trap on.
  void setup_user_mode();

  // Runs up to max_instructions (exactly: never more). In exit_on_trap mode an exception
  // stops execution with pc at the trapping instruction and nothing else changed (kTrap).
  // Interrupts pending and enabled in pins()/mip are taken by entering the guest handler
  // in both modes. WFI: kWfi in exit_on_trap mode when nothing is pending, else a no-op.
  StepResult step(uint64_t max_instructions);

  // The machine's loop: runs until kick() (pins().kick()) or an internal error. WFI sleeps.
  EngineExit run_engine();
  const std::string& crash_detail() const { return m_crash_detail; }

  InterruptPins& pins() { return m_pins; }

  // Writes "pc: disassembly" of each executed instruction to stderr (DOPPEL_TRACE=1).
  void set_trace(bool on) { m_trace = on; }
  // Writes one line per trap taken (cause, tval, epc, privilege change) to stderr
  // (DOPPEL_TRACE=traps).
  void set_trace_traps(bool on) { m_trace_traps = on; }

  // Drops every decoded block (after a host-side write to guest code, e.g. a loader).
  void flush_decode_cache();
  // Drops every TLB entry. From the hart's thread, or from another while the hart is paused.
  void flush_tlb();

  uint64_t instret() const { return m_instret; }

  // The block translator (jit/translator.h): blocks that ran `hot_runs` times threaded
  // (0: every block, at once) run as host code, translated into a code cache of
  // cache_bytes. Architectural behaviour is the interpreter's, instruction for
  // instruction; the translator holds no state between blocks. Call while the hart is not
  // running. The default threshold: Linux boots run most code a few times only, and
  // translating costs about as much as interpreting a block a few hundred times (boots to
  // the shell, five each, in turn: 0.74-1.21 s translating at 8 runs, 0.61-1.05 s at 16,
  // 0.46-0.53 s at 32, 0.43-0.74 s at 64, 0.40-0.60 s at 128, 0.37-0.49 s at 256,
  // 0.38-0.42 s at 512, 0.40-0.43 s at 1024);
  // (measured when Linux's fence.i still dropped every translation, also on one hart).
  static constexpr unsigned kJitHotRuns = 256;
  Result<void> enable_jit(size_t cache_bytes, unsigned hot_runs = kJitHotRuns);
  void disable_jit();
  bool jit_enabled() const { return m_jit != nullptr; }
  // Translations made, and whole code-cache drops (full), since enable_jit().
  uint64_t jit_blocks() const;
  uint64_t jit_flushes() const;
  // Stores that overwrote a page holding decoded code (its blocks dropped; hart.h top).
  uint64_t code_page_drops() const { return m_code_page_drops; }

  // ---- debugger (hart_debug.cpp) ----
  // va as a load at the current privilege would translate it (MPRV ignored; M-mode and
  // bare satp: identity), without setting A/D bits or checking permissions. False if the
  // page tables do not map it.
  bool debug_translate(uint64_t va, uint64_t& pa) const;
  // The machine's loop under a debugger, one instruction at a time: stops at a breakpoint
  // (before the instruction there), after an access to a watched range, after one
  // instruction if single_step (interrupts held off meanwhile), or at a kick. hold: only
  // waits for the kick. WFI sleeps as in run_engine().
  struct DebugRun {
    enum class Stop { kKicked, kBreakpoint, kStep, kWatch } stop = Stop::kKicked;
    uint64_t addr = 0;  // kWatch: the accessed address
    WatchKind kind = WatchKind::kWrite;  // kWatch: kWrite for a store, kRead for a load
  };
  DebugRun run_debug(const DebugControl& control);

  // Counters for GET /metrics, published by run_engine() after each slice of at most 2^20
  // instructions and before a WFI sleep, so any thread may read them while the hart runs.
  struct Stats {
    uint64_t instret = 0;
    uint64_t block_hits = 0;     // block lookups served by the decoded-block cache
    uint64_t block_misses = 0;   // blocks decoded because the cache did not hold them
    uint64_t cache_flushes = 0;  // whole-cache drops (arena full, fence.i, satp writes...)
    uint64_t code_page_drops = 0;  // a store into a page with decoded code dropped its blocks
    uint64_t jit_translations = 0;  // blocks translated (JIT on)
    uint64_t jit_flushes = 0;       // code cache drops because it was full
    uint64_t jit_code_bytes = 0;    // code cache bytes in use
  };
  Stats stats() const;

  HartState save() const;
  Result<void> restore(const HartState& state);

  // ---- used by instruction handlers (decode.h); not for runners ----
  // Threaded execution (decode.h threaded(); the inline ones are defined there).
  // enter() sets pc to the running instruction's address. leave() is where the running
  // block ends: at `d`, whose semantics returned false (pc is set), or at its block_end()
  // entry `d` (`at_end`). It runs the next block straight away when a chain knows it and
  // nothing needs the run loop's attention, else returns to run_blocks(), which reads
  // m_stop.
  inline uint64_t insn_pc(const DecodedInsn& d) const;  // the address of `d` in its block
  inline void enter(const DecodedInsn& d);
  bool leave(const DecodedInsn& d, bool at_end);
  [[gnu::noinline]] bool leave_trapped(const DecodedInsn& d);
  inline bool branch_in_block(const DecodedInsn& d);
  uint64_t& xr(unsigned i) { return m_x[i]; }  // i may be 32: the x0 write sink
  uint64_t& fr(unsigned i) { return m_f[i]; }

  // Memory access by instruction `d` as the current effective privilege sees it (MPRV
  // applied). On failure the trap is already raised (take_exception) and the caller returns
  // false.
  //
  // Given a plain DecodedInsn (the threaded fast path), only a TLB hit is served: anything
  // else defers (kSlowMem) and returns false, so that the handler makes no call and needs
  // no stack frame; its threaded form then runs the instruction again, out of line, as a
  // SlowPathInsn (decode.h), which takes the slow path. Loads and stores do not set pc on
  // entry (decode.h needs_pc()): the slow path, which may trap, does.
  //
  // The TLB check is one compare: the tag is that of the access's last byte, read at the
  // index of its first, so an access that crosses into the next page cannot match (that
  // page's number is never stored at this index) and takes the slow path.
  template <typename T>
  bool load(const DecodedInsn&, uint64_t va, T& out) {
    if (load_fast(va, out)) [[likely]]
      return true;
    m_stopped |= kSlowMem;
    return false;
  }
  template <typename T, typename Insn>
    requires std::is_same_v<Insn, SlowPathInsn>
  bool load(const Insn& d, uint64_t va, T& out) {
    if (load_fast(va, out)) return true;
    enter(d);
    const SlowLoad r = load_slow(va, sizeof(T));
    out = static_cast<T>(r.value);
    return r.ok;
  }
  template <typename T>
  bool store(const DecodedInsn&, uint64_t va, T value) {
    if (store_fast(va, value)) [[likely]]
      return true;
    m_stopped |= kSlowMem;
    return false;
  }
  template <typename T, typename Insn>
    requires std::is_same_v<Insn, SlowPathInsn>
  bool store(const Insn& d, uint64_t va, T value) {
    if (store_fast(va, value)) return true;
    enter(d);
    if (!store_slow(va, sizeof(T), static_cast<uint64_t>(value))) {
      m_code_written = false;  // trapped (part of a page-crossing store may have written)
      return false;
    }
    if (m_code_written) [[unlikely]] {
      // It overwrote decoded code: the block ends here (the store retired), and the next
      // instruction is decoded from memory again.
      m_code_written = false;
      m_pc += d.len;
      return false;
    }
    return true;
  }
  // Whether the running instruction's memory access deferred to its slow path; clears it.
  bool take_slow_mem() {
    const bool deferred = (m_stopped & kSlowMem) != 0;
    m_stopped &= static_cast<uint8_t>(~kSlowMem);
    return deferred;
  }
  // Host pointer for an aligned atomic access of `size` bytes (AMO, LR, SC), translated for
  // writing (and then marked dirty) unless is_lr. nullptr when a trap was raised.
  uint8_t* atomic_ptr(uint64_t va, unsigned size, bool is_lr);

  // Enters the guest's trap handler (or records the trap in exit_on_trap mode). Returns
  // false so handlers can `return h.take_exception(...)`.
  bool take_exception(Exception cause, uint64_t tval);
  // An illegal-instruction exception for the running instruction, raised by leave() as it
  // leaves the block: the handler's path to it is a plain return, not a call (which would
  // cost every fast path a stack frame). Returns false.
  bool illegal(const DecodedInsn&) {
    m_stopped |= kIllegal;
    return false;
  }

  // Zicsr: the CSR instruction's view (privilege, read-only and FS checks). False = illegal.
  bool csr_read(uint16_t csr, uint64_t& value);
  bool csr_write(uint16_t csr, uint64_t value);
  // The value csrrs/csrrc modify: for mip/sip, SEIP is the software-writable bit only, not
  // the PLIC's line ORed into reads (privileged spec 3.1.9), so an RMW cannot latch it.
  uint64_t csr_rmw_base(uint16_t csr, uint64_t read_value) const {
    if (csr == 0x344 || csr == 0x144)
      return (read_value & ~kMipSEIP) | (m_mip & kMipSEIP & (csr == 0x144 ? m_mideleg : ~0ull));
    return read_value;
  }

  // Privileged instructions.
  bool exec_mret(const DecodedInsn& d);
  bool exec_sret(const DecodedInsn& d);
  bool exec_wfi(const DecodedInsn& d);
  bool exec_sfence_vma(const DecodedInsn& d);
  bool exec_fence_i(const DecodedInsn& d);
  // The VM has no other hart (EmuEngine): fence.i need not drop the code no write reached,
  // since only this hart's stores (code_page_store()) and the VMM's writes into RAM
  // (GuestMemory::take_written()) can change it. With more harts, another one's stores may
  // go to a page this one decoded without passing through a slow path, so fence.i drops
  // every block.
  void set_sole_hart(bool sole) { m_sole_hart = sole; }

  // F/D helpers.
  bool fp_enabled() const { return (m_mstatus & kMstatusFS) != 0; }
  void fp_dirty() { m_mstatus |= kMstatusFS; }
  // Resolves an instruction's rm field (7 = DYN -> frm); false if the result is reserved.
  bool resolve_rm(unsigned rm_field, unsigned& rm) const {
    rm = rm_field == 7 ? m_frm : rm_field;
    return rm <= 4;
  }
  void add_fflags(uint8_t flags) { m_fflags = static_cast<uint8_t>(m_fflags | flags); }
  uint8_t fflags() const { return m_fflags; }

  // LR/SC reservation (SC is a compare-and-swap against the LR-loaded value).
  uint64_t m_lr_addr = ~0ull;
  uint64_t m_lr_value = 0;

  static constexpr uint64_t kMstatusSIE = 1ull << 1;
  static constexpr uint64_t kMstatusMIE = 1ull << 3;
  static constexpr uint64_t kMstatusSPIE = 1ull << 5;
  static constexpr uint64_t kMstatusMPIE = 1ull << 7;
  static constexpr uint64_t kMstatusSPP = 1ull << 8;
  static constexpr uint64_t kMstatusMPP = 3ull << 11;
  static constexpr uint64_t kMstatusFS = 3ull << 13;
  static constexpr uint64_t kMstatusMPRV = 1ull << 17;
  static constexpr uint64_t kMstatusSUM = 1ull << 18;
  static constexpr uint64_t kMstatusMXR = 1ull << 19;
  static constexpr uint64_t kMstatusTVM = 1ull << 20;
  static constexpr uint64_t kMstatusTW = 1ull << 21;
  static constexpr uint64_t kMstatusTSR = 1ull << 22;
  static constexpr uint64_t kMstatusUXL = 3ull << 32;
  static constexpr uint64_t kMstatusSXL = 3ull << 34;
  static constexpr uint64_t kMstatusSD = 1ull << 63;

 private:
  friend class HartTestPeer;
  friend class jit::Translator;  // reads the offsets of the members its code uses
  struct Block;
  struct DecodeCache;

  // Software TLB: per context (0 = M/bare, 1 = U, 2 = S, 3 = S with SUM) and access type,
  // direct-mapped over 4 KiB virtual pages; only RAM pages are cached. A write entry exists
  // only for a page marked dirty since the last GuestMemory::clear_dirty() (see the top).
  static constexpr unsigned kTlbSize = 1024;
  static constexpr unsigned kTlbRead = 0, kTlbWrite = 1, kTlbFetch = 2;
  struct TlbEntry {
    uint64_t tag = 0;      // tlb_tag(va); 0 (no tag): empty
    uintptr_t addend = 0;  // host = va + addend
  };
  struct TlbTables {
    TlbEntry entries[4][3][kTlbSize];
  };
  // The page's address with its low 12 bits set, so that no address has tag 0, and the
  // zeroed tables of a new hart are empty (ZeroPages). (The JIT computes it in two
  // instructions: lea and or.)
  static uint64_t tlb_tag(uint64_t va) { return va | 0xfff; }
  // tlb_tag() of the last byte of an access of `size` bytes at va. An access that wraps
  // past the top of the address space gets page 0's tag, which no entry at va's index
  // (the last) holds, so it takes the slow path.
  static uint64_t tlb_tag_last(uint64_t va, unsigned size) { return (va + (size - 1)) | 0xfff; }
  void tlb_fill(unsigned ctx, unsigned type, uint64_t va, uint64_t pa, uint8_t* host_page);
  // Code pages (see the top; hart.cpp). note_code_page(): a block was decoded from pa's
  // page (at host_page): marks it and drops its write TLB entries. code_page_store(): a
  // store or AMO to pa is about to write RAM: if its page is a code page, drops the
  // page's blocks, unmarks it and sets m_code_written.
  void note_code_page(uint64_t pa, const uint8_t* host_page);
  void code_page_store(uint64_t pa);
  // Drops the blocks decoded from the page at `page` (their translations with them).
  void drop_code_page(uint64_t page);
  // fence.i on the only hart: drops the code pages written since they were decoded
  // (GuestMemory::take_written()) instead of the whole cache.
  void drop_written_code();
  // run_debug(): a data access of `size` bytes at va (store or AMO if write) against the
  // watchpoints; records the first hit.
  void note_watch(uint64_t va, unsigned size, bool write);
  // Drops the write entries (after GuestMemory::clear_dirty()).
  void drop_write_tlb();
  // On entry to run_engine() and step(): drop_write_tlb() if the dirty bitmap was cleared
  // since this hart last looked.
  void sync_dirty_generation() {
    const uint64_t generation = m_memory.dirty_generation();
    if (generation != m_dirty_generation) [[unlikely]] {
      m_dirty_generation = generation;
      drop_write_tlb();
    }
  }
  enum class Access { kRead, kWrite, kFetch };

  template <typename T>
  bool load_fast(uint64_t va, T& out) const {
    const TlbEntry& e = m_tlb_read[(va >> 12) & (kTlbSize - 1)];
    if (e.tag != tlb_tag_last(va, sizeof(T))) return false;
    std::memcpy(&out, reinterpret_cast<const void*>(static_cast<uintptr_t>(va) + e.addend),
                sizeof(T));
    return true;
  }
  template <typename T>
  bool store_fast(uint64_t va, T value) {
    const TlbEntry& e = m_tlb_write[(va >> 12) & (kTlbSize - 1)];
    if (e.tag != tlb_tag_last(va, sizeof(T))) return false;
    std::memcpy(reinterpret_cast<void*>(static_cast<uintptr_t>(va) + e.addend), &value,
                sizeof(T));
    return true;
  }
  struct SlowLoad {
    uint64_t value;
    bool ok;
  };
  [[gnu::noinline]] SlowLoad load_slow(uint64_t va, unsigned size);
  bool load_bytes(uint64_t va, unsigned size, uint64_t& out);
  [[gnu::noinline]] bool store_slow(uint64_t va, unsigned size, uint64_t value);
  // Translates va for `access` at the given effective privilege. On success returns
  // nullopt and sets pa; otherwise the exception to raise.
  std::optional<Exception> translate(uint64_t va, Access access, Priv priv, bool sum,
                                     uint64_t& pa);
  void update_contexts();
  Priv effective_data_priv() const;

  // The block starting at pc; nullptr if fetching trapped.
  Block* fetch_block();
  Block* fetch_block_slow(uint64_t pa, const uint8_t* page);
  // Runs blocks until `budget` instructions were attempted (retired or trapped), an
  // exception was recorded (exit_on_trap), a WFI found nothing pending, or an interrupt
  // became takeable (or a bit of `stop_bits` rose in pins). Returns the attempted count.
  uint64_t run_blocks(uint64_t budget, uint64_t stop_bits);
  void run_translated(Block* b);
  // Recomputes m_irq_takeable after a change of privilege, mstatus, mie, mideleg or mip.
  void update_irq_mask();
  bool csr_get(uint16_t csr, uint64_t& value);  // no privilege checks
  bool csr_set(uint16_t csr, uint64_t value);
  uint64_t mstatus_value() const;
  void write_mstatus(uint64_t value, uint64_t writable);
  uint64_t mip() const { return m_mip | m_pins.pending(); }
  // Takes the highest-priority pending enabled interrupt, if any. True if one was taken.
  bool check_interrupts();
  void enter_trap(uint64_t cause, uint64_t tval);
  void trace(const DecodedInsn& d) const;
  bool counter_allowed(uint16_t csr) const;

  GuestMemory& m_memory;
  const Bus& m_mmio;
  const Timebase& m_timebase;
  InterruptPins m_pins;
  unsigned m_hart_id;

  uint64_t m_pc = 0;
  uint64_t m_x[33] = {};  // [32] is where writes to x0 land
  uint64_t m_f[32] = {};
  Priv m_priv = Priv::kM;
  uint8_t m_frm = 0;
  uint8_t m_fflags = 0;

  uint64_t m_mstatus = 0;
  uint64_t m_medeleg = 0, m_mideleg = 0, m_mie = 0, m_mip = 0, m_mtvec = 0, m_mscratch = 0;
  uint64_t m_mepc = 0, m_mcause = 0, m_mtval = 0, m_mcounteren = 0, m_menvcfg = 0;
  uint64_t m_mcountinhibit = 0;
  uint64_t m_stvec = 0, m_sscratch = 0, m_sepc = 0, m_scause = 0, m_stval = 0;
  uint64_t m_scounteren = 0, m_senvcfg = 0, m_satp = 0;
  std::array<uint8_t, 16> m_pmpcfg{};
  std::array<uint64_t, 16> m_pmpaddr{};
  // Retired instructions. While a block runs threaded, it holds the count before the
  // block's last instruction (the only one that can read it, as CSR instructions end
  // blocks), so m_instret + 1 - count + index is what retired before the entry at index.
  uint64_t m_instret = 0;
  int64_t m_cycle_offset = 0;    // mcycle = instret + offset
  int64_t m_instret_offset = 0;  // minstret = instret + offset

  unsigned m_data_ctx = 0;   // TLB context for loads/stores
  unsigned m_fetch_ctx = 0;  // TLB context for fetch
  // Filled since the last flush_tlb(): until then a flush has nothing to drop (and does not
  // touch the tables' pages).
  bool m_tlb_filled = false;
  ZeroPages<TlbTables> m_tlb_pages{1};
  TlbEntry (&m_tlb)[4][3][kTlbSize] = m_tlb_pages[0].entries;
  uint64_t m_fetch_pa[4][kTlbSize];  // guest physical page of each fetch entry
  TlbEntry* m_tlb_read = nullptr;    // m_tlb[m_data_ctx][kTlbRead]
  TlbEntry* m_tlb_write = nullptr;   // m_tlb[m_data_ctx][kTlbWrite]
  uint64_t m_dirty_generation = 0;   // m_memory.dirty_generation() when last synced

  // Counted by the vCPU thread (plain), published to m_published (relaxed atomics).
  uint64_t m_block_hits = 0, m_block_misses = 0, m_cache_flushes = 0;
  struct PublishedStats {
    std::atomic<uint64_t> instret{0}, block_hits{0}, block_misses{0}, cache_flushes{0},
        code_page_drops{0}, jit_translations{0}, jit_flushes{0}, jit_code_bytes{0};
  } m_published;
  void publish_stats();

  DecodeCache* m_cache;  // owned
  jit::Translator* m_jit = nullptr;  // owned; nullptr: the interpreter only
  unsigned m_jit_hot_runs = kJitHotRuns;
  Block* m_slots;         // m_cache's block table and instruction arena, for the fast path
  DecodedInsn* m_arena;
  // The running block (run_blocks(), leave()).
  Block* m_block = nullptr;
  const DecodedInsn* m_block_first = nullptr;
  uint64_t m_block_pc = 0;         // pc of its first instruction
  const DecodedInsn* m_stop = nullptr;  // where the last block left (leave())
  uint64_t m_instret_limit = 0;    // leave() chains only blocks that fit below this
  // The translations' limit (run_translated()): m_instret_limit, or 0 once an interrupt or
  // stop request may be pending, so generated code tests one word on its loops and chains.
  // pins() zeroes it when a bit rises (any thread); update_irq_mask() when one pending
  // becomes takeable. arm_jit_limit() sets it.
  std::atomic<uint64_t> m_jit_limit{0};
  void arm_jit_limit(uint64_t limit);
  // A translated loop's page checks, hoisted out of it (translator.cpp: Emitter::Hoist):
  // the TLB addends of its accesses and the instret where one would leave its page. Valid
  // only while that loop runs, so never state (snapshots, migration and the debugger
  // never need it).
  uint64_t m_jit_scratch[5] = {};
  uint64_t m_stop_bits = 0;        // run_blocks()'s stop_bits
  uint64_t m_irq_takeable = 0;  // mie bits that would be taken now if pending
  // What leave() tests between blocks (update_irq_mask()): a pending bit of pins() under
  // m_irq_pin_mask, or m_irq_soft, means an interrupt to take or a stop request.
  uint64_t m_irq_pin_mask = 0;  // m_irq_takeable | m_stop_bits
  uint64_t m_irq_soft = 0;      // m_mip & m_irq_takeable
  // Block chains (hart.cpp) are valid only under the key that recorded them: the fetch
  // context in the low bits, above it a generation, bumped when what a virtual pc fetches
  // in a context may have changed (TLB flushes, a decode cache flush, a block evicted from
  // its slot).
  static constexpr uint64_t kChainKeyStep = 4;
  uint64_t m_chain_key = 0;
  bool m_exit_on_trap = false;
  bool m_trap_pending = false;  // exit_on_trap: a trap was recorded
  Trap m_trap;
  // Why the last instruction stopped its block other than by a jump (leave() tests them all
  // at once): it raised an exception, it is about to raise an illegal-instruction one
  // (illegal()), or it was a WFI with nothing pending. kSlowMem (a memory access deferred
  // to its slow path, load()) never reaches leave(): the threaded form takes it first.
  static constexpr uint8_t kExcepted = 1, kIllegal = 2, kWfi = 4, kSlowMem = 8;
  uint8_t m_stopped = 0;
  bool m_code_written = false;  // code_page_store() dropped blocks; store() ends the block
  bool m_sole_hart = false;      // set_sole_hart()
  uint64_t m_code_page_drops = 0;
  bool m_trace = false;
  bool m_trace_traps = false;
  std::string m_crash_detail;
  // run_debug(): while watchpoints are set, no data page enters the TLB, so every load and
  // store takes its slow path, which calls note_watch(). m_irq_hold: a single step takes
  // no interrupt (update_irq_mask() sees none takeable).
  const std::vector<Watchpoint>* m_watchpoints = nullptr;
  bool m_watch_hit = false;
  uint64_t m_watch_addr = 0;
  bool m_watch_write = false;
  bool m_irq_hold = false;
  // A trap loop (enter_trap()): a fault at the first instruction of a trap vector, with one
  // cause, kTrapLoopLimit times in a row (garbage at the trap vector: the guest can never
  // make progress). Diagnostic only, not saved: a restore counts afresh.
  static constexpr unsigned kTrapLoopLimit = 1000;
  uint64_t m_last_trap_cause = UINT64_MAX;
  unsigned m_trap_repeats = 0;
  bool m_trap_loop = false;
};

}  // namespace doppel::rv64
