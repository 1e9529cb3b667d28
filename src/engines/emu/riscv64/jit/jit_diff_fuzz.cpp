// libFuzzer: a random instruction stream (the input after its first 8 bytes, as 32-bit
// words) followed by a generated program (diff_harness.h generate(), seeded by the first 8
// bytes, small values when the seed is odd), run by the interpreter and by the JIT in the
// differential mode; any difference in architectural state or RAM aborts. The generated
// part makes even the first short inputs real programs (loops, faults, self-modifying code).
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
  std::mt19937_64 rng(seed);
  const bool small = (seed & 1) != 0;
  for (uint32_t w : generate(rng, 200, small)) program.push_back(w);
  auto a = make_machine(program, false, 1 << 20, small);
  auto b = make_machine(program, true, 1 << 20, small);
  if (!a.ok() || !b.ok()) return 0;
  const std::string diff = run_both(*a.value(), *b.value(), 3000, rng);
  if (!diff.empty()) {
    std::fprintf(stderr, "jit differs from the interpreter: %s\n", diff.c_str());
    std::abort();
  }
  return 0;
}
