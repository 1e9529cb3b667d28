// RV64A atomics (unprivileged spec chapter 8). Harts run on separate host threads sharing
// guest RAM, so every AMO is a host atomic on the guest word, and SC is a compare-and-swap
// against the value LR loaded (as QEMU does: an ABA store in between goes unnoticed, which
// the spec's forward-progress rules tolerate for real software).
#include <algorithm>
#include <atomic>

#include "engines/emu/riscv64/insn_common.h"

namespace doppel::rv64 {
namespace {

template <typename T>
std::atomic_ref<T> word(uint8_t* p) {
  return std::atomic_ref<T>(*reinterpret_cast<T*>(p));
}

template <typename T>
uint64_t widen(T v) {
  return static_cast<uint64_t>(static_cast<int64_t>(static_cast<std::make_signed_t<T>>(v)));
}

template <typename T>
bool lr(Hart& h, const DecodedInsn& d) {
  const uint64_t addr = h.xr(d.rs1);
  uint8_t* p = h.atomic_ptr(addr, sizeof(T), true);
  if (!p) return false;
  const T v = word<T>(p).load(std::memory_order_seq_cst);
  h.m_lr_addr = addr;
  h.m_lr_value = v;
  h.xr(d.rd) = widen<T>(v);
  return true;
}

template <typename T>
bool sc(Hart& h, const DecodedInsn& d) {
  const uint64_t addr = h.xr(d.rs1);
  uint8_t* p = h.atomic_ptr(addr, sizeof(T), false);
  if (!p) return false;
  bool ok = false;
  if (h.m_lr_addr == addr) {
    T expected = static_cast<T>(h.m_lr_value);
    ok = word<T>(p).compare_exchange_strong(expected, static_cast<T>(h.xr(d.rs2)),
                                            std::memory_order_seq_cst);
  }
  h.m_lr_addr = ~0ull;
  h.xr(d.rd) = ok ? 0 : 1;
  return true;
}

template <typename T, typename Op>
bool amo(Hart& h, const DecodedInsn& d, Op op) {
  uint8_t* p = h.atomic_ptr(h.xr(d.rs1), sizeof(T), false);
  if (!p) return false;
  const T src = static_cast<T>(h.xr(d.rs2));
  auto ref = word<T>(p);
  T old = ref.load(std::memory_order_relaxed);
  while (!ref.compare_exchange_weak(old, op(old, src), std::memory_order_seq_cst)) {
  }
  h.xr(d.rd) = widen<T>(old);
  return true;
}

template <typename T>
bool amoswap(Hart& h, const DecodedInsn& d) {
  uint8_t* p = h.atomic_ptr(h.xr(d.rs1), sizeof(T), false);
  if (!p) return false;
  h.xr(d.rd) = widen<T>(word<T>(p).exchange(static_cast<T>(h.xr(d.rs2)), std::memory_order_seq_cst));
  return true;
}
template <typename T>
bool amoadd(Hart& h, const DecodedInsn& d) {
  uint8_t* p = h.atomic_ptr(h.xr(d.rs1), sizeof(T), false);
  if (!p) return false;
  h.xr(d.rd) = widen<T>(word<T>(p).fetch_add(static_cast<T>(h.xr(d.rs2)), std::memory_order_seq_cst));
  return true;
}
template <typename T>
bool amoand(Hart& h, const DecodedInsn& d) {
  uint8_t* p = h.atomic_ptr(h.xr(d.rs1), sizeof(T), false);
  if (!p) return false;
  h.xr(d.rd) = widen<T>(word<T>(p).fetch_and(static_cast<T>(h.xr(d.rs2)), std::memory_order_seq_cst));
  return true;
}
template <typename T>
bool amoor(Hart& h, const DecodedInsn& d) {
  uint8_t* p = h.atomic_ptr(h.xr(d.rs1), sizeof(T), false);
  if (!p) return false;
  h.xr(d.rd) = widen<T>(word<T>(p).fetch_or(static_cast<T>(h.xr(d.rs2)), std::memory_order_seq_cst));
  return true;
}
template <typename T>
bool amoxor(Hart& h, const DecodedInsn& d) {
  uint8_t* p = h.atomic_ptr(h.xr(d.rs1), sizeof(T), false);
  if (!p) return false;
  h.xr(d.rd) = widen<T>(word<T>(p).fetch_xor(static_cast<T>(h.xr(d.rs2)), std::memory_order_seq_cst));
  return true;
}
template <typename T>
bool amomin(Hart& h, const DecodedInsn& d) {
  using S = std::make_signed_t<T>;
  return amo<T>(h, d, [](T a, T b) {
    return static_cast<S>(a) < static_cast<S>(b) ? a : b;
  });
}
template <typename T>
bool amomax(Hart& h, const DecodedInsn& d) {
  using S = std::make_signed_t<T>;
  return amo<T>(h, d, [](T a, T b) {
    return static_cast<S>(a) > static_cast<S>(b) ? a : b;
  });
}
template <typename T>
bool amominu(Hart& h, const DecodedInsn& d) {
  return amo<T>(h, d, [](T a, T b) { return std::min(a, b); });
}
template <typename T>
bool amomaxu(Hart& h, const DecodedInsn& d) {
  return amo<T>(h, d, [](T a, T b) { return std::max(a, b); });
}

#define AMO_PAIR(name, funct5, fn)                                                          \
  INSN(name ".w", kMaskAmo, (funct5 << 27) | 0x202f, kAmo, 0, false, return fn<uint32_t>(h, d);), \
      INSN(name ".d", kMaskAmo, (funct5 << 27) | 0x302f, kAmo, 0, false, return fn<uint64_t>(h, d);)

const InsnSpec kSpecs[] = {
    INSN("lr.w", kMaskAmo | 0x01f00000, 0x1000202f, kLr, 0, false, return lr<uint32_t>(h, d);),
    INSN("lr.d", kMaskAmo | 0x01f00000, 0x1000302f, kLr, 0, false, return lr<uint64_t>(h, d);),
    AMO_PAIR("sc", 0x03u, sc),
    AMO_PAIR("amoswap", 0x01u, amoswap),
    AMO_PAIR("amoadd", 0x00u, amoadd),
    AMO_PAIR("amoxor", 0x04u, amoxor),
    AMO_PAIR("amoand", 0x0cu, amoand),
    AMO_PAIR("amoor", 0x08u, amoor),
    AMO_PAIR("amomin", 0x10u, amomin),
    AMO_PAIR("amomax", 0x14u, amomax),
    AMO_PAIR("amominu", 0x18u, amominu),
    AMO_PAIR("amomaxu", 0x1cu, amomaxu),
};

}  // namespace

std::span<const InsnSpec> rv64a_specs() { return kSpecs; }

}  // namespace doppel::rv64
