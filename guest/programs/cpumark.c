// cpumark: a CoreMark-like CPU benchmark for doppel guests.
//
//   cpumark [iterations]      (default 1; one iteration is about 0.2 s natively)
//
// Each iteration runs five deterministic kernels seeded by the iteration number:
// linked-list work (build, merge sort, reverse, search), an integer matrix multiply,
// a branchy token-classifying state machine, memory traffic (strided copies, memmove,
// CRC-32) and floating point (a double matrix multiply and a Simpson integration).
// Every result is folded into one 64-bit checksum, printed with the wall time:
//
//   cpumark: 20 iterations, checksum 0x..., 4.012 s (0.2006 s/iteration)
//
// The checksum depends only on the iteration count: it is the same on every correct
// run, on every architecture (only + - * / and sqrt are used on doubles, and the guest
// kit compiles with -ffp-contract=off so no fused multiply-add changes a rounding).
// A wrong checksum means the CPU (or its emulator) computed something wrong.
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

// ---- helpers ---------------------------------------------------------------------------

static uint64_t g_sum;  // the running checksum

static void fold(uint64_t v) {
  // FNV-1a over the 8 bytes of v, then a xorshift to spread.
  for (int i = 0; i < 8; i++) {
    g_sum ^= (v >> (8 * i)) & 0xffu;
    g_sum *= 0x100000001b3ull;
  }
  g_sum ^= g_sum >> 29;
}

static void fold_double(double d) {
  uint64_t bits;
  memcpy(&bits, &d, sizeof bits);
  fold(bits);
}

typedef struct {
  uint64_t s;
} Rng;

static uint32_t rng_next(Rng* r) {
  // 64-bit LCG (Knuth MMIX constants), high half out.
  r->s = r->s * 6364136223846793005ull + 1442695040888963407ull;
  return (uint32_t)(r->s >> 32);
}

// ---- 1. linked lists ---------------------------------------------------------------------

enum { LIST_N = 4096, LIST_REPS = 12, LIST_FINDS = 200 };

typedef struct Node {
  struct Node* next;
  uint32_t value;
  uint32_t index;
} Node;

static Node g_nodes[LIST_N];
static uint32_t g_perm[LIST_N];

static Node* list_merge_sort(Node* head) {
  // Bottom-up merge sort on a singly linked list, by value then index (stable).
  if (!head || !head->next) return head;
  size_t width = 1;
  for (;;) {
    Node* p = head;
    Node* tail = NULL;
    Node* new_head = NULL;
    int merges = 0;
    while (p) {
      merges++;
      Node* q = p;
      size_t psize = 0;
      for (size_t i = 0; i < width && q; i++) {
        psize++;
        q = q->next;
      }
      size_t qsize = width;
      while (psize > 0 || (qsize > 0 && q)) {
        Node* e;
        if (psize == 0) {
          e = q;
          q = q->next;
          qsize--;
        } else if (qsize == 0 || !q) {
          e = p;
          p = p->next;
          psize--;
        } else if (p->value < q->value || (p->value == q->value && p->index <= q->index)) {
          e = p;
          p = p->next;
          psize--;
        } else {
          e = q;
          q = q->next;
          qsize--;
        }
        if (tail) tail->next = e;
        else new_head = e;
        tail = e;
      }
      p = q;
    }
    tail->next = NULL;
    head = new_head;
    if (merges <= 1) return head;
    width *= 2;
  }
}

static Node* list_reverse(Node* head) {
  Node* prev = NULL;
  while (head) {
    Node* next = head->next;
    head->next = prev;
    prev = head;
    head = next;
  }
  return prev;
}

static void kernel_list(Rng* r) {
  for (int rep = 0; rep < LIST_REPS; rep++) {
    for (uint32_t i = 0; i < LIST_N; i++) {
      g_nodes[i].value = rng_next(r) & 0xffffu;  // many duplicates: exercises stability
      g_nodes[i].index = i;
      g_perm[i] = i;
    }
    for (uint32_t i = LIST_N - 1; i > 0; i--) {  // Fisher-Yates: link in random order
      uint32_t j = rng_next(r) % (i + 1);
      uint32_t t = g_perm[i];
      g_perm[i] = g_perm[j];
      g_perm[j] = t;
    }
    for (uint32_t i = 0; i + 1 < LIST_N; i++) g_nodes[g_perm[i]].next = &g_nodes[g_perm[i + 1]];
    g_nodes[g_perm[LIST_N - 1]].next = NULL;
    Node* head = list_merge_sort(&g_nodes[g_perm[0]]);

    uint64_t acc = 0;
    uint32_t prev = 0, n = 0;
    int sorted = 1;
    for (Node* p = head; p; p = p->next, n++) {
      if (p->value < prev) sorted = 0;
      prev = p->value;
      acc = acc * 31u + p->value + ((uint64_t)p->index << 20);
    }
    fold(acc);
    fold(n);
    fold((uint64_t)sorted);

    head = list_reverse(head);
    uint32_t found = 0, steps = 0;
    for (int f = 0; f < LIST_FINDS; f++) {
      uint32_t want = rng_next(r) & 0xffffu;
      for (Node* p = head; p; p = p->next) {
        steps++;
        if (p->value == want) {
          found += p->index & 7u;
          break;
        }
        if (p->value < want) break;  // descending after the reverse
      }
    }
    fold(found);
    fold(steps);
  }
}

// ---- 2. integer matrices -----------------------------------------------------------------

enum { IMAT_N = 64, IMAT_REPS = 100 };

static int32_t g_ia[IMAT_N][IMAT_N], g_ib[IMAT_N][IMAT_N];
static int64_t g_ic[IMAT_N][IMAT_N];

static void kernel_int_matrix(Rng* r) {
  for (int rep = 0; rep < IMAT_REPS; rep++) {
    for (int i = 0; i < IMAT_N; i++) {
      for (int j = 0; j < IMAT_N; j++) {
        g_ia[i][j] = (int32_t)(rng_next(r) % 2001u) - 1000;
        g_ib[i][j] = (int32_t)(rng_next(r) % 2001u) - 1000;
      }
    }
    for (int i = 0; i < IMAT_N; i++) {
      for (int j = 0; j < IMAT_N; j++) {
        int64_t s = 0;
        for (int k = 0; k < IMAT_N; k++) s += (int64_t)g_ia[i][k] * g_ib[k][j];
        g_ic[i][j] = s;
      }
    }
    // Add a constant, transpose-accumulate, and fold a few derived values.
    uint64_t acc = 0;
    int64_t maxv = INT64_MIN;
    for (int i = 0; i < IMAT_N; i++) {
      for (int j = 0; j < IMAT_N; j++) {
        int64_t v = g_ic[i][j] + 7 * (int64_t)g_ic[j][i];
        if (v > maxv) maxv = v;
        acc += (uint64_t)v ^ ((uint64_t)v >> 13);
      }
    }
    fold(acc);
    fold((uint64_t)maxv);
  }
}

// ---- 3. state machine --------------------------------------------------------------------

enum { SM_BYTES = 32768, SM_REPS = 160 };

typedef enum { S_START, S_INT, S_FRAC, S_EXP_SIGN, S_EXP, S_SIGN, S_DOT, S_INVALID, S_COUNT } State;

static char g_text[SM_BYTES];

static void kernel_state_machine(Rng* r) {
  static const char alphabet[] = "0123456789012345678.,-+e E x,";
  for (int rep = 0; rep < SM_REPS; rep++) {
    for (int i = 0; i < SM_BYTES; i++) g_text[i] = alphabet[rng_next(r) % (sizeof alphabet - 1)];
    uint32_t transitions[S_COUNT] = {0};
    uint32_t final_counts[S_COUNT] = {0};
    State s = S_START;
    for (int i = 0; i < SM_BYTES; i++) {
      char c = g_text[i];
      State next = s;
      if (c == ',') {  // token separator
        final_counts[s]++;
        next = S_START;
      } else {
        switch (s) {
          case S_START:
            if (c >= '0' && c <= '9') next = S_INT;
            else if (c == '+' || c == '-') next = S_SIGN;
            else if (c == '.') next = S_DOT;
            else next = S_INVALID;
            break;
          case S_SIGN:
            if (c >= '0' && c <= '9') next = S_INT;
            else if (c == '.') next = S_DOT;
            else next = S_INVALID;
            break;
          case S_INT:
            if (c == '.') next = S_FRAC;
            else if (c == 'e' || c == 'E') next = S_EXP_SIGN;
            else if (!(c >= '0' && c <= '9')) next = S_INVALID;
            break;
          case S_DOT:
            next = (c >= '0' && c <= '9') ? S_FRAC : S_INVALID;
            break;
          case S_FRAC:
            if (c == 'e' || c == 'E') next = S_EXP_SIGN;
            else if (!(c >= '0' && c <= '9')) next = S_INVALID;
            break;
          case S_EXP_SIGN:
            if (c == '+' || c == '-' || (c >= '0' && c <= '9')) next = S_EXP;
            else next = S_INVALID;
            break;
          case S_EXP:
            if (!(c >= '0' && c <= '9')) next = S_INVALID;
            break;
          case S_INVALID:
          case S_COUNT:
            break;
        }
      }
      if (next != s) transitions[next]++;
      s = next;
    }
    for (int k = 0; k < S_COUNT; k++) fold(((uint64_t)transitions[k] << 32) | final_counts[k]);
  }
}

// ---- 4. memory traffic -------------------------------------------------------------------

enum { MEM_BYTES = 1 << 20, MEM_REPS = 1 };

static uint8_t g_mem_a[MEM_BYTES], g_mem_b[MEM_BYTES];
static uint32_t g_crc_table[256];

static void crc32_init(void) {
  for (uint32_t i = 0; i < 256; i++) {
    uint32_t c = i;
    for (int k = 0; k < 8; k++) c = (c & 1u) ? 0xedb88320u ^ (c >> 1) : c >> 1;
    g_crc_table[i] = c;
  }
}

static uint32_t crc32(const uint8_t* p, size_t n) {
  uint32_t c = 0xffffffffu;
  for (size_t i = 0; i < n; i++) c = g_crc_table[(c ^ p[i]) & 0xffu] ^ (c >> 8);
  return c ^ 0xffffffffu;
}

static void kernel_memory(Rng* r) {
  for (int rep = 0; rep < MEM_REPS; rep++) {
    uint32_t* wa = (uint32_t*)(void*)g_mem_a;
    for (size_t i = 0; i < MEM_BYTES / 4; i++) wa[i] = rng_next(r);
    // Strided gathers with two strides: cache-line and page.
    static const size_t strides[2] = {64, 4096};
    for (int s = 0; s < 2; s++) {
      size_t stride = strides[s], o = 0;
      for (size_t start = 0; start < stride; start++) {
        for (size_t i = start; i < MEM_BYTES; i += stride) g_mem_b[o++] = (uint8_t)(g_mem_a[i] + start);
      }
      fold(crc32(g_mem_b, MEM_BYTES));
    }
    // Overlapping moves in both directions and a fill.
    memmove(g_mem_b + 3, g_mem_b, MEM_BYTES - 3);
    memmove(g_mem_b, g_mem_b + 4097, MEM_BYTES - 4097);
    memset(g_mem_b + MEM_BYTES / 2, (int)(rep + 1), MEM_BYTES / 8);
    fold(crc32(g_mem_b, MEM_BYTES));
    uint64_t word_sum = 0;
    const uint64_t* wb = (const uint64_t*)(const void*)g_mem_b;
    for (size_t i = 0; i < MEM_BYTES / 8; i++) word_sum += wb[i] ^ (word_sum << 1);
    fold(word_sum);
  }
}

// ---- 5. floating point -------------------------------------------------------------------

enum { FMAT_N = 48, FMAT_REPS = 60, SIMPSON_N = 2000000 };

static double g_fa[FMAT_N][FMAT_N], g_fb[FMAT_N][FMAT_N], g_fc[FMAT_N][FMAT_N];

static double integrand(double x) { return 4.0 / (1.0 + x * x); }  // integral on [0,1] = pi

static void kernel_float(Rng* r) {
  for (int rep = 0; rep < FMAT_REPS; rep++) {
    for (int i = 0; i < FMAT_N; i++) {
      for (int j = 0; j < FMAT_N; j++) {
        g_fa[i][j] = (double)(int32_t)(rng_next(r) % 20001u - 10000u) / 1024.0;
        g_fb[i][j] = (double)(int32_t)(rng_next(r) % 20001u - 10000u) / 3.0;
      }
    }
    for (int i = 0; i < FMAT_N; i++) {
      for (int j = 0; j < FMAT_N; j++) {
        double s = 0.0;
        for (int k = 0; k < FMAT_N; k++) s += g_fa[i][k] * g_fb[k][j];
        g_fc[i][j] = s;
      }
    }
    double trace = 0.0, norm = 0.0;
    for (int i = 0; i < FMAT_N; i++) {
      trace += g_fc[i][i];
      for (int j = 0; j < FMAT_N; j++) norm += g_fc[i][j] * g_fc[i][j];
    }
    fold_double(trace);
    fold_double(sqrt(norm));
  }
  // Composite Simpson's rule; the interval shifts with the seed so iterations differ.
  double a = (double)(rng_next(r) % 16u) / 64.0, b = a + 1.0;
  double h = (b - a) / SIMPSON_N;
  double s = integrand(a) + integrand(b);
  for (int i = 1; i < SIMPSON_N; i++) s += (i & 1 ? 4.0 : 2.0) * integrand(a + h * i);
  fold_double(s * h / 3.0);
}

// ---- main --------------------------------------------------------------------------------

static double now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char** argv) {
  long iterations = 1;
  if (argc > 2 || (argc == 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")))) {
    fprintf(stderr, "usage: cpumark [iterations]   (1..1000000, default 1)\n");
    return 2;
  }
  if (argc == 2) {
    char* end = NULL;
    errno = 0;
    iterations = strtol(argv[1], &end, 10);
    if (errno || end == argv[1] || *end != '\0' || iterations < 1 || iterations > 1000000) {
      fprintf(stderr, "cpumark: iterations must be an integer from 1 to 1000000, got '%s'\n", argv[1]);
      return 2;
    }
  }
  crc32_init();
  g_sum = 0xcbf29ce484222325ull;
  double t0 = now_seconds();
  for (long it = 0; it < iterations; it++) {
    Rng r = {0x9e3779b97f4a7c15ull ^ (uint64_t)it};
    kernel_list(&r);
    kernel_int_matrix(&r);
    kernel_state_machine(&r);
    kernel_memory(&r);
    kernel_float(&r);
  }
  double elapsed = now_seconds() - t0;
  printf("cpumark: %ld iteration%s, checksum 0x%016" PRIx64 ", %.3f s (%.4f s/iteration)\n", iterations,
         iterations == 1 ? "" : "s", g_sum, elapsed, elapsed / (double)iterations);
  return 0;
}
