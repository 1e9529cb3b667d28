// What the guest's CPUs say about themselves, for the KVM lab test (tests/kvm_lab): run in
// the L2 guest as `cpu_probe N`, it pins itself to each online CPU in turn and checks the
// CPUID topology doppel wrote for a VM of N vCPUs in one package, one thread per core:
//   leaf 0x1     EBX[31:24] initial APIC ID = CPU index; EBX[23:16] >= N with HTT if N > 1
//   leaf 0x4     (Intel) EAX[31:26] + 1 = N cores per package
//   leaf 0xb/0x1f  EDX x2APIC ID = CPU index at every level; SMT level 1 thread; core
//                level N processors; a shift that covers N
//   0x80000001   (AMD) ECX CmpLegacy when N > 1 (leaf 0x1's count means cores)
//   0x80000008   (AMD) ECX[7:0] + 1 = N cores; ECX[15:12] shift covers N (0: derived)
//   0x8000001e   (AMD, with TOPOEXT) EAX extended APIC ID = CPU index, EBX[15:8] = 0
// and the FPU state: floating-point results survive context switches on every CPU, and
// when the kernel enabled XSAVE, XCR0 has x87 and SSE and CPUID 0xd.0 EBX (XSAVE area size
// for the features enabled in XCR0) equals the size computed from the 0xd sub-leaves.
// Prints one "probe: cpu I ..." line per CPU, "probe: FAIL ..." per broken rule, and
// "probe: N cpus, topology ok" / "probe: fpu ok" / "probe: xsave ok" when all holds.
// Exit 1 on a failure.
#define _GNU_SOURCE
#include <cpuid.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static int failures;

#define CHECK(cond, ...)                \
  do {                                  \
    if (!(cond)) {                      \
      printf("probe: FAIL ");           \
      printf(__VA_ARGS__);              \
      printf("\n");                     \
      ++failures;                       \
    }                                   \
  } while (0)

struct regs {
  uint32_t a, b, c, d;
};

static struct regs cpuid(uint32_t leaf, uint32_t sub) {
  struct regs r;
  __cpuid_count(leaf, sub, r.a, r.b, r.c, r.d);
  return r;
}

static void check_topology_leaf(uint32_t leaf, unsigned cpu, unsigned n) {
  int saw_core = 0;
  for (uint32_t sub = 0; sub < 8; ++sub) {
    const struct regs r = cpuid(leaf, sub);
    const unsigned type = (r.c >> 8) & 0xff;
    if (type == 0) break;
    CHECK(r.d == cpu, "cpu %u: leaf %#x.%u x2APIC ID %u", cpu, leaf, sub, r.d);
    if (type == 1) CHECK((r.b & 0xffff) == 1, "cpu %u: leaf %#x SMT level has %u threads", cpu, leaf, r.b & 0xffff);
    if (type == 2) {
      saw_core = 1;
      CHECK((r.b & 0xffff) == n, "cpu %u: leaf %#x core level has %u processors, want %u", cpu, leaf,
            r.b & 0xffff, n);
      CHECK((1u << (r.a & 0x1f)) >= n, "cpu %u: leaf %#x core shift %u is too small for %u", cpu, leaf,
            r.a & 0x1f, n);
    }
  }
  CHECK(saw_core, "cpu %u: leaf %#x has no core level", cpu, leaf);
}

static void check_cpu(unsigned cpu, unsigned n, int intel, int amd) {
  const uint32_t max = cpuid(0, 0).a;
  const uint32_t max_ext = cpuid(0x80000000, 0).a;
  const struct regs l1 = cpuid(1, 0);
  const unsigned apic = l1.b >> 24, logical = (l1.b >> 16) & 0xff;
  const int htt = (l1.d >> 28) & 1;
  printf("probe: cpu %u apic %u logical %u htt %d", cpu, apic, logical, htt);
  CHECK(apic == cpu, "cpu %u: leaf 0x1 APIC ID %u", cpu, apic);
  if (n > 1) CHECK(htt && logical >= n, "cpu %u: leaf 0x1 HTT %d, %u logical processors", cpu, htt, logical);
  if (intel && max >= 4) {
    const unsigned cores = (cpuid(4, 0).a >> 26) + 1;
    printf(" leaf4-cores %u", cores);
    CHECK(cores == n, "cpu %u: leaf 0x4 says %u cores", cpu, cores);
  }
  if (max >= 0xb && cpuid(0xb, 0).b != 0) {
    printf(" leafb-x2apic %u", cpuid(0xb, 0).d);
    check_topology_leaf(0xb, cpu, n);
  }
  if (max >= 0x1f && cpuid(0x1f, 0).b != 0) check_topology_leaf(0x1f, cpu, n);
  if (amd && max_ext >= 0x80000008) {
    const struct regs e1 = cpuid(0x80000001, 0), e8 = cpuid(0x80000008, 0);
    const unsigned nc = (e8.c & 0xff) + 1, bits = (e8.c >> 12) & 0xf;
    const int cmp_legacy = (e1.c >> 1) & 1, topoext = (e1.c >> 22) & 1;
    printf(" amd-cores %u coreid-bits %u cmp-legacy %d", nc, bits, cmp_legacy);
    CHECK(nc == n, "cpu %u: leaf 0x80000008 says %u cores", cpu, nc);
    CHECK(bits == 0 || (1u << bits) >= n, "cpu %u: leaf 0x80000008 core ID bits %u", cpu, bits);
    if (n > 1) CHECK(cmp_legacy, "cpu %u: CmpLegacy clear: leaf 0x1's count reads as threads", cpu);
    if (topoext && max_ext >= 0x8000001e) {
      const struct regs t = cpuid(0x8000001e, 0);
      CHECK(t.a == cpu, "cpu %u: leaf 0x8000001e extended APIC ID %u", cpu, t.a);
      CHECK(((t.b >> 8) & 0xff) == 0, "cpu %u: leaf 0x8000001e says %u threads per core", cpu,
            ((t.b >> 8) & 0xff) + 1);
    }
  }
  printf("\n");
}

// A deterministic floating-point series with a yield (a context switch when others run)
// every step: its result only comes out right if the kernel saved and restored the FP/SSE
// registers each time.
static double fp_series(int yield) {
  double x = 1.0, y = 0.0;
  for (int i = 1; i <= 2000; ++i) {
    x = x * 1.0001 + 1.0 / i;
    y += x / (i + 0.5);
    if (yield) sched_yield();
  }
  return x + y;
}

// 2N processes, two per CPU, run the series at once; each must get the undisturbed answer.
static void check_fpu(unsigned n) {
  const double want = fp_series(0);
  pid_t pids[64];
  const unsigned procs = 2 * n < 64 ? 2 * n : 64;
  for (unsigned i = 0; i < procs; ++i) {
    pids[i] = fork();
    if (pids[i] == 0) {
      cpu_set_t set;
      CPU_ZERO(&set);
      CPU_SET(i % n, &set);
      sched_setaffinity(0, sizeof set, &set);
      _exit(fp_series(1) == want ? 0 : 1);
    }
  }
  int bad = 0;
  for (unsigned i = 0; i < procs; ++i) {
    int status = 0;
    if (pids[i] < 0 || waitpid(pids[i], &status, 0) < 0 || !WIFEXITED(status) ||
        WEXITSTATUS(status) != 0)
      ++bad;
  }
  CHECK(bad == 0, "%d of %u processes got a wrong FP result (FP state lost on a switch)", bad, procs);
  if (!bad) printf("probe: fpu ok (%u processes on %u cpus)\n", procs, n);
}

// XCR0 and the XSAVE area size CPUID reports for it (leaf 0xd). Linux turns XSAVE off
// when they disagree ("XSAVE consistency problem"); the probe then says so.
static void check_xsave(void) {
  const int before = failures;
  const struct regs l1 = cpuid(1, 0);
  if (!((l1.c >> 27) & 1)) {  // OSXSAVE
    printf("probe: xsave not enabled by the guest kernel (xsave %s)\n",
           ((l1.c >> 26) & 1) ? "offered" : "not offered");
    return;
  }
  uint32_t lo, hi;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  const uint64_t xcr0 = ((uint64_t)hi << 32) | lo;
  CHECK((xcr0 & 3) == 3, "XCR0 %#llx lacks x87/SSE", (unsigned long long)xcr0);
  uint32_t size = 576;  // legacy area + XSAVE header
  for (unsigned i = 2; i < 63; ++i) {
    if (!((xcr0 >> i) & 1)) continue;
    const struct regs s = cpuid(0xd, i);
    if (s.b + s.a > size) size = s.b + s.a;
  }
  const uint32_t reported = cpuid(0xd, 0).b;
  printf("probe: xsave xcr0 %#llx size %u computed %u\n", (unsigned long long)xcr0, reported, size);
  CHECK(reported == size, "CPUID 0xd.0 EBX %u != %u computed for XCR0 %#llx", reported, size,
        (unsigned long long)xcr0);
  if (failures == before) printf("probe: xsave ok\n");
}

int main(int argc, char** argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: cpu_probe N\n");
    return 2;
  }
  const unsigned n = (unsigned)atoi(argv[1]);
  char vendor[13] = {0};
  const struct regs v = cpuid(0, 0);
  memcpy(vendor, &v.b, 4);
  memcpy(vendor + 4, &v.d, 4);
  memcpy(vendor + 8, &v.c, 4);
  const int intel = strcmp(vendor, "GenuineIntel") == 0;
  const int amd = strcmp(vendor, "AuthenticAMD") == 0 || strcmp(vendor, "HygonGenuine") == 0;
  const long online = sysconf(_SC_NPROCESSORS_ONLN);
  printf("probe: vendor %s, %ld cpus online\n", vendor, online);
  CHECK(online == (long)n, "%ld CPUs online, want %u", online, n);
  for (unsigned cpu = 0; cpu < n; ++cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (sched_setaffinity(0, sizeof set, &set) != 0) {
      CHECK(0, "cannot run on cpu %u", cpu);
      continue;
    }
    check_cpu(cpu, n, intel, amd);
  }
  const int topology_failures = failures;
  if (!topology_failures) printf("probe: %u cpus, topology ok\n", n);
  check_fpu(n);
  check_xsave();
  return failures ? 1 : 0;
}
