// The interpreter loop, decoded-block cache, traps and interrupts (privileged spec 3.1.6,
// 3.1.9, 3.3, 4.1.1).
#include "engines/emu/riscv64/hart.h"

#include <algorithm>
#include <bit>
#include <cstdio>
#include <memory>
#include <vector>


#include <fmt/format.h>

#include "base/zero_pages.h"
#include "engines/emu/riscv64/decode.h"
#include "engines/emu/riscv64/fpu_host.h"
#include "engines/emu/riscv64/jit/translator.h"

namespace doppel::rv64 {

namespace {
constexpr unsigned kMaxBlock = 64;
constexpr size_t kBlockSlots = 1u << 14;
constexpr size_t kArenaInsns = 1u << 18;
// Instructions leave() runs in chained blocks before returning to the run loop: bounds the
// recursion (about one frame per instruction and per block) in builds where the threaded
// code's tail calls are real calls.
constexpr uint64_t kMaxChainInsns = 512;
}  // namespace

// A block: up to kMaxBlock instructions decoded from one physical page, ending at a jump
// or system instruction, followed in the arena by a block_end() entry. Keyed by the guest
// physical address of its first instruction, so a later JIT can hang translated code off
// the same entries.
//
// Chains: the blocks that ran after this one, by virtual pc, so the next block is found
// without the fetch TLB and slot lookups (whose tables are too big for the host's L1). They
// are valid under the chain key that recorded them (Hart::m_chain_key): in that fetch
// context and generation the same pc fetches the same physical block, and that block is
// still in its slot (evictions bump the generation).
//
// All-zero bytes are an empty block (the slot table is ZeroPages): key 0 is no physical
// address, and chain key 0 is never current.
struct Hart::Block {
  struct Chain {
    uint64_t va = ~0ull;  // never matches a pc (pcs are even)
    Block* block = nullptr;
  };
  uint64_t key = 0;                    // key_of(physical address of the first instruction)
  const DecodedInsn* first = nullptr;  // in the arena
  uint32_t count = 0;                  // instructions, without the block_end() entry
  uint32_t runs = 0;                   // times run threaded (the JIT's hotness count)
  uint64_t chain_key = 0;              // Hart::m_chain_key when `next` was recorded
  Chain next[2];                       // most recently recorded first
  // Its translation (JIT on), valid while the translator's generation is jit_generation.
  jit::BlockFn jit = nullptr;
  uint64_t jit_generation = 0;

  static uint64_t key_of(uint64_t pa) { return ~pa; }  // never 0: a pc is even
};

struct Hart::DecodeCache {
  ZeroPages<Block> slots{kBlockSlots};  // all empty, and no page touched until used
  // The host commits arena pages only as code is seen, in huge pages: a boot decodes
  // megabytes of it. The last two entries hold an instruction that crosses a page (executed
  // uncached).
  ZeroPages<DecodedInsn> arena{kArenaInsns + 2, PageSize::kHuge};
  size_t used = 0;
  Block straddle{0, arena.get() + kArenaInsns, 1, 0, 0, {}, nullptr, 0};
  DecodedInsn single[2]{};  // one instruction run on its own (tracing, budget tails)
  Block single_block{0, single, 1, 0, 0, {}, nullptr, 0};
  // Slots filled since the last clear, so that a clear (fence.i, which Linux runs often)
  // touches those only; past kBlockSlots entries, clear() sweeps the table instead.
  std::vector<uint32_t> filled;
  // Code pages (hart.h): one bit per 4 KiB page from the lowest RAM address up to the
  // highest; a bit may outlive the page's blocks (a clear() keeps them), which costs the next
  // store to the page one pass over its slots.
  uint64_t code_base = 0;
  uint64_t code_pages = 0;
  std::unique_ptr<ZeroPages<uint64_t>> code_bits;

  void fill(size_t slot) {
    if (filled.size() < kBlockSlots) filled.push_back(static_cast<uint32_t>(slot));
  }
  void clear() {
    if (filled.size() < kBlockSlots) {
      for (uint32_t i : filled) slots[i].key = 0;
    } else {
      for (size_t i = 0; i < slots.size(); ++i) slots[i].key = 0;
    }
    filled.clear();
    used = 0;
  }
};

Hart::Hart(GuestMemory& memory, const Bus& mmio, const Timebase& timebase, unsigned hart_id)
    : m_memory(memory), m_mmio(mmio), m_timebase(timebase), m_hart_id(hart_id),
      m_cache(new DecodeCache), m_slots(m_cache->slots.get()), m_arena(m_cache->arena.get()) {
  m_pins.wake_limit(&m_jit_limit);
  m_mstatus = kMstatusUXL & (2ull << 32);
  m_mstatus |= kMstatusSXL & (2ull << 34);
  m_dirty_generation = memory.dirty_generation();
  if (!memory.regions().empty()) {
    uint64_t lo = UINT64_MAX, hi = 0;
    for (const MemoryRegion& r : memory.regions()) {
      lo = std::min<uint64_t>(lo, r.gpa & ~0xfffull);
      hi = std::max<uint64_t>(hi, r.gpa + r.size);
    }
    m_cache->code_base = lo;
    m_cache->code_pages = (hi - lo + 0xfff) >> 12;
    m_cache->code_bits = std::make_unique<ZeroPages<uint64_t>>((m_cache->code_pages + 63) / 64);
  }
  flush_tlb();
  update_contexts();
}

Hart::~Hart() {
  delete m_jit;
  delete m_cache;
}

Result<void> Hart::enable_jit(size_t cache_bytes, unsigned hot_runs) {
  disable_jit();
  m_jit = TRY(jit::Translator::create(*this, cache_bytes)).release();
  m_jit_hot_runs = hot_runs;
  return {};
}

void Hart::disable_jit() {
  delete m_jit;
  m_jit = nullptr;
}

uint64_t Hart::jit_blocks() const { return m_jit ? m_jit->stats().blocks : 0; }
uint64_t Hart::jit_flushes() const { return m_jit ? m_jit->stats().flushes : 0; }

void Hart::set_priv(Priv p) {
  m_priv = p;
  update_contexts();
}

void Hart::setup_user_mode() {
  m_satp = 0;
  m_mstatus = (m_mstatus & ~kMstatusFS) | (1ull << 13);
  m_exit_on_trap = true;
  set_priv(Priv::kU);
  flush_tlb();
}

void Hart::flush_decode_cache() {
  ++m_cache_flushes;
  m_cache->clear();
  // The translations hang off the cleared blocks. (A running translation may be the caller,
  // through fence.i: the reset only rewinds the cache, whose code stays until the next
  // translation, made from the run loop.)
  if (m_jit) m_jit->reset();
  m_chain_key += kChainKeyStep;
}

inline Hart::Block* Hart::fetch_block() {
  const uint64_t va = m_pc;
  const unsigned index = (va >> 12) & (kTlbSize - 1);
  const TlbEntry& e = m_tlb[m_fetch_ctx][kTlbFetch][index];
  if (e.tag == tlb_tag(va)) [[likely]] {
    const uint64_t pa = m_fetch_pa[m_fetch_ctx][index] | (va & 0xfff);
    Block& b = m_slots[(pa >> 1) & (kBlockSlots - 1)];
    if (b.key == Block::key_of(pa)) [[likely]] {
      ++m_block_hits;
      return &b;
    }
    return fetch_block_slow(pa, reinterpret_cast<const uint8_t*>((va & ~0xfffull) + e.addend));
  }
  uint64_t pa;
  if (auto ex = translate(va, Access::kFetch, m_priv, false, pa)) {
    take_exception(*ex, va);
    return nullptr;
  }
  uint8_t* host = m_memory.host_ptr(pa & ~0xfffull, 0x1000);
  if (!host) {
    take_exception(Exception::kInsnAccessFault, va);
    return nullptr;
  }
  tlb_fill(m_fetch_ctx, kTlbFetch, va, pa, host);
  Block& b = m_slots[(pa >> 1) & (kBlockSlots - 1)];
  if (b.key == Block::key_of(pa)) {
    ++m_block_hits;
    return &b;
  }
  return fetch_block_slow(pa, host);
}

void Hart::note_code_page(uint64_t pa, const uint8_t* host_page) {
  const DecodeCache& c = *m_cache;
  const uint64_t n = (pa - c.code_base) >> 12;
  if (pa < c.code_base || n >= c.code_pages) return;
  uint64_t& word = (*c.code_bits)[n / 64];
  const uint64_t bit = 1ull << (n % 64);
  if (word & bit) return;
  word |= bit;
  if (!m_tlb_filled) return;
  const auto host = reinterpret_cast<uintptr_t>(host_page);
  for (auto& ctx : m_tlb)
    for (auto& e : ctx[kTlbWrite])
      if (e.tag != 0 && (e.tag & ~0xfffull) + e.addend == host) e.tag = 0;
}

void Hart::code_page_store(uint64_t pa) {
  const DecodeCache& c = *m_cache;
  const uint64_t n = (pa - c.code_base) >> 12;
  if (pa < c.code_base || n >= c.code_pages) return;
  uint64_t& word = (*c.code_bits)[n / 64];
  const uint64_t bit = 1ull << (n % 64);
  if (!(word & bit)) [[likely]]
    return;
  word &= ~bit;
  drop_code_page(pa & ~0xfffull);
  m_code_written = true;
}

void Hart::drop_code_page(uint64_t page) {
  // Blocks never cross a page, and the 2048 even addresses of a page have distinct slots.
  // A dropped block keeps its instructions and count: it may be the one running.
  for (uint64_t a = page; a < page + 0x1000; a += 2) {
    Block& b = m_slots[(a >> 1) & (kBlockSlots - 1)];
    if (b.key == Block::key_of(a)) {
      b.key = 0;
      b.jit = nullptr;
    }
  }
  m_chain_key += kChainKeyStep;  // chains may point at the dropped blocks
  ++m_code_page_drops;
}

void Hart::drop_written_code() {
  const DecodeCache& c = *m_cache;
  for (uint64_t w = 0; w < (c.code_pages + 63) / 64; ++w) {
    uint64_t& word = (*c.code_bits)[w];
    for (uint64_t bits = word; bits != 0; bits &= bits - 1) {
      const auto n = w * 64 + static_cast<uint64_t>(std::countr_zero(bits));
      const uint64_t page = c.code_base + (n << 12);
      if (!m_memory.take_written(page)) continue;
      word &= ~(1ull << (n % 64));
      drop_code_page(page);
    }
  }
}

Hart::Block* Hart::fetch_block_slow(uint64_t pa, const uint8_t* page) {
  ++m_block_misses;
  const uint64_t va = m_pc;
  DecodeCache& c = *m_cache;
  unsigned off = static_cast<unsigned>(va & 0xfff);
  const uint16_t lo = load_le<uint16_t>(page + off);
  if ((lo & 3) == 3 && off == 0xffe) {
    // A 32-bit instruction across a page boundary: fetch the upper half separately.
    const uint64_t va2 = va + 2;
    uint64_t pa2;
    if (auto ex = translate(va2, Access::kFetch, m_priv, false, pa2)) {
      take_exception(*ex, va2);
      return nullptr;
    }
    const auto hi = m_memory.read_le<uint16_t>(pa2);
    if (!hi) {
      take_exception(Exception::kInsnAccessFault, va2);
      return nullptr;
    }
    DecodedInsn* d = m_arena + kArenaInsns;
    d[0] = decode(static_cast<uint32_t>(lo) | (static_cast<uint32_t>(*hi) << 16));
    d[1] = block_end(d[0].len);
    return &c.straddle;
  }

  if (c.used + kMaxBlock + 1 > kArenaInsns) flush_decode_cache();
  note_code_page(pa, page);
  const size_t first = c.used;
  const unsigned start = off;
  unsigned count = 0;
  while (count < kMaxBlock && off <= 0xffe) {
    uint32_t raw = load_le<uint16_t>(page + off);
    if ((raw & 3) == 3) {
      if (off > 0xffc) break;  // straddles: the next block handles it
      raw = load_le<uint32_t>(page + off);
    }
    DecodedInsn d = decode(raw);
    d.pc_off = static_cast<uint16_t>(off - start);
    m_arena[first + count++] = d;
    off += d.len;
    if (ends_block(d)) break;
  }
  m_arena[first + count] = block_end(static_cast<uint16_t>(off - start));
  // Branches to an instruction of this block (decode.h branch_in_block()), found by its
  // offset in halfwords (a block spans at most kMaxBlock * 4 bytes).
  constexpr unsigned kSpan = kMaxBlock * 2;
  std::array<int8_t, kSpan> index_at;
  index_at.fill(-1);
  for (unsigned i = 0; i < count; ++i)
    index_at[m_arena[first + i].pc_off / 2u] = static_cast<int8_t>(i);
  for (unsigned i = 0; i < count; ++i) {
    DecodedInsn& d = m_arena[first + i];
    if ((d.raw & 0x7f) != 0x63) continue;
    const int64_t target = d.pc_off + d.imm;
    if (target < 0 || target >= 2 * kSpan || index_at[static_cast<size_t>(target / 2)] < 0)
      continue;
    const int distance = index_at[static_cast<size_t>(target / 2)] - static_cast<int>(i);
    d.rs3 = static_cast<uint8_t>(DecodedInsn::kInBlock + distance);
  }
  c.used += count + 1;
  const size_t index = (pa >> 1) & (kBlockSlots - 1);
  Block& slot = m_slots[index];
  if (slot.key != 0) m_chain_key += kChainKeyStep;  // chains may point at the evicted block
  slot = Block{Block::key_of(pa), m_arena + first, count, 0, 0, {}, nullptr, 0};
  c.fill(index);
  return &slot;
}

bool Hart::leave(const DecodedInsn& d, bool at_end) {
  m_stop = &d;
  if (m_stopped != 0) [[unlikely]]
    return leave_trapped(d);
  Block* const b = m_block;
  if (b->chain_key != m_chain_key) return false;
  Block* next;
  if (b->next[0].va == m_pc) next = b->next[0].block;
  else if (b->next[1].va == m_pc) next = b->next[1].block;
  else return false;
  const uint64_t retired =
      m_instret + 1 - b->count + static_cast<uint64_t>(&d - m_block_first) + (at_end ? 0 : 1);
  if (retired + next->count > m_instret_limit) return false;
  if (((m_pins.raw() & m_irq_pin_mask) | m_irq_soft) != 0) return false;
  const DecodedInsn* first = next->first;
  m_block = next;
  m_block_first = first;
  m_block_pc = m_pc;
  m_instret = retired + next->count - 1;
  return first->handler(*this, *first);
}

bool Hart::leave_trapped(const DecodedInsn& d) {
  if (m_stopped & kIllegal) {
    m_stopped &= static_cast<uint8_t>(~kIllegal);
    enter(d);  // not done on entry by every instruction (decode.h needs_pc())
    take_exception(Exception::kIllegalInsn, d.len == 2 ? d.raw16 : d.raw);
  }
  return false;
}

uint64_t Hart::run_blocks(uint64_t budget, uint64_t stop_bits) {
  uint64_t used = 0;
  m_stopped &= static_cast<uint8_t>(~kExcepted);
  m_stop_bits = stop_bits;
  update_irq_mask();
  Block* const straddle = &m_cache->straddle;
  Block* prev = nullptr;  // the block that ran last, if the next one may be chained to it
  while (used < budget) {
    if (((m_pins.raw() & m_irq_pin_mask) | m_irq_soft) != 0) [[unlikely]]
      break;
    Block* b = nullptr;
    if (prev != nullptr && prev->chain_key == m_chain_key) {
      if (prev->next[0].va == m_pc) b = prev->next[0].block;
      else if (prev->next[1].va == m_pc) b = prev->next[1].block;
    }
    if (b == nullptr) {
      b = fetch_block();
      if (b == nullptr) [[unlikely]] {
        // The fetch raised an exception. It uses budget too, so a trap storm cannot spin
        // forever.
        ++used;
        m_stopped &= static_cast<uint8_t>(~kExcepted);
        prev = nullptr;
        if (m_trap_pending) break;
        continue;
      }
      if (prev != nullptr && b != straddle) {
        if (prev->chain_key != m_chain_key) {
          prev->chain_key = m_chain_key;
          prev->next[0] = {};
        }
        prev->next[1] = prev->next[0];
        prev->next[0] = Block::Chain{m_pc, b};
      }
    }
    const DecodedInsn* first = b->first;
    const uint64_t n = b->count;
    const uint64_t start = m_instret;
    m_block = b;
    m_block_first = first;
    m_block_pc = m_pc;
    if (n <= budget - used && !m_trace) [[likely]] {
      // Threaded (decode.h), chaining further blocks as long as they fit in the budget. An
      // instruction that raised an exception did not retire; one that left the block
      // otherwise (a jump, a system instruction) did.
      m_instret_limit = start + std::min(budget - used, kMaxChainInsns);
      m_instret = start + n - 1;
      if (m_jit != nullptr && b != straddle) {
        m_instret_limit = start + (budget - used);  // run_translated() takes it over
        run_translated(b);
      } else {
        first->handler(*this, *first);
      }
      const auto i = static_cast<uint64_t>(m_stop - m_block_first);
      const uint64_t base = m_instret + 1 - m_block->count;  // before the block's first
      if (m_stopped & kExcepted) {
        m_instret = base + i;
        used += m_instret - start + 1;
        m_stopped &= static_cast<uint8_t>(~kExcepted);
        prev = nullptr;
        if (m_trap_pending) return used;
        continue;
      }
      m_instret = base + (i == m_block->count ? i : i + 1);
      used += m_instret - start;
      if (m_stopped & kWfi) return used;
      prev = m_block == straddle ? nullptr : m_block;
      continue;
    }
    // One instruction at a time: to stop exactly at the budget, or to trace. Each runs as a
    // one-instruction block that chains nothing, so m_instret is exact for every one.
    prev = nullptr;
    m_instret_limit = 0;  // no chaining
    m_block = &m_cache->single_block;
    DecodedInsn* single = m_cache->single;
    const uint64_t limit = n < budget - used ? n : budget - used;
    for (uint64_t i = 0; i < limit; ++i) {
      if (m_trace) [[unlikely]]
        trace(first[i]);
      single[0] = first[i];
      single[0].pc_off = 0;
      if ((single[0].raw & 0x7f) == 0x63) single[0].rs3 = 0;  // no block to skip in
      single[1] = block_end(single[0].len);
      m_block_first = single;
      m_block_pc = m_pc;
      ++used;
      single[0].handler(*this, single[0]);
      if (m_stop == &single[1]) {
        ++m_instret;
        continue;
      }
      if (m_stopped & kExcepted) {
        m_stopped &= static_cast<uint8_t>(~kExcepted);
        if (m_trap_pending) return used;
        break;
      }
      ++m_instret;
      if (m_stopped & kWfi) return used;
      break;
    }
  }
  return used;
}

// Runs block b as host code (translating it once it is hot) where run_blocks() would run
// it threaded, leaving m_stop, m_pc and m_stopped as the threaded run would (leave()).
// Then, like leave(), runs the blocks that followed it last time (its chains) while they
// are translated, fit below the budget (m_instret_limit on entry), and no interrupt or stop
// request is pending: m_block and m_instret then describe the last block run, as after a
// threaded chain. Translations also chain to each other themselves, through the
// translator's jump cache (translator.h), which this loop fills as blocks run.
void Hart::run_translated(Block* b) {
  const uint64_t instret_limit = m_instret_limit;
  m_instret_limit = 0;  // a cold block run threaded chains none: the next may be hot
  if (b->jit == nullptr || b->jit_generation != m_jit->generation()) {
    if (b->runs < m_jit_hot_runs) {
      ++b->runs;
      b->first->handler(*this, *b->first);
      return;
    }
    const uint64_t before = m_jit->generation();
    b->jit = m_jit->translate(b, b->first, b->count, static_cast<uint32_t>(m_block_pc & 0xfff));
    b->jit_generation = m_jit->generation();
    // A full cache was dropped: the jump cache's entries (keyed by the chain key) with it.
    if (b->jit_generation != before) m_chain_key += kChainKeyStep;
    if (b->jit == nullptr) [[unlikely]] {
      b->first->handler(*this, *b->first);
      return;
    }
  }
  const uint64_t generation = m_jit->generation();
  m_instret_limit = instret_limit;
  arm_jit_limit(instret_limit);  // the translations' loops and chains stop below it
  for (;;) {
    m_jit->remember(m_block_pc, m_chain_key, b->jit);
    const uint32_t i = b->jit(*this);
    b = m_block;  // the last block run: translations chain to each other (translator.h)
    m_block_first = b->first;  // (which they do not store: translator.cpp, chained_entry())
    const DecodedInsn& d = b->first[i];
    m_stop = &d;
    if (m_stopped != 0) [[unlikely]] {
      if (m_stopped & kIllegal) leave_trapped(d);
      return;
    }
    // A translation that ran fence.i (or anything else that dropped the code cache) is
    // the last: the chains may point at dropped code.
    if (b->chain_key != m_chain_key || m_jit->generation() != generation) return;
    Block* next;
    if (b->next[0].va == m_pc) next = b->next[0].block;
    else if (b->next[1].va == m_pc) next = b->next[1].block;
    else return;
    if (next->jit == nullptr || next->jit_generation != generation) return;
    const uint64_t retired = m_instret + 1 - b->count + i + (i == b->count ? 0 : 1);
    if (retired + next->count > instret_limit) return;
    if (((m_pins.raw() & m_irq_pin_mask) | m_irq_soft) != 0) return;
    // A bit that rose but is masked zeroed the limit: nothing to take, so on at full speed.
    if (m_jit_limit.load(std::memory_order_relaxed) == 0) arm_jit_limit(instret_limit);
    m_block = next;
    m_block_first = next->first;
    m_block_pc = m_pc;
    m_instret = retired + next->count - 1;
    b = next;
  }
}

StepResult Hart::step(uint64_t max_instructions) {
  const fpu::host::DefaultEnvScope fp_env;  // what the F/D handlers' fast path assumes
  StepResult r;
  m_trap_pending = false;
  sync_dirty_generation();
  while (r.executed < max_instructions) {
    check_interrupts();
    m_stopped &= static_cast<uint8_t>(~kWfi);
    const uint64_t before = m_instret;
    const uint64_t used = run_blocks(max_instructions - r.executed, 0);
    if (m_exit_on_trap) {
      r.executed += m_instret - before;  // exact: only retired instructions
      if (m_trap_pending) {
        m_trap_pending = false;
        r.kind = StepResult::Kind::kTrap;
        r.trap = m_trap;
        return r;
      }
      if (m_stopped & kWfi) {
        r.kind = StepResult::Kind::kWfi;
        return r;
      }
      if (used == 0) break;  // cannot happen: nothing was takeable and no exception
    } else {
      r.executed += used == 0 ? 1 : used;
    }
  }
  r.kind = StepResult::Kind::kBudget;
  return r;
}

void Hart::publish_stats() {
  m_published.instret.store(m_instret, std::memory_order_relaxed);
  m_published.block_hits.store(m_block_hits, std::memory_order_relaxed);
  m_published.block_misses.store(m_block_misses, std::memory_order_relaxed);
  m_published.cache_flushes.store(m_cache_flushes, std::memory_order_relaxed);
  m_published.code_page_drops.store(m_code_page_drops, std::memory_order_relaxed);
  if (m_jit != nullptr) {
    const jit::Stats& j = m_jit->stats();
    m_published.jit_translations.store(j.blocks, std::memory_order_relaxed);
    m_published.jit_flushes.store(j.flushes, std::memory_order_relaxed);
    m_published.jit_code_bytes.store(j.bytes_used, std::memory_order_relaxed);
  }
}

Hart::Stats Hart::stats() const {
  return {m_published.instret.load(std::memory_order_relaxed),
          m_published.block_hits.load(std::memory_order_relaxed),
          m_published.block_misses.load(std::memory_order_relaxed),
          m_published.cache_flushes.load(std::memory_order_relaxed),
          m_published.code_page_drops.load(std::memory_order_relaxed),
          m_published.jit_translations.load(std::memory_order_relaxed),
          m_published.jit_flushes.load(std::memory_order_relaxed),
          m_published.jit_code_bytes.load(std::memory_order_relaxed)};
}

EngineExit Hart::run_engine() {
  const fpu::host::DefaultEnvScope fp_env;  // what the F/D handlers' fast path assumes
  for (;;) {
    const uint64_t raw = m_pins.raw();
    if (raw & InterruptPins::kKickBit) [[unlikely]] {
      m_pins.take_kick();
      return EngineExit::kKicked;
    }
    sync_dirty_generation();  // cheap: once per return to this loop
    check_interrupts();
    m_stopped &= static_cast<uint8_t>(~kWfi);
    m_trap_pending = false;
    run_blocks(1u << 20, InterruptPins::kKickBit);
    publish_stats();
    if (m_trap_loop) [[unlikely]] return EngineExit::kCrash;
    if (m_trap_pending) [[unlikely]] {
      m_crash_detail = fmt::format("hart {}: trap with exit_on_trap set in engine mode", m_hart_id);
      return EngineExit::kCrash;
    }
    if (m_stopped & kWfi) {
      // Sleep until an interrupt is pending in mip & mie (whatever the global enables) or
      // someone kicks us. Only pins() can change while we sleep.
      for (;;) {
        const uint64_t seen = m_pins.raw();
        if (seen & InterruptPins::kKickBit) break;
        if ((((seen & ~InterruptPins::kKickBit) | m_mip) & m_mie) != 0) break;
        m_pins.wait_for_change(seen);
      }
    }
  }
}

void Hart::update_irq_mask() {
  const bool m_enabled = m_priv != Priv::kM || (m_mstatus & kMstatusMIE);
  const bool s_enabled =
      m_priv == Priv::kU || (m_priv == Priv::kS && (m_mstatus & kMstatusSIE));
  m_irq_takeable = (m_enabled ? (m_mie & ~m_mideleg) : 0) | (s_enabled ? (m_mie & m_mideleg) : 0);
  if (m_irq_hold) [[unlikely]]
    m_irq_takeable = 0;
  m_irq_pin_mask = m_irq_takeable | m_stop_bits;
  m_irq_soft = m_mip & m_irq_takeable;
  if (((m_pins.raw() & m_irq_pin_mask) | m_irq_soft) != 0)
    m_jit_limit.store(0, std::memory_order_relaxed);
}

void Hart::arm_jit_limit(uint64_t limit) {
  m_jit_limit.store(limit, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_seq_cst);  // pairs with InterruptPins::set()
  if (((m_pins.raw() & m_irq_pin_mask) | m_irq_soft) != 0)
    m_jit_limit.store(0, std::memory_order_relaxed);
}

bool Hart::check_interrupts() {
  const uint64_t take = mip() & m_irq_takeable;
  if (take == 0) return false;
  // M-level interrupts outrank S-level ones; within a level, privileged spec 3.1.9's
  // order: MEI, MSI, MTI, SEI, SSI, STI.
  const uint64_t m_level = take & ~m_mideleg;
  const uint64_t pick = m_level ? m_level : take;
  static constexpr unsigned kOrder[] = {11, 3, 7, 9, 1, 5};
  for (unsigned cause : kOrder) {
    if (pick & (1ull << cause)) {
      enter_trap(kInterruptBit | cause, 0);
      return true;
    }
  }
  return false;
}

namespace {

// Privileged spec 3.1.15, Table 3.6.
const char* exception_name(uint64_t code) {
  switch (code) {
    case 0: return "instruction address misaligned";
    case 1: return "instruction access fault";
    case 2: return "illegal instruction";
    case 3: return "breakpoint";
    case 4: return "load address misaligned";
    case 5: return "load access fault";
    case 6: return "store address misaligned";
    case 7: return "store access fault";
    case 8: return "ecall from U-mode";
    case 9: return "ecall from S-mode";
    case 11: return "ecall from M-mode";
    case 12: return "instruction page fault";
    case 13: return "load page fault";
    case 15: return "store page fault";
    default: return "exception";
  }
}

}  // namespace

void Hart::enter_trap(uint64_t cause, uint64_t tval) {
  const bool interrupt = (cause & kInterruptBit) != 0;
  const uint64_t code = cause & ~kInterruptBit;
  const uint64_t deleg = interrupt ? m_mideleg : m_medeleg;
  const uint64_t prev = static_cast<uint64_t>(m_priv);
  if (m_trace_traps) [[unlikely]]
    fmt::print(stderr, "hart{} trap: cause {:#x} tval {:#x} epc {:#x} from priv {}\n", m_hart_id,
               cause, tval, m_pc, prev);
  // A trap loop: a fault (not an ecall or ebreak, which a guest may repeat on purpose) at
  // the first instruction of a trap vector, the same again and again with nothing else
  // faulting in between. Garbage at the vector: firmware none with mtvec 0, or a garbage
  // kernel behind OpenSBI, which hands each fault back to an stvec that faults again.
  const bool at_vector = (m_priv == Priv::kM && m_pc == (m_mtvec & ~3ull)) ||
                         (m_priv == Priv::kS && m_pc == (m_stvec & ~3ull));
  const bool deliberate = code == 3 || code == 8 || code == 9 || code == 11;
  if (!interrupt && !deliberate && at_vector && cause == m_last_trap_cause) [[unlikely]] {
    if (++m_trap_repeats >= kTrapLoopLimit && !m_trap_loop) {
      m_trap_loop = true;
      m_crash_detail = fmt::format(
          "hart {}: trap loop: the trap handler at {:#x} itself traps ({}, tval {:#x}) at its "
          "first instruction, {} times in a row; the last trap's cause {}, pc {:#x} (garbage "
          "kernel or firmware?)",
          m_hart_id, m_pc, exception_name(code), tval, m_trap_repeats, code, m_pc);
    }
  } else if (!interrupt) {
    m_trap_repeats = 0;  // (a timer interrupt in between is no progress)
  }
  if (!interrupt) m_last_trap_cause = cause;
  if (m_priv != Priv::kM && code < 64 && ((deleg >> code) & 1)) {
    m_scause = cause;
    m_sepc = m_pc;
    m_stval = tval;
    uint64_t s = m_mstatus & ~(kMstatusSPIE | kMstatusSIE | kMstatusSPP);
    if (m_mstatus & kMstatusSIE) s |= kMstatusSPIE;
    if (prev == 1) s |= kMstatusSPP;
    m_mstatus = s;
    m_priv = Priv::kS;
    m_pc = (m_stvec & ~3ull) + ((interrupt && (m_stvec & 3) == 1) ? 4 * code : 0);
  } else {
    m_mcause = cause;
    m_mepc = m_pc;
    m_mtval = tval;
    uint64_t s = m_mstatus & ~(kMstatusMPIE | kMstatusMIE | kMstatusMPP);
    if (m_mstatus & kMstatusMIE) s |= kMstatusMPIE;
    s |= prev << 11;
    m_mstatus = s;
    m_priv = Priv::kM;
    m_pc = (m_mtvec & ~3ull) + ((interrupt && (m_mtvec & 3) == 1) ? 4 * code : 0);
  }
  update_contexts();
}

bool Hart::take_exception(Exception cause, uint64_t tval) {
  m_stopped |= kExcepted;
  if (m_exit_on_trap) {
    m_trap = Trap{static_cast<uint64_t>(cause), tval, m_pc};
    m_trap_pending = true;
    return false;
  }
  enter_trap(static_cast<uint64_t>(cause), tval);
  return false;
}

bool Hart::exec_mret(const DecodedInsn& d) {
  if (m_priv != Priv::kM) return illegal(d);
  const auto mpp = static_cast<Priv>((m_mstatus & kMstatusMPP) >> 11);
  uint64_t s = m_mstatus & ~(kMstatusMIE | kMstatusMPP);
  if (m_mstatus & kMstatusMPIE) s |= kMstatusMIE;
  s |= kMstatusMPIE;
  if (mpp != Priv::kM) s &= ~kMstatusMPRV;
  m_mstatus = s;
  m_priv = mpp;
  m_pc = m_mepc;
  update_contexts();
  return false;
}

bool Hart::exec_sret(const DecodedInsn& d) {
  if (m_priv == Priv::kU || (m_priv == Priv::kS && (m_mstatus & kMstatusTSR))) return illegal(d);
  const bool spp = (m_mstatus & kMstatusSPP) != 0;
  uint64_t s = m_mstatus & ~(kMstatusSIE | kMstatusSPP | kMstatusMPRV);
  if (m_mstatus & kMstatusSPIE) s |= kMstatusSIE;
  s |= kMstatusSPIE;
  m_mstatus = s;
  m_priv = spp ? Priv::kS : Priv::kU;
  m_pc = m_sepc;
  update_contexts();
  return false;
}

bool Hart::exec_wfi(const DecodedInsn& d) {
  // U-mode WFI would not complete in bounded time here, so it is illegal (spec 3.3.3).
  if (m_priv == Priv::kU || (m_priv == Priv::kS && (m_mstatus & kMstatusTW))) return illegal(d);
  m_pc += d.len;
  if ((mip() & m_mie) == 0) m_stopped |= kWfi;
  return false;
}

bool Hart::exec_sfence_vma(const DecodedInsn& d) {
  if (m_priv == Priv::kU || (m_priv == Priv::kS && (m_mstatus & kMstatusTVM))) return illegal(d);
  m_pc += d.len;
  if (((d.raw >> 15) & 31) != 0) {
    // One address: the TLB holds 4 KiB entries, so only that page's entries can be stale.
    const uint64_t tag = tlb_tag(m_x[d.rs1]);
    m_chain_key += kChainKeyStep;
    for (auto& ctx : m_tlb)
      for (auto& type : ctx) {
        TlbEntry& e = type[(m_x[d.rs1] >> 12) & (kTlbSize - 1)];
        if (e.tag == tag) e.tag = 0;
      }
  } else {
    flush_tlb();
  }
  return false;
}

bool Hart::exec_fence_i(const DecodedInsn& d) {
  m_pc += d.len;  // before the flush: `d` lives in the cache (which the flush only marks)
  if (m_sole_hart) drop_written_code();
  else flush_decode_cache();
  return false;
}

void Hart::trace(const DecodedInsn& d) const {
  static constexpr char kPriv[] = {'U', 'S', '?', 'M'};
  fmt::print(stderr, "hart{} {} {:016x}: {}\n", m_hart_id, kPriv[static_cast<unsigned>(m_priv)],
             m_pc, disassemble(d, m_pc));
}

HartState Hart::save() const {
  HartState s;
  s.pc = m_pc;
  for (unsigned i = 0; i < 32; ++i) {
    s.x[i] = i == 0 ? 0 : m_x[i];
    s.f[i] = m_f[i];
  }
  s.priv = static_cast<uint8_t>(m_priv);
  s.frm = m_frm;
  s.fflags = m_fflags;
  s.mstatus = m_mstatus;
  s.medeleg = m_medeleg;
  s.mideleg = m_mideleg;
  s.mie = m_mie;
  s.mip = m_mip;
  s.mtvec = m_mtvec;
  s.mscratch = m_mscratch;
  s.mepc = m_mepc;
  s.mcause = m_mcause;
  s.mtval = m_mtval;
  s.mcounteren = m_mcounteren;
  s.menvcfg = m_menvcfg;
  s.mcountinhibit = m_mcountinhibit;
  s.stvec = m_stvec;
  s.sscratch = m_sscratch;
  s.sepc = m_sepc;
  s.scause = m_scause;
  s.stval = m_stval;
  s.scounteren = m_scounteren;
  s.senvcfg = m_senvcfg;
  s.satp = m_satp;
  s.instret = m_instret;
  s.cycle_offset = m_cycle_offset;
  s.instret_offset = m_instret_offset;
  s.pmpcfg = m_pmpcfg;
  s.pmpaddr = m_pmpaddr;
  return s;
}

Result<void> Hart::restore(const HartState& s) {
  if (s.version != HartState::kVersion)
    return Error::format("hart {}: state version {} unknown (expected {})", m_hart_id, s.version,
                         HartState::kVersion);
  if (s.priv != 0 && s.priv != 1 && s.priv != 3)
    return Error::format("hart {}: invalid privilege level {} in saved state", m_hart_id, s.priv);
  if (s.frm > 7 || s.fflags > 31)
    return Error::format("hart {}: invalid frm {} / fflags {:#x} in saved state", m_hart_id, s.frm,
                         s.fflags);
  m_pc = s.pc;
  for (unsigned i = 0; i < 32; ++i) {
    m_x[i] = i == 0 ? 0 : s.x[i];
    m_f[i] = s.f[i];
  }
  m_priv = static_cast<Priv>(s.priv);
  m_frm = s.frm;
  m_fflags = s.fflags;
  m_mstatus = s.mstatus;
  m_medeleg = s.medeleg;
  m_mideleg = s.mideleg;
  m_mie = s.mie;
  m_mip = s.mip;
  m_mtvec = s.mtvec;
  m_mscratch = s.mscratch;
  m_mepc = s.mepc;
  m_mcause = s.mcause;
  m_mtval = s.mtval;
  m_mcounteren = s.mcounteren;
  m_menvcfg = s.menvcfg;
  m_mcountinhibit = s.mcountinhibit;
  m_stvec = s.stvec;
  m_sscratch = s.sscratch;
  m_sepc = s.sepc;
  m_scause = s.scause;
  m_stval = s.stval;
  m_scounteren = s.scounteren;
  m_senvcfg = s.senvcfg;
  m_satp = s.satp;
  m_instret = s.instret;
  m_cycle_offset = s.cycle_offset;
  m_instret_offset = s.instret_offset;
  m_pmpcfg = s.pmpcfg;
  m_pmpaddr = s.pmpaddr;
  // No reservation survives a restore; nothing cached from the old state either.
  m_lr_addr = ~0ull;
  m_lr_value = 0;
  flush_tlb();
  flush_decode_cache();
  update_contexts();
  return {};
}

}  // namespace doppel::rv64
