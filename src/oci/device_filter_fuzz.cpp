// A config.json's device rules become a BPF program the kernel loads: whatever the rules,
// the generator returns an Error or a well-formed program (every jump lands inside it,
// forward, and every path ends in an exit), never crashes.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "sandbox/device_filter.h"
#include "oci/spec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto spec = doppel::oci::parse_spec(text);
  if (!spec.ok()) return 0;
  auto rules = doppel::sandbox::container_device_rules(spec.value().linux.resources.devices, spec.value().linux.devices);
  auto program = doppel::sandbox::device_filter_program(rules);
  if (!program.ok()) return 0;
  const auto& p = program.value();
  if (p.empty() || p.back().code != (BPF_JMP | BPF_EXIT)) __builtin_trap();
  for (size_t i = 0; i < p.size(); i++) {
    if (BPF_CLASS(p[i].code) != BPF_JMP32) continue;
    if (p[i].off <= 0 || i + 1 + static_cast<size_t>(p[i].off) >= p.size()) __builtin_trap();
  }
  return 0;
}
