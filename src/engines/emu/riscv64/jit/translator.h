// The block translator (issue 9): turns a decoded block of the interpreter (hart.cpp's
// Block, decode.h's DecodedInsn) into x86-64 host code with xbyak.
//
// The one instruction table (STYLE.md rule 8) stays the semantics: an instruction the
// translator does not emit natively becomes a call to its InsnSpec::handler with its
// DecodedInsn, so every instruction works; the native forms (integer ALU, branches, jumps,
// loads and stores through the TLB) are the fast paths, added by measurement.
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
// taken branch out of it), it looks that pc up in a small jump cache of recent entries
// (remember(); direct-mapped by pc) and, when the entry was made under the hart's current
// chain key (Hart::m_chain_key: the fetch context; bumped whenever a block is dropped or
// evicted, and on every code cache flush), nothing is pending (no interrupt, stop request
// or stopped state) and the next block fits below the instret limit, does the run loop's
// bookkeeping itself (m_block, m_block_first, m_block_pc, m_instret, as run_translated()
// would) and jumps straight into the next translation's body. Otherwise it leaves as
// described above. So an index returned refers to the block in m_block, the last one run.
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

// A jump cache entry (see the top; 64 bytes, the layout the emitted code reads).
struct JumpEntry {
  uint64_t va = ~0ull;  // never a pc (pcs are even)
  uint64_t key = 0;
  const void* body = nullptr;  // the translation past its prologue
  void* block = nullptr;       // the Hart::Block
  const DecodedInsn* first = nullptr;
  uint64_t count = 0;
  uint64_t pad[2] = {};
};
static_assert(sizeof(JumpEntry) == 64);

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
  BlockFn translate(const DecodedInsn* first, uint32_t count);

  // Notes that `fn`, the translation of `block` (count instructions at first), runs at pc
  // `va` under chain key `key` (see the top).
  void remember(uint64_t va, uint64_t key, void* block, const DecodedInsn* first,
                uint32_t count, BlockFn fn);

  // Changes whenever translations were dropped (cache full, reset()).
  uint64_t generation() const { return m_generation; }
  // Drops every translation (the decode cache they hang off was cleared).
  void reset();

  const Stats& stats() const { return m_stats; }
  size_t cache_bytes() const { return m_size; }

 private:
  Translator(Hart& hart, uint8_t* base, size_t size);
  BlockFn emit(const DecodedInsn* first, uint32_t count);  // translate() into the space left
  Hart& m_hart;
  std::unique_ptr<JumpEntry[]> m_jump = std::make_unique<JumpEntry[]>(kJumpEntries);
  size_t m_body_offset = 0;  // the prologue's length
  // The code every translation shares (translator.cpp's Emitter::stubs()), at the start of
  // the cache; emitted again after each reset.
  const uint8_t* m_chain_stub = nullptr;
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
