// The block translator (issue 9): turns a decoded block of the interpreter (hart.cpp's
// Block, decode.h's DecodedInsn) into x86-64 host code with xbyak.
//
// The one instruction table (STYLE.md rule 8) stays the semantics: an instruction the
// translator does not emit natively becomes a call to its InsnSpec::handler with its
// DecodedInsn, so every instruction works; the native forms (integer ALU, branches, jumps,
// loads and stores through the TLB) are the fast paths, added by measurement. A loop
// inside a block whose body is straight-line code looks up the pages of its loads and
// stores that walk by a constant stride once at its head, and runs the passes that stay
// in them without TLB checks (translator.cpp: Emitter::Hoist).
//
// Contract with Hart::run_blocks(), which calls a translation exactly where it would run
// the block threaded, with the same state set up (m_block_pc, m_instret = count before the
// block's last instruction, m_stopped clear). A translation returns the index of the
// instruction where the block left, like the interpreter's m_stop: an index < count is an
// instruction whose semantics returned false (pc set, or an exception / illegal /
// WFI recorded in m_stopped); count means the block ran to its end (pc set past it). So
// the run loop's bookkeeping of instret, traps and interrupts is the interpreter's own,
// and between blocks the JIT holds no architectural state: snapshots, migration and the
// debugger never see it.
//
// Chaining: where a translation leaves for a known next pc (the end of the block, a jump, a
// taken branch out of it), it goes on in the next translation's chained entry when it knows
// it under the hart's current chain key (Hart::m_chain_key: the fetch context; bumped
// whenever a block is dropped or evicted, on every code cache flush and on every TLB
// flush):
//  - an indirect jump (jalr) looks its pc up in a small jump cache of recent entries
//    (remember(); direct-mapped by pc);
//  - a direct one (jal, a taken branch, the block's end: pc = m_block_pc + a constant) has
//    a patched link, a LinkSlot after its translation: the chain key it was patched under,
//    the pc and the chained entry to jump to. Until the key matches it asks the link stub,
//    which looks the pc up in the jump cache as above and patches the slot (data, not
//    code). Into the block's own page the key is the whole test (as QEMU's goto_tb: the
//    target's physical address is then the same at every virtual address the block runs
//    at); into another page, whose physical address depends on the virtual one the block
//    runs at, the pc must match too: a chain key fixes the mapping from virtual to physical
//    addresses, so the pair names one translation, as it does in the jump cache.
// The chained entry, when its block fits below the instret limit (Hart::m_jit_limit, which
// is 0 while an interrupt or stop request may be pending), does the part of the run loop's
// bookkeeping the block needs (m_block_pc, m_instret) and runs the block; otherwise it
// leaves as the jumping translation would have, as described above. Every way back to the
// run loop sets m_block (an exit to its own block; a chain that could not go on to the one
// that jumped), so an index returned refers to the block in m_block, the last one run.
//
// The code cache is one mapping of a fixed size, filled from the start; when a block does
// not fit, the whole cache is dropped (generation() changes, making every Block's
// translation stale) and filling starts again. Translations depend only on the decoded
// instructions (the guest physical bytes) and read privilege, paging and TLB state at run
// time, so the interpreter's decode cache key (physical address) is theirs too, and its
// invalidation (fence.i, a decode cache flush, a slot reused) is theirs.
//
// Threads: one Translator per hart, used only by the hart's thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "base/result.h"

namespace doppel::rv64 {

class Hart;
struct DecodedInsn;

namespace jit {

// A translated block: returns the index where it left (see the top).
using BlockFn = uint32_t (*)(Hart&);

struct Stats {
  uint64_t blocks = 0;       // translations made
  uint64_t flushes = 0;      // whole-cache drops because it was full
  uint64_t bytes_used = 0;   // code bytes in the cache now
};

// A jump cache entry (see the top; 32 bytes, the layout the emitted code reads).
struct JumpEntry {
  uint64_t va = ~0ull;  // never a pc (pcs are even)
  uint64_t key = 0;
  const void* chained = nullptr;  // the translation's chained entry (see the top)
  uint64_t pad = 0;
};
static_assert(sizeof(JumpEntry) == 32);

// A direct way out's patched link, in the code cache after its translation (see the top).
struct LinkSlot {
  uint64_t key;    // the chain key it was patched under
  const void* to;  // the chained entry it jumps to
  uint64_t va;     // the pc it was patched for (tested by ways out into another page)
  uint64_t pad;
};
static_assert(sizeof(LinkSlot) == 32);

class Translator {
 public:
  static constexpr size_t kJumpEntries = 4096;
  static constexpr size_t kMinCacheBytes = 256 * 1024;
  // cache_bytes: the code cache's size (rounded up to pages; at least kMinCacheBytes).
  static Result<std::unique_ptr<Translator>> create(Hart& hart, size_t cache_bytes);
  ~Translator();
  Translator(const Translator&) = delete;
  Translator& operator=(const Translator&) = delete;

  // Host code for `count` decoded instructions at `first` (followed by their block_end()
  // entry, whose pc_off is the block's length). The instructions must outlive the
  // translation (they do: both die with the decode cache's block). nullptr only if a
  // block cannot be emitted even into an empty cache (never expected).
  // `block` is the Hart::Block, page_offset its first pc's offset in its 4 KiB page.
  BlockFn translate(const void* block, const DecodedInsn* first, uint32_t count,
                    uint32_t page_offset);

  // Notes that `fn`, a translation, runs at pc `va` under chain key `key` (see the top).
  void remember(uint64_t va, uint64_t key, BlockFn fn);

  // Changes whenever translations were dropped (cache full, reset()).
  uint64_t generation() const { return m_generation; }
  // Drops every translation (the decode cache they hang off was cleared).
  void reset();

  const Stats& stats() const { return m_stats; }
  size_t cache_bytes() const { return m_size; }

 private:
  Translator(Hart& hart, uint8_t* base, size_t size);
  BlockFn emit(const void* block, const DecodedInsn* first, uint32_t count,
               uint32_t page_offset);  // translate() into the space left
  Hart& m_hart;
  std::unique_ptr<JumpEntry[]> m_jump = std::make_unique<JumpEntry[]>(kJumpEntries);
  size_t m_chained_offset = 0;  // a translation's chained entry (the same in each)
  // The code every translation shares (translator.cpp's Emitter::stubs()), at the start of
  // the cache; emitted again after each reset.
  const uint8_t* m_chain_stub = nullptr;
  const uint8_t* m_link_stub = nullptr;
  const uint8_t* m_link_page_stub = nullptr;
  const uint8_t* m_fail_stub = nullptr;
  const uint8_t* m_epilogue_stub = nullptr;
  size_t m_stub_bytes = 0;
  uint8_t* m_base;
  size_t m_size;
  size_t m_used = 0;
  uint64_t m_generation = 1;
  Stats m_stats;
};

}  // namespace jit
}  // namespace doppel::rv64
