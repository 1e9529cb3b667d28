// config.json is outside data: parse_spec must turn any bytes into a Spec or an Error,
// never crash, and a parsed Spec's mount options must parse again.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "oci/spec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto spec = doppel::oci::parse_spec(text);
  if (spec.ok()) {
    for (auto& m : spec.value().mounts)
      if (!doppel::oci::parse_mount_options(m.options).ok()) __builtin_trap();
  }
  (void)doppel::oci::parse_process(text);
  return 0;
}
