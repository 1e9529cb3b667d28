// Address translation (privileged spec 4.3-4.4: Sv39 and Sv48), the software TLB, and the
// slow paths of loads and stores (page crossings, misaligned accesses, MMIO).
#include <atomic>

#include "engines/emu/riscv64/hart.h"

namespace doppel::rv64 {

namespace {
constexpr uint64_t kPteV = 1, kPteR = 2, kPteW = 4, kPteX = 8, kPteU = 16, kPteA = 64, kPteD = 128;
constexpr uint64_t kPpnMask = (1ull << 44) - 1;

Exception page_fault(bool fetch, bool write) {
  return fetch ? Exception::kInsnPageFault
               : write ? Exception::kStorePageFault : Exception::kLoadPageFault;
}
Exception access_fault(bool fetch, bool write) {
  return fetch ? Exception::kInsnAccessFault
               : write ? Exception::kStoreAccessFault : Exception::kLoadAccessFault;
}
}  // namespace

Priv Hart::effective_data_priv() const {
  if (m_priv == Priv::kM && (m_mstatus & kMstatusMPRV))
    return static_cast<Priv>((m_mstatus & kMstatusMPP) >> 11);
  return m_priv;
}

void Hart::update_contexts() {
  m_fetch_ctx = m_priv == Priv::kM ? 0 : m_priv == Priv::kU ? 1 : 2;
  m_chain_key = (m_chain_key & ~(kChainKeyStep - 1)) | m_fetch_ctx;
  const Priv eff = effective_data_priv();
  m_data_ctx = eff == Priv::kM ? 0 : eff == Priv::kU ? 1 : ((m_mstatus & kMstatusSUM) ? 3 : 2);
  m_tlb_read = m_tlb[m_data_ctx][kTlbRead];
  m_tlb_write = m_tlb[m_data_ctx][kTlbWrite];
  update_irq_mask();
}

void Hart::flush_tlb() {
  m_chain_key += kChainKeyStep;
  if (!m_tlb_filled) return;
  m_tlb_filled = false;
  for (auto& ctx : m_tlb)
    for (auto& type : ctx)
      for (auto& e : type) e.tag = 0;
}

void Hart::drop_write_tlb() {
  if (!m_tlb_filled) return;
  for (auto& ctx : m_tlb)
    for (auto& e : ctx[kTlbWrite]) e.tag = 0;
}

void Hart::tlb_fill(unsigned ctx, unsigned type, uint64_t va, uint64_t pa, uint8_t* host_page) {
  if (m_watchpoints != nullptr && type != kTlbFetch) [[unlikely]]
    return;  // every access must reach note_watch()
  const unsigned index = (va >> 12) & (kTlbSize - 1);
  TlbEntry& e = m_tlb[ctx][type][index];
  m_tlb_filled = true;
  e.tag = tlb_tag(va);
  e.addend = reinterpret_cast<uintptr_t>(host_page) - static_cast<uintptr_t>(va & ~0xfffull);
  if (type == kTlbFetch) m_fetch_pa[ctx][index] = pa & ~0xfffull;
}

std::optional<Exception> Hart::translate(uint64_t va, Access access, Priv priv, bool sum,
                                         uint64_t& pa) {
  const uint64_t mode = m_satp >> 60;
  if (priv == Priv::kM || mode == 0) {
    pa = va;
    return std::nullopt;
  }
  const bool fetch = access == Access::kFetch, write = access == Access::kWrite;
  const int levels = mode == 9 ? 4 : 3;
  const unsigned va_bits = 12 + 9 * static_cast<unsigned>(levels);
  if (static_cast<uint64_t>(sign_extend(va, va_bits)) != va) return page_fault(fetch, write);

  uint64_t table = (m_satp & kPpnMask) << 12;
  for (int i = levels - 1; i >= 0; --i) {
    const unsigned shift = 12 + 9 * static_cast<unsigned>(i);
    const uint64_t pte_addr = table + ((va >> shift) & 511) * 8;
    uint8_t* p = m_memory.host_ptr(pte_addr, 8);
    if (!p) return access_fault(fetch, write);
    std::atomic_ref<uint64_t> ref(*reinterpret_cast<uint64_t*>(p));
    uint64_t pte = ref.load(std::memory_order_acquire);
    for (;;) {
      if (!(pte & kPteV) || (!(pte & kPteR) && (pte & kPteW)) || (pte >> 54) != 0)
        return page_fault(fetch, write);
      if (!(pte & (kPteR | kPteX))) break;  // pointer to the next level
      // Leaf: permissions (4.3.2 step 5).
      if (priv == Priv::kU && !(pte & kPteU)) return page_fault(fetch, write);
      if (priv == Priv::kS && (pte & kPteU) && (fetch || !sum)) return page_fault(fetch, write);
      if (fetch && !(pte & kPteX)) return page_fault(fetch, write);
      if (write && !(pte & kPteW)) return page_fault(fetch, write);
      if (access == Access::kRead &&
          !((pte & kPteR) || ((m_mstatus & kMstatusMXR) && (pte & kPteX))))
        return page_fault(fetch, write);
      const uint64_t ppn = (pte >> 10) & kPpnMask;
      const uint64_t low_mask = (1ull << shift) - 1;
      if (((ppn << 12) & low_mask) != 0) return page_fault(fetch, write);  // misaligned superpage
      // Hardware A/D update, atomically on the PTE (4.3.1, Svadu behaviour).
      const uint64_t need = kPteA | (write ? kPteD : 0);
      if ((pte & need) != need) {
        if (!ref.compare_exchange_strong(pte, pte | need, std::memory_order_acq_rel))
          continue;  // someone changed the PTE: re-check it
        m_memory.mark_dirty(pte_addr, 8);
      }
      pa = (ppn << 12) | (va & low_mask);
      return std::nullopt;
    }
    if (i == 0) return page_fault(fetch, write);
    table = ((pte >> 10) & kPpnMask) << 12;
  }
  return page_fault(fetch, write);
}

Hart::SlowLoad Hart::load_slow(uint64_t va, unsigned size) {
  uint64_t v = 0;
  const bool ok = load_bytes(va, size, v);
  return {v, ok};
}

bool Hart::load_bytes(uint64_t va, unsigned size, uint64_t& out) {
  if ((va & 0xfff) + size > 0x1000) {
    // Crosses a page: byte by byte (misaligned accesses are handled, never trapped).
    uint64_t v = 0;
    for (unsigned i = 0; i < size; ++i) {
      uint64_t b = 0;
      if (!load_bytes(va + i, 1, b)) return false;
      v |= b << (8 * i);
    }
    out = v;
    return true;
  }
  const Priv eff = effective_data_priv();
  uint64_t pa;
  if (auto ex = translate(va, Access::kRead, eff, (m_mstatus & kMstatusSUM) != 0, pa))
    return take_exception(*ex, va);
  if (m_watchpoints != nullptr) [[unlikely]]
    note_watch(va, size, false);
  if (uint8_t* page = m_memory.host_ptr(pa & ~0xfffull, 0x1000)) {
    tlb_fill(m_data_ctx, kTlbRead, va, pa, page);
    uint64_t v = 0;
    std::memcpy(&v, page + (pa & 0xfff), size);
    out = v;
    return true;
  }
  if (const uint8_t* p = m_memory.host_ptr(pa, size)) {  // RAM smaller than a page
    uint64_t v = 0;
    std::memcpy(&v, p, size);
    out = v;
    return true;
  }
  uint64_t v = 0;
  if (!m_mmio.read(pa, size, v)) return take_exception(Exception::kLoadAccessFault, va);
  out = size == 8 ? v : (v & ((1ull << (8 * size)) - 1));
  return true;
}

bool Hart::store_slow(uint64_t va, unsigned size, uint64_t value) {
  const Priv eff = effective_data_priv();
  const bool sum = (m_mstatus & kMstatusSUM) != 0;
  uint64_t pa;
  if ((va & 0xfff) + size > 0x1000) {
    // Both pages must be writable before any byte is written.
    if (auto ex = translate(va, Access::kWrite, eff, sum, pa)) return take_exception(*ex, va);
    const uint64_t last = va + size - 1;
    if (auto ex = translate(last, Access::kWrite, eff, sum, pa))
      return take_exception(*ex, last & ~0xfffull);
    for (unsigned i = 0; i < size; ++i)
      if (!store_slow(va + i, 1, (value >> (8 * i)) & 0xff)) return false;
    return true;
  }
  if (auto ex = translate(va, Access::kWrite, eff, sum, pa)) return take_exception(*ex, va);
  if (m_watchpoints != nullptr) [[unlikely]]
    note_watch(va, size, true);
  if (uint8_t* page = m_memory.host_ptr(pa & ~0xfffull, 0x1000)) {
    // Marked before the page enters the write TLB, whose hits (store_fast()) do not mark.
    m_memory.mark_dirty(pa, size);
    code_page_store(pa);  // before the write TLB holds the page
    tlb_fill(m_data_ctx, kTlbWrite, va, pa, page);
    std::memcpy(page + (pa & 0xfff), &value, size);
    return true;
  }
  if (uint8_t* p = m_memory.host_ptr_for_write(pa, size)) {  // RAM smaller than a page
    std::memcpy(p, &value, size);
    return true;
  }
  if (!m_mmio.write(pa, size, value)) return take_exception(Exception::kStoreAccessFault, va);
  return true;
}

uint8_t* Hart::atomic_ptr(uint64_t va, unsigned size, bool is_lr) {
  if (va & (size - 1)) {
    take_exception(is_lr ? Exception::kLoadMisaligned : Exception::kStoreMisaligned, va);
    return nullptr;
  }
  const unsigned type = is_lr ? kTlbRead : kTlbWrite;
  const TlbEntry* table = is_lr ? m_tlb_read : m_tlb_write;
  const TlbEntry& e = table[(va >> 12) & (kTlbSize - 1)];
  if (e.tag == tlb_tag(va)) [[likely]]
    return reinterpret_cast<uint8_t*>(static_cast<uintptr_t>(va) + e.addend);
  uint64_t pa;
  if (auto ex = translate(va, is_lr ? Access::kRead : Access::kWrite, effective_data_priv(),
                          (m_mstatus & kMstatusSUM) != 0, pa)) {
    take_exception(*ex, va);
    return nullptr;
  }
  if (m_watchpoints != nullptr) [[unlikely]]
    note_watch(va, size, !is_lr);
  uint8_t* page = m_memory.host_ptr(pa & ~0xfffull, 0x1000);
  if (!page) {
    // Atomics on MMIO (or outside RAM) are not supported: access fault (spec allows it).
    take_exception(is_lr ? Exception::kLoadAccessFault : Exception::kStoreAccessFault, va);
    return nullptr;
  }
  if (!is_lr) {
    m_memory.mark_dirty(pa, size);  // before the write TLB holds the page
    code_page_store(pa);
    m_code_written = false;  // an AMO does not end its block (hart.h)
  }
  tlb_fill(m_data_ctx, type, va, pa, page);
  return page + (pa & 0xfff);
}

}  // namespace doppel::rv64
