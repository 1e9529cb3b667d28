// A static glibc program for the differential test: startup (auxv, brk, TLS), stdio,
// malloc through brk and mmap, libm, qsort, string conversions. Prints deterministic
// results only.
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmp_double(const void* a, const void* b) {
  const double x = *(const double*)a, y = *(const double*)b;
  return (x > y) - (x < y);
}

int main(int argc, char** argv) {
  printf("argc %d argv0 ends %s\n", argc, strrchr(argv[0], '/') ? "with a path" : "bare");
  // malloc: small from brk, large from mmap.
  uint64_t sum = 0;
  for (int round = 0; round < 4; ++round) {
    const size_t n = (size_t)1 << (12 + 3 * round);  // 4 KiB .. 2 MiB
    unsigned char* p = malloc(n);
    if (!p) return 10;
    for (size_t i = 0; i < n; ++i) p[i] = (unsigned char)(i * 7 + round);
    for (size_t i = 0; i < n; i += 61) sum = sum * 31 + p[i];
    free(p);
  }
  printf("malloc checksum %llu\n", (unsigned long long)sum);
  // Floating point through libm and printf's conversions.
  double xs[64];
  uint32_t seed = 12345;
  for (int i = 0; i < 64; ++i) {
    seed = seed * 1103515245u + 12345u;
    xs[i] = ((double)(seed >> 8) / 16777216.0 - 0.5) * 1e6;
  }
  qsort(xs, 64, sizeof xs[0], cmp_double);
  printf("sorted %.17g %.17g %.17g\n", xs[0], xs[31], xs[63]);
  printf("libm %.17g %.17g %.17g %.17g\n", sqrt(2.0), exp(1.0), log(10.0), sin(1e3));
  printf("float %a %a %.9g\n", 1.0 / 3.0, (double)(1.0f / 3.0f), (double)sqrtf(3.0f));
  printf("fma %.17g rint %.17g %.17g\n", fma(0.1, 10.0, -1.0), rint(2.5), nearbyint(-3.5));
  // Strings and integer formatting.
  char buf[128];
  snprintf(buf, sizeof buf, "%lld %llx %d %u", (long long)INT64_MIN, 0xdeadbeefcafeULL, -42, 4000000000u);
  printf("snprintf '%s' len %zu\n", buf, strlen(buf));
  printf("strtod %.17g %.17g strtoll %lld\n", strtod("1e-310", NULL), strtod("0x1.8p3", NULL),
         strtoll("-9223372036854775808", NULL, 10));
  return argc + 2;
}
