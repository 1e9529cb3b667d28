// Every saved state struct (rule 9) to and from the bytes of a state file section
// (vmm/state_file.h), in base/state_io.h's encoding: the fields in declaration order, the
// struct's version first.
//
// decode_state() refuses a version it does not know and values the struct can never hold
// (a privilege level 2, a boolean 7, more harts or PLIC sources than any machine has, two
// per-hart vectors of different lengths), naming the field; whether the state fits the
// machine it is restored into (as many harts, the same queues) is the restore()'s check.
// Decoding is canonical: what decodes re-encodes to the same bytes.
//
// KVM's structs are their raw bytes, their size checked on decode: a state file of the
// KVM engine is for the same host architecture, like KVM itself.
//
// Threads: plain functions.
#pragma once

#include <string>
#include <string_view>
#include <utility>

#include "base/result.h"
#include "base/state_io.h"
#include "devices/legacy/acpi_pm.h"
#include "devices/legacy/i8042.h"
#include "devices/legacy/uart_16550.h"
#include "devices/virtio/virtio_mmio.h"
#include "devices/virtio/virtqueue.h"
#include "engines/emu/riscv64/clint.h"
#include "engines/emu/riscv64/hart.h"
#include "engines/emu/riscv64/plic.h"
#include "engines/emu/riscv64/timebase.h"
#include "engines/kvm/kvm_vcpu.h"
#include "engines/kvm/kvm_vm.h"
#include "vmm/state_file.h"

namespace doppel {

// Sanity limits, far above any machine doppel builds (VmConfig's kMaxCpus), so that raising
// those does not invalidate files; a file beyond them is refused, not allocated for.
constexpr size_t kMaxStateHarts = 1024;
constexpr size_t kMaxStatePlicSources = 1024;  // Plic's own limit
constexpr size_t kMaxStatePlicContexts = 2 * kMaxStateHarts;
constexpr size_t kMaxStateVirtqueues = 1024;
constexpr size_t kMaxStateMsrs = 4096;  // KVM lists a few hundred
constexpr size_t kMaxStateLimiters = 16;  // a device has one or two

void encode_state(StateWriter& w, const rv64::HartState& s);
void encode_state(StateWriter& w, const rv64::ClintState& s);
void encode_state(StateWriter& w, const rv64::PlicState& s);
void encode_state(StateWriter& w, const rv64::TimebaseState& s);
void encode_state(StateWriter& w, const Uart16550State& s);
void encode_state(StateWriter& w, const I8042State& s);
void encode_state(StateWriter& w, const AcpiPmState& s);
void encode_state(StateWriter& w, const virtio::Virtqueue::State& s);
void encode_state(StateWriter& w, const virtio::VirtioMmioState& s);
void encode_state(StateWriter& w, const virtio::VirtioLimitsState& s);
void encode_state(StateWriter& w, const kvm::VcpuState& s);
void encode_state(StateWriter& w, const kvm::KvmVmState& s);

Result<void> decode_state(StateReader& r, rv64::HartState& s);
Result<void> decode_state(StateReader& r, rv64::ClintState& s);
Result<void> decode_state(StateReader& r, rv64::PlicState& s);
Result<void> decode_state(StateReader& r, rv64::TimebaseState& s);
Result<void> decode_state(StateReader& r, Uart16550State& s);
Result<void> decode_state(StateReader& r, I8042State& s);
Result<void> decode_state(StateReader& r, AcpiPmState& s);
Result<void> decode_state(StateReader& r, virtio::Virtqueue::State& s);
Result<void> decode_state(StateReader& r, virtio::VirtioMmioState& s);
Result<void> decode_state(StateReader& r, virtio::VirtioLimitsState& s);
Result<void> decode_state(StateReader& r, kvm::VcpuState& s);
Result<void> decode_state(StateReader& r, kvm::KvmVmState& s);

// A section named `name` holding `state`; its version is the struct's.
template <typename T>
StateSection make_section(std::string name, const T& state) {
  StateWriter w;
  encode_state(w, state);
  return StateSection{std::move(name), state.version, w.take()};
}

// `section` as a T: its version must be T's, and its data decode to the last byte.
// Errors start with the section's name: "hart 1: pc: truncated at byte 84 (...)".
// A T that still reads older versions names the oldest (T::kOldestVersion); its
// decode_state() reads each of them, and the data's version must be the section's.
template <typename T>
constexpr uint32_t oldest_state_version() {
  if constexpr (requires { T::kOldestVersion; })
    return T::kOldestVersion;
  else
    return T::kVersion;
}

template <typename T>
Result<T> decode_section(const StateSection& section) {
  constexpr uint32_t oldest = oldest_state_version<T>();
  if (section.version < oldest || section.version > T::kVersion) {
    if constexpr (oldest == T::kVersion)
      return Error::format("{}: section version {} is not supported (this doppel reads {})",
                           section.name, section.version, T::kVersion);
    else
      return Error::format("{}: section version {} is not supported (this doppel reads {} to {})",
                           section.name, section.version, oldest, T::kVersion);
  }
  StateReader r(section.data);
  T state;
  if (auto d = decode_state(r, state); !d.ok()) return d.release_error().context(section.name);
  if (auto e = r.expect_end("after the state"); !e.ok())
    return e.release_error().context(section.name);
  if (state.version != section.version)
    return Error::format("{}: the section says version {}, its data version {}", section.name,
                         section.version, state.version);
  return state;
}

// The section `name` of `file`, decoded as a T (decode_section()).
template <typename T>
Result<T> read_section(const StateFile& file, std::string_view name) {
  const StateSection* section = file.find(name);
  if (section == nullptr) return Error::format("{}: no such section in the state file", name);
  return decode_section<T>(*section);
}

}  // namespace doppel
