// libFuzzer: a random instruction stream (the input, as 32-bit words) run by the
// interpreter and by the JIT in the differential mode (diff_harness.h); any difference in
// architectural state or RAM aborts.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>

#include "engines/emu/riscv64/jit/diff_harness.h"

using namespace doppel::rv64::jitdiff;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 8) return 0;
  uint64_t seed;
  std::memcpy(&seed, data, 8);
  data += 8;
  size -= 8;
  std::vector<uint32_t> program;
  for (size_t k = 0; k + 4 <= size && program.size() < 512; k += 4) {
    uint32_t w;
    std::memcpy(&w, data + k, 4);
    program.push_back(w);
  }
  program.push_back(enc::j(0, 0));
  auto a = make_machine(program, false);
  auto b = make_machine(program, true);
  if (!a.ok() || !b.ok()) return 0;
  std::mt19937_64 rng(seed);
  const std::string diff = run_both(*a.value(), *b.value(), 3000, rng);
  if (!diff.empty()) {
    std::fprintf(stderr, "jit differs from the interpreter: %s\n", diff.c_str());
    std::abort();
  }
  return 0;
}
