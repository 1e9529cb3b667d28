// libFuzzer: the ELF parser (boot/riscv64/elf.h) on arbitrary bytes, as `--kernel` or
// `--firmware` hands it a file. Every segment it returns must lie inside the input.
#include <cstdint>
#include <cstdlib>
#include <span>

#include "boot/riscv64/elf.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const uint8_t> file(data, size);
  auto r = doppel::rv64boot::parse_elf(file, "fuzz");
  if (!r.ok()) return 0;
  for (const auto& s : r->segments) {
    if (s.offset > size || s.file_size > size - s.offset || s.file_size > s.mem_size ||
        s.paddr < r->low || s.paddr + s.mem_size > r->high)
      std::abort();
  }
  return 0;
}
