// The differential mode (jit/diff_harness.h) over generated programs: the JIT's state must
// equal the interpreter's after every slice, through faults mid-block, self-modifying code,
// interrupts and code cache flushes.
#include <gtest/gtest.h>

#include <algorithm>
#include <iterator>
#include <random>

#include "engines/emu/riscv64/jit/diff_harness.h"

#if defined(__x86_64__)  // the JIT exists on x86-64 hosts only
namespace doppel::rv64::jitdiff {
namespace {

struct Pair {
  std::unique_ptr<Machine> interp, jit;
};

Pair make_machines(const std::vector<uint32_t>& program, size_t jit_cache = 1 << 20) {
  auto a = make_machine(program, false);
  auto b = make_machine(program, true, jit_cache);
  EXPECT_TRUE(a.ok() && b.ok());
  return {a.release_value(), b.release_value()};
}

TEST(JitDiff, GeneratedProgramsMatchTheInterpreterAfterEverySlice) {
  uint64_t translated = 0;
  for (uint64_t seed = 1; seed <= 60; ++seed) {
    std::mt19937_64 rng(seed);
    const auto program = generate(rng, 240);
    Pair p = make_machines(program);
    const std::string diff = run_both(*p.interp, *p.jit, 6000, rng);
    ASSERT_EQ(diff, "") << "seed " << seed;
    translated += p.jit->hart->jit_blocks();
    EXPECT_EQ(p.interp->hart->jit_blocks(), 0u);
  }
  EXPECT_GT(translated, 1000u);  // the JIT did run
}

// Odd registers in -2..2 and half the immediates in -2..2: equal operands, zero shifts,
// sign boundaries. (Seed 18 of these once diverged: a store without fence.i rewrote a
// branch of a block the interpreter was looping in, which it kept running, while the JIT,
// leaving the block at every taken branch, decoded the new code: no longer possible, as a
// store to decoded code now ends its block and drops the page's blocks on both.)
TEST(JitDiff, SmallValuesMatchTheInterpreter) {
  for (uint64_t seed = 1; seed <= 200; ++seed) {
    std::mt19937_64 rng(seed);
    const auto program = generate(rng, 240, true);
    auto a = make_machine(program, false, 1 << 20, true);
    auto b = make_machine(program, true, 1 << 20, true);
    ASSERT_TRUE(a.ok() && b.ok());
    ASSERT_EQ(run_both(*a.value(), *b.value(), 6000, rng), "") << "seed " << seed;
  }
}

TEST(JitDiff, LongSlicesRunWholeBlocksAndChainsOfThem) {
  for (uint64_t seed = 100; seed <= 120; ++seed) {
    std::mt19937_64 rng(seed);
    const auto program = generate(rng, 400);
    Pair p = make_machines(program);
    ASSERT_EQ(run_both(*p.interp, *p.jit, 20000, rng, 2000), "") << "seed " << seed;
  }
}

TEST(JitDiff, AFullCodeCacheIsFlushedAndRefilled) {
  // 6000 blocks of three ALU instructions and a taken branch to the next: more code than a
  // 256 KiB cache holds.
  std::mt19937_64 rng(7);
  std::vector<uint32_t> program;
  while (program.size() < 24000) {
    for (int k = 0; k < 3; ++k) program.push_back(enc::i(static_cast<int32_t>(rng() % 2048), static_cast<uint32_t>(1 + rng() % 19), 0, static_cast<uint32_t>(1 + rng() % 19), 0x13));
    program.push_back(enc::b(4, 0, 0, 0));  // beq x0, x0, +4
  }
  Pair p = make_machines(program, 256 * 1024);
  ASSERT_EQ(run_both(*p.interp, *p.jit, 24000, rng, 500), "");
  EXPECT_GT(p.jit->hart->jit_flushes(), 0u);
}

TEST(JitDiff, StoreIntoTheRunningBlockWithFenceIRunsTheNewCode) {
  using namespace enc;
  // x27 = "addi x5, x0, 42"; sw it over the addi at word 4; fence.i; word 4 runs the new one.
  const uint32_t new_insn = i(42, 0, 0, 5, 0x13);
  const uint32_t lo = new_insn & 0xfff, hi = (new_insn >> 12) + ((lo & 0x800) ? 1 : 0);
  std::vector<uint32_t> program = {
      (hi << 12) | (27u << 7) | 0x37, i(static_cast<int32_t>(lo), 27, 0, 27, 0x1b),
      s(16, 27, 24, 2, 0x23), kFenceI, i(7, 0, 0, 5, 0x13), j(0, 0)};
  Pair p = make_machines(program);
  std::mt19937_64 rng(1);
  ASSERT_EQ(run_both(*p.interp, *p.jit, 200, rng, 3), "");
  EXPECT_EQ(p.jit->hart->x(5), 42u);
}

TEST(JitDiff, StoreIntoDecodedCodeWithoutFenceIRunsTheNewCode) {
  using namespace enc;
  // A loop whose first block is decoded (and translated) on the first pass; the pass then
  // overwrites that block's first instruction, without fence.i, and jumps back to it.
  const uint32_t new_insn = i(42, 0, 0, 5, 0x13);  // addi x5, x0, 42
  const uint32_t lo = new_insn & 0xfff, hi = (new_insn >> 12) + ((lo & 0x800) ? 1 : 0);
  std::vector<uint32_t> program = {
      (hi << 12) | (27u << 7) | 0x37,                // lui x27, hi
      i(static_cast<int32_t>(lo), 27, 0, 27, 0x1b),  // addiw x27, x27, lo
      i(2, 0, 0, 7, 0x13),                           // addi x7, x0, 2
      i(7, 0, 0, 5, 0x13),                           // 12: addi x5, x0, 7 (overwritten)
      i(-1, 7, 0, 7, 0x13),                          // addi x7, x7, -1
      b(12, 0, 7, 0),                                // beq x7, x0, +12
      s(12, 27, 24, 2, 0x23),                        // sw x27, 12(x24)
      j(-16, 0),                                     // j 12
      j(0, 0)};
  for (unsigned max_slice : {3u, 200u}) {
    Pair p = make_machines(program);
    std::mt19937_64 rng(max_slice);
    ASSERT_EQ(run_both(*p.interp, *p.jit, 100, rng, max_slice), "");
    EXPECT_EQ(p.interp->hart->x(5), 42u);
    EXPECT_EQ(p.jit->hart->x(5), 42u);
    EXPECT_EQ(p.jit->hart->pc(), kRamBase + 32);
    EXPECT_GT(p.jit->hart->code_page_drops(), 0u);
    EXPECT_GT(p.jit->hart->jit_blocks(), 0u);
  }
}

// The start of a program that rewrites block B, 4 KiB on, halfway through a loop: x27 =
// `addi x5, x5, 100` (the new instruction), x25 = B's address, x7 = 40 (the loop's count),
// x8 = 20 (where it rewrites), x5 = 0; then `rest` from offset 28, and B from 4096.
std::vector<uint32_t> rewriting_program(std::initializer_list<uint32_t> rest,
                                        std::initializer_list<uint32_t> b_code) {
  using namespace enc;
  const uint32_t new_insn = i(100, 5, 0, 5, 0x13);  // addi x5, x5, 100
  const uint32_t lo = new_insn & 0xfff, hi = (new_insn >> 12) + ((lo & 0x800) ? 1 : 0);
  std::vector<uint32_t> program = {
      (hi << 12) | (27u << 7) | 0x37,                // 0: lui x27, hi
      i(static_cast<int32_t>(lo), 27, 0, 27, 0x1b),  // 4: addiw x27, x27, lo
      (1u << 12) | (25u << 7) | 0x37,                // 8: lui x25, 1
      r(0, 24, 25, 0, 25, 0x33),                     // 12: add x25, x25, x24 (B)
      i(40, 0, 0, 7, 0x13),                          // 16: addi x7, x0, 40
      i(20, 0, 0, 8, 0x13),                          // 20: addi x8, x0, 20
      i(0, 0, 0, 5, 0x13)};                          // 24: addi x5, x0, 0
  program.insert(program.end(), rest);
  program.resize(1024, j(0, 0));
  program.insert(program.end(), b_code);
  program.resize(1024 + 8, j(0, 0));
  return program;
}

TEST(JitDiff, ADirectJumpToABlockWhoseCodeChangedRunsTheNewCode) {
  using namespace enc;
  // Block A (page 0) leaves for block B (page 1) with a jal, a direct way out into another
  // page. Halfway through the loop, B rewrites its own first instruction: only page 1's
  // blocks are dropped, so A's translation stays, and its way out must not reach B's old
  // code.
  const std::vector<uint32_t> program = rewriting_program(
      {i(-1, 7, 0, 7, 0x13),   // 28 (A): addi x7, x7, -1
       j(4096 - 32, 0)},       // 32: j B
      {i(1, 5, 0, 5, 0x13),    // 4096 (B): addi x5, x5, 1 (rewritten)
       b(8, 8, 7, 1),          // 4100: bne x7, x8, +8
       s(0, 27, 25, 2, 0x23),  // 4104: sw x27, 0(x25)
       b(28 - 4108, 0, 7, 1),  // 4108: bne x7, x0, A
       j(0, 0)});              // 4112: done
  Pair p = make_machines(program);
  std::mt19937_64 rng(1);
  ASSERT_EQ(run_both(*p.interp, *p.jit, 400, rng, 1000), "");
  EXPECT_EQ(p.interp->hart->x(5), 20u * 1 + 20u * 100);  // 20 passes before the store, 20 after
  EXPECT_EQ(p.jit->hart->x(5), 2020u);
  EXPECT_EQ(p.jit->hart->pc(), kRamBase + 4112);
  EXPECT_GT(p.jit->hart->code_page_drops(), 0u);
}

TEST(JitDiff, StoresIntoCodeThatWasReadAsDataRunTheNewCode) {
  using namespace enc;
  // Two stores through one base rewrite both instructions of block B, in another page,
  // halfway through the loop. B's page was read as data before, so the read TLB holds it;
  // only the write TLB (which leaves out pages with code) sends the stores to the slow path
  // that drops B.
  const std::vector<uint32_t> program = rewriting_program(
      {i(8, 25, 2, 9, 0x03),   // 28: lw x9, 8(x25): B's page read
       i(-1, 7, 0, 7, 0x13),   // 32 (A): addi x7, x7, -1
       b(12, 8, 7, 1),         // 36: bne x7, x8, +12
       s(0, 27, 25, 2, 0x23),  // 40: sw x27, 0(x25)
       s(4, 27, 25, 2, 0x23),  // 44: sw x27, 4(x25)
       j(4096 - 48, 0)},       // 48: j B
      {i(1, 5, 0, 5, 0x13),    // 4096 (B): addi x5, x5, 1 (rewritten)
       i(1, 5, 0, 5, 0x13),    // 4100: addi x5, x5, 1 (rewritten)
       b(32 - 4104, 0, 7, 1),  // 4104: bne x7, x0, A
       j(0, 0)});              // 4108: done
  Pair p = make_machines(program);
  std::mt19937_64 rng(1);
  ASSERT_EQ(run_both(*p.interp, *p.jit, 400, rng, 1000), "");
  // 19 passes before the stores (x7 39..21), 21 after (20..0).
  EXPECT_EQ(p.interp->hart->x(5), 19u * 2 + 21u * 200);
  EXPECT_EQ(p.jit->hart->x(5), 19u * 2 + 21u * 200);
  EXPECT_EQ(p.jit->hart->pc(), kRamBase + 4108);
}

TEST(JitDiff, ALoadThatMakesItsBaseAnMmioAddressSendsTheNextOnesToTheDevice) {
  using namespace enc;
  // ld x20, 0(x20) loads the echo device's address into its own base, so the next loads
  // through x20 are MMIO: no TLB lookup of the RAM page before may serve them.
  const std::vector<uint32_t> program = {
      i(0, 20, 0, 12, 0x13),   // 0: addi x12, x20, 0
      i(10, 0, 0, 7, 0x13),    // 4: addi x7, x0, 10
      s(0, 22, 20, 3, 0x23),   // 8 (L): sd x22, 0(x20)
      i(8, 20, 3, 9, 0x03),    // 12: ld x9, 8(x20)
      i(0, 20, 3, 20, 0x03),   // 16: ld x20, 0(x20)
      i(8, 20, 3, 10, 0x03),   // 20: ld x10, 8(x20): the device
      i(16, 20, 3, 11, 0x03),  // 24: ld x11, 16(x20): the device
      i(0, 12, 0, 20, 0x13),   // 28: addi x20, x12, 0
      i(-1, 7, 0, 7, 0x13),    // 32: addi x7, x7, -1
      b(8 - 36, 0, 7, 1),      // 36: bne x7, x0, L
      j(0, 0)};                // 40: done
  Pair p = make_machines(program);
  std::mt19937_64 rng(1);
  ASSERT_EQ(run_both(*p.interp, *p.jit, 400, rng, 1000), "");
  EXPECT_EQ(p.jit->hart->x(7), 0u);
  EXPECT_EQ(p.jit->hart->pc(), kRamBase + 40);
}

TEST(JitDiff, APatchedLinkToAnEvictedBlockIsNotFollowed) {
  using namespace enc;
  // S jumps to T in its own page: a patched link. Once, the loop goes to U, 32 KiB on,
  // whose block takes T's decode cache slot (the same index) and so evicts T; back in S,
  // the link patched before must not be followed into T's old translation, whose Block is
  // U's now (T leaves through its ecall, where the run loop reads m_block).
  std::vector<uint32_t> program((32768 + 64) / 4 + 4, j(0, 0));
  const uint32_t st[] = {
      i(30, 0, 0, 7, 0x13),  // 0: addi x7, x0, 30
      i(0, 0, 0, 5, 0x13),   // 4: addi x5, x0, 0
      i(-1, 7, 0, 7, 0x13),  // 8 (S): addi x7, x7, -1
      j(64 - 12, 0)};        // 12: j T
  const uint32_t t[] = {
      i(1, 5, 0, 5, 0x13),   // 64 (T): addi x5, x5, 1
      kEcall,                // 68: ecall (the handler goes on at 72)
      i(15, 0, 0, 6, 0x13),  // 72: addi x6, x0, 15
      b(8, 6, 7, 1),         // 76: bne x7, x6, +8
      j(32832 - 80, 0),      // 80: j U (once, at x7 == 15)
      b(8 - 84, 0, 7, 1),    // 84: bne x7, x0, S
      j(0, 0)};              // 88: done
  const uint32_t u[] = {
      i(3, 9, 0, 9, 0x13),  // 32832 (U): addi x9, x9, 3
      i(1, 9, 0, 9, 0x13),  // 32836: addi x9, x9, 1
      j(84 - 32840, 0)};    // 32840: j 84
  std::copy(std::begin(st), std::end(st), program.begin());
  std::copy(std::begin(t), std::end(t), program.begin() + 16);
  std::copy(std::begin(u), std::end(u), program.begin() + 32832 / 4);
  // Short slices too: translations then also leave at chained entries.
  for (unsigned max_slice : {4u, 1000u}) {
    Pair p = make_machines(program);
    std::mt19937_64 rng(max_slice);
    ASSERT_EQ(run_both(*p.interp, *p.jit, 500, rng, max_slice), "") << "slices up to " << max_slice;
    EXPECT_EQ(p.jit->hart->x(5), 30u);
    EXPECT_EQ(p.jit->hart->pc(), kRamBase + 88);
  }
}

TEST(JitDiff, APinRaisedInsideALoopStopsItAtOnce) {
  using namespace enc;
  // An in-block loop whose store, at one pass, raises the MSIP pin (the echo device, as a
  // CLINT would): the interpreter takes the interrupt at the loop's next branch; a
  // translation looks only at its instret limit there, which the rising pin zeroed.
  std::vector<uint32_t> program = {
      i(40, 0, 0, 7, 0x13),     // 0: addi x7, x0, 40
      i(30, 0, 0, 8, 0x13),     // 4: addi x8, x0, 30
      i(1, 0, 0, 9, 0x13),      // 8: addi x9, x0, 1
      i(-1, 7, 0, 7, 0x13),     // 12 (loop): addi x7, x7, -1
      b(8, 8, 7, 1),            // 16: bne x7, x8, +8
      s(static_cast<int32_t>(EchoDevice::kPinOffset), 9, 22, 3, 0x23),  // 20: sd x9, pin(x22)
      i(1, 10, 0, 10, 0x13),    // 24: addi x10, x10, 1
      b(-16, 0, 7, 1),          // 28: bne x7, x0, loop
      j(0, 0)};                 // 32: done
  for (unsigned max_slice : {50u, 5000u}) {
    Pair p = make_machines(program);
    for (Hart* h : {p.interp->hart.get(), p.jit->hart.get()})
      ASSERT_TRUE(h->write_csr(0x304, 2 | 8));  // mie: SSIE and MSIE
    std::mt19937_64 rng(max_slice);
    ASSERT_EQ(run_both(*p.interp, *p.jit, 600, rng, max_slice), "") << "slices up to " << max_slice;
    EXPECT_EQ(p.jit->hart->pc(), kRamBase + 32);
  }
}

// Loops walking a register across the end of RAM (up: loads and stores) or below its
// start (down: loads), by strides from 1 to 2047 (powers of two and not), at each
// misalignment and access size, stepping before or after the access: the page checks,
// hoisted to the loop head, must stop its unchecked copy before the pass that leaves the
// page, which faults here exactly where the interpreter's does.
TEST(JitDiff, LoopsWalkingOutOfRamFaultWhereTheInterpreterDoes) {
  using namespace enc;
  uint64_t translated = 0;
  for (const int sign : {1, -1}) {
    for (uint32_t size_log = 0; size_log < 4; ++size_log) {
      for (const int step : {1, 2, 3, 8, 24, 384, 1024, 2047}) {
        const int stride = sign * step;
        std::vector<uint32_t> program;
        const auto add_to_x5 = [&](int64_t delta) {  // in steps addi can take
          while (delta != 0) {
            const int64_t part = std::clamp<int64_t>(delta, -2048, 2047);
            program.push_back(i(static_cast<int32_t>(part), 5, 0, 5, 0x13));
            delta -= part;
          }
        };
        for (int misalign = 0; misalign < 8; ++misalign) {
          for (const bool pre : {false, true}) {
            // x5 = three strides and `misalign` bytes from the end of RAM (x23 is 2 bytes
            // before it) or from its start (x24).
            program.push_back(i(0, sign > 0 ? 23 : 24, 0, 5, 0x13));
            add_to_x5(sign > 0 ? 2 - 3 * stride - misalign : 3 * -stride + misalign);
            program.push_back(i(8, 0, 0, 25, 0x13));  // x25 = 8 passes
            const size_t loop = program.size();
            if (pre) program.push_back(i(stride, 5, 0, 5, 0x13));
            program.push_back(i(0, 5, size_log, 6, 0x03));  // l{b,h,w,d} x6, 0(x5)
            program.push_back(r(0, 6, 7, 0, 7, 0x33));      // add x7, x7, x6
            if (sign > 0) program.push_back(s(0, 25, 5, size_log, 0x23));  // s{b,h,w,d} x25
            if (!pre) program.push_back(i(stride, 5, 0, 5, 0x13));
            program.push_back(i(-1, 25, 0, 25, 0x13));
            const auto back = static_cast<int32_t>(4 * (program.size() - loop));
            program.push_back(b(-back, 0, 25, 1));  // bne x25, x0, loop
          }
        }
        program.push_back(j(0, 0));
        Pair p = make_machines(program);
        std::mt19937_64 rng(static_cast<uint64_t>(stride) * 8 + size_log);
        ASSERT_EQ(run_both(*p.interp, *p.jit, 6000, rng, 500), "")
            << "stride " << stride << ", size " << (1 << size_log);
        EXPECT_EQ(p.jit->hart->pc(), kRamBase + 4 * (program.size() - 1));
        translated += p.jit->hart->jit_blocks();
      }
    }
  }
  EXPECT_GT(translated, 0u);
}

TEST(JitDiff, StoreIntoTheRunningBlockWithoutFenceIEndsIt) {
  using namespace enc;
  // The store rewrites the next instruction of its own block: it runs the new one.
  const uint32_t new_insn = i(42, 0, 0, 5, 0x13);
  const uint32_t lo = new_insn & 0xfff, hi = (new_insn >> 12) + ((lo & 0x800) ? 1 : 0);
  std::vector<uint32_t> program = {
      (hi << 12) | (27u << 7) | 0x37, i(static_cast<int32_t>(lo), 27, 0, 27, 0x1b),
      s(12, 27, 24, 2, 0x23), i(7, 0, 0, 5, 0x13), i(1, 5, 0, 6, 0x13), j(0, 0)};
  Pair p = make_machines(program);
  std::mt19937_64 rng(1);
  ASSERT_EQ(run_both(*p.interp, *p.jit, 50, rng, 100), "");
  EXPECT_EQ(p.jit->hart->x(5), 42u);
  EXPECT_EQ(p.jit->hart->x(6), 43u);
}

}  // namespace
}  // namespace doppel::rv64::jitdiff
#endif  // __x86_64__
