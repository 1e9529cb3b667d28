// hostile: a hostile guest user program (issue 14, part 5). As root, through /dev/mem,
// for SECONDS of guest time it writes random values, at random offsets and widths, to every
// MMIO register of every device the guest can discover, and drives every virtio-mmio device
// onto virtqueues full of random descriptors, over and over.
//
//   hostile SECONDS [SEED]      (SEED: decimal or 0x..., random when absent; printed first)
//
// Discovery is the guest's own: /proc/device-tree/soc (riscv64), virtio_mmio.device= on
// /proc/cmdline and /proc/ioports (x86_64), /proc/iomem for RAM. Left alone, and why:
//  - the test finisher / syscon (riscv64 "sifive,test*", "syscon"), x86's ACPI PM port and
//    i8042 reset commands: a write there powers the VM off or resets it, by design;
//  - x86's local APIC and I/O APIC: KVM's in-kernel irqchip emulates them, not doppel;
//  - riscv64's CLINT mtime: it is the guest's clocksource, and any write can move it back
//    (even "read it, write it a little ahead" races the clock when the vCPU is descheduled):
//    Linux's timekeeping then breaks, and this program's own timed run with it. The
//    bare-metal tests/hostile guest writes it from M-mode.
// The kernel's drivers for these devices are disturbed, which is expected. So that the
// guest stays alive to print the result, the devices' DMA never targets RAM the kernel owns:
// rings the device writes and device-writable buffers lie in pages this program locked
// (physical addresses from /proc/self/pagemap) or outside RAM; descriptor tables lie in
// other such pages or outside RAM (device-readable buffers may point anywhere). The UART,
// PLIC and CLINT registers the kernel relies on are read first and put back at the end.
// The last line is "hostile: done W writes N notifies Q queues F faults". Console input that
// arrives while it runs is dropped (it may be the UART's own output looped back): put what
// should follow on the same command line (`hostile 20; poweroff -f`).
#define _GNU_SOURCE
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <termios.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>
#if defined(__x86_64__)
#include <sys/io.h>
#endif

// ---- random numbers (xorshift64*: replayable from the seed) ----
static uint64_t g_rng;
static uint64_t rnd(void) {
  g_rng ^= g_rng >> 12;
  g_rng ^= g_rng << 25;
  g_rng ^= g_rng >> 27;
  return g_rng * 0x2545f4914f6cdd1dull;
}
static uint64_t below(uint64_t n) { return n ? rnd() % n : 0; }
static int chance(unsigned percent) { return below(100) < percent; }
// A value devices take badly: 0, all ones, small, one bit, 16-bit, or anything.
static uint64_t nasty(void) {
  switch (below(6)) {
    case 0: return 0;
    case 1: return ~0ull;
    case 2: return below(8);
    case 3: return 1ull << below(64);
    case 4: return below(0x10000);
    default: return rnd();
  }
}

// ---- what the guest found ----
enum Kind { kVirtio, kUart, kPlic, kClint, kOther };
static const char* const kKindName[] = {"virtio", "uart", "plic", "clint", "mmio"};
struct Region {
  enum Kind kind;
  uint64_t base, size;
  volatile uint8_t* map;
  unsigned long writes, faults;
  int disabled;  // every write faulted: not writable from user space
};
#define kMaxRegions 64
static struct Region g_regions[kMaxRegions];
static unsigned g_nregions;
struct Range {
  uint64_t start, end;  // [start, end)
};
static struct Range g_ram[32];
static unsigned g_nram;
static uint64_t g_ram_end;
static unsigned g_harts = 1;

static unsigned long g_writes, g_notifies, g_queues, g_faults;

static void add_region(enum Kind kind, uint64_t base, uint64_t size) {
  if (g_nregions == kMaxRegions || size == 0) return;
  g_regions[g_nregions++] = (struct Region){.kind = kind, .base = base, .size = size};
}

static int read_file(const char* path, void* buf, size_t cap, size_t* len) {
  int fd = open(path, O_RDONLY);
  if (fd < 0) return -1;
  size_t n = 0;
  for (;;) {
    ssize_t r = read(fd, (char*)buf + n, cap - n);
    if (r <= 0) break;
    n += (size_t)r;
    if (n == cap) break;
  }
  close(fd);
  *len = n;
  return 0;
}

static uint64_t be32(const uint8_t* p) {
  return (uint64_t)p[0] << 24 | (uint64_t)p[1] << 16 | (uint64_t)p[2] << 8 | p[3];
}

// True if the NUL-separated list of compatible strings holds one starting with prefix.
static int compatible_has(const char* list, size_t len, const char* prefix) {
  for (size_t i = 0; i < len; i += strlen(list + i) + 1) {
    if (strncmp(list + i, prefix, strlen(prefix)) == 0) return 1;
  }
  return 0;
}

// riscv64: every node of /soc with a reg (the device tree says #address-cells = 2 and
// #size-cells = 2 there; a node saying otherwise is skipped, named).
static void discover_device_tree(void) {
  DIR* d = opendir("/proc/device-tree/soc");
  if (!d) return;
  struct dirent* e;
  while ((e = readdir(d))) {
    if (e->d_name[0] == '.') continue;
    char path[512], compat[512];
    uint8_t reg[64];
    size_t clen = 0, rlen = 0;
    snprintf(path, sizeof path, "/proc/device-tree/soc/%s/compatible", e->d_name);
    if (read_file(path, compat, sizeof compat - 1, &clen) < 0) continue;
    compat[clen] = 0;
    snprintf(path, sizeof path, "/proc/device-tree/soc/%s/reg", e->d_name);
    if (read_file(path, reg, sizeof reg, &rlen) < 0 || rlen < 16) {
      printf("hostile: %s: no 64-bit reg, skipped\n", e->d_name);
      continue;
    }
    uint64_t base = be32(reg) << 32 | be32(reg + 4), size = be32(reg + 8) << 32 | be32(reg + 12);
    if (compatible_has(compat, clen, "sifive,test") || compatible_has(compat, clen, "syscon") ||
        compatible_has(compat, clen, "google,goldfish-rtc")) {
      printf("hostile: %s (%s) excluded: writing it powers off or resets the VM\n", e->d_name,
             compat);
    } else if (compatible_has(compat, clen, "virtio,mmio")) {
      add_region(kVirtio, base, size);
    } else if (compatible_has(compat, clen, "ns16550")) {
      add_region(kUart, base, size);
    } else if (compatible_has(compat, clen, "riscv,plic") ||
               compatible_has(compat, clen, "sifive,plic")) {
      add_region(kPlic, base, size);
    } else if (compatible_has(compat, clen, "riscv,clint") ||
               compatible_has(compat, clen, "sifive,clint")) {
      add_region(kClint, base, size);
    } else {
      add_region(kOther, base, size);
    }
  }
  closedir(d);
  // Harts: /proc/device-tree/cpus/cpu@N.
  d = opendir("/proc/device-tree/cpus");
  if (d) {
    unsigned n = 0;
    while ((e = readdir(d))) n += strncmp(e->d_name, "cpu@", 4) == 0;
    closedir(d);
    if (n) g_harts = n;
  }
}

static int has_kind(enum Kind k) {
  for (unsigned i = 0; i < g_nregions; i++) if (g_regions[i].kind == k) return 1;
  return 0;
}

static uint64_t parse_size(const char* s, char** end) {
  uint64_t v = strtoull(s, end, 0);
  switch (**end) {
    case 'K': case 'k': v <<= 10; (*end)++; break;
    case 'M': case 'm': v <<= 20; (*end)++; break;
    case 'G': case 'g': v <<= 30; (*end)++; break;
    default: break;
  }
  return v;
}

// x86_64: virtio_mmio.device=<size>@<base>:<irq> on the kernel command line.
static void discover_cmdline(void) {
  char buf[4096];
  size_t len = 0;
  if (read_file("/proc/cmdline", buf, sizeof buf - 1, &len) < 0) return;
  buf[len] = 0;
  for (char* p = buf; (p = strstr(p, "virtio_mmio.device=")); ) {
    p += strlen("virtio_mmio.device=");
    char* end;
    uint64_t size = parse_size(p, &end);
    if (*end != '@') continue;
    uint64_t base = strtoull(end + 1, &end, 0);
    add_region(kVirtio, base, size);
    p = end;
  }
}

// System RAM from /proc/iomem (top-level lines only; root sees the real addresses).
static void discover_ram(void) {
  FILE* f = fopen("/proc/iomem", "r");
  if (!f) return;
  char line[256];
  while (fgets(line, sizeof line, f)) {
    if (line[0] == ' ' || !strstr(line, "System RAM")) continue;
    unsigned long long s, e;
    if (sscanf(line, "%llx-%llx", &s, &e) != 2 || g_nram == 32) continue;
    g_ram[g_nram++] = (struct Range){s, e + 1};
    if (e + 1 > g_ram_end) g_ram_end = e + 1;
  }
  fclose(f);
}

// ---- the pages this program owns ----
#define kPageSize 4096u
#define kPoolPages 32
#define kHeaderPage (kPoolPages - 1)  // table page for request headers (plausible_chain)
#define kTablePages (kPoolPages - 1)  // the others hold descriptor tables and rings
struct Page {
  uint8_t* va;
  uint64_t pa;
};
static struct Page g_table_pages[kPoolPages];  // descriptor tables, available rings: written by us
static struct Page g_write_pages[kPoolPages];  // used rings, device-writable buffers: by devices

static int pool_init(struct Page* pages) {
  uint8_t* mem = mmap(NULL, kPoolPages * kPageSize, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE | MAP_LOCKED, -1, 0);
  if (mem == MAP_FAILED) return -1;
  memset(mem, 0x5a, kPoolPages * kPageSize);
  int fd = open("/proc/self/pagemap", O_RDONLY);
  if (fd < 0) return -1;
  for (unsigned i = 0; i < kPoolPages; i++) {
    uint64_t entry = 0;
    off_t off = (off_t)(((uintptr_t)mem / kPageSize + i) * sizeof entry);
    if (pread(fd, &entry, sizeof entry, off) != sizeof entry) { close(fd); return -1; }
    uint64_t pfn = entry & ((1ull << 55) - 1);
    if (!(entry >> 63) || pfn == 0) {  // not present, or the PFN hidden (not root)
      close(fd);
      errno = EPERM;
      return -1;
    }
    pages[i] = (struct Page){mem + (size_t)i * kPageSize, pfn * kPageSize};
  }
  close(fd);
  return 0;
}

// ---- addresses a device may be given ----
static const struct Region* random_device(void) { return &g_regions[below(g_nregions)]; }

// An address range of len bytes wholly outside RAM: above it, far above, wrapping around
// the top of the address space, or on a device's registers.
static uint64_t outside_ram(uint64_t len) {
  for (;;) {
    uint64_t a;
    switch (below(5)) {
      case 0: a = g_ram_end + below(1ull << 30); break;
      case 1: a = (1ull << (40 + below(24))) + below(1ull << 30); break;
      case 2: a = ~0ull - below(len + 64); break;  // wraps when len is added
      case 3: a = random_device()->base + below(0x200); break;
      default: a = rnd() | (1ull << 63); break;
    }
    int in_ram = 0;
    for (unsigned i = 0; i < g_nram; i++) {
      uint64_t end = a + len;
      if (end < a) end = ~0ull;  // wrapped: the tail [0, a+len) could be RAM
      if (a < g_ram[i].end && end > g_ram[i].start) in_ram = 1;
      if (a + len < a && g_ram[i].start < a + len) in_ram = 1;
    }
    if (!in_ram) return a;
  }
}

// Where a device may write len bytes: inside one of our write pages, or outside RAM.
static uint64_t writable_target(uint32_t* len) {
  if (*len <= kPageSize && chance(80)) {
    const struct Page* p = &g_write_pages[below(kPoolPages)];
    return p->pa + below(kPageSize - *len + 1);
  }
  return outside_ram(*len);
}

// Where a device may read len bytes: anywhere (kernel RAM included), in our pages or outside.
static uint64_t readable_target(uint32_t len) {
  switch (below(4)) {
    case 0: {
      const struct Range* r = &g_ram[below(g_nram)];
      return r->start + below(r->end - r->start);
    }
    case 1: return g_table_pages[below(kPoolPages)].pa + below(kPageSize);
    case 2: return g_write_pages[below(kPoolPages)].pa + below(kPageSize);
    default: return outside_ram(len);
  }
}

static uint32_t random_len(void) {
  switch (below(5)) {
    case 0: return 0;
    case 1: return (uint32_t)below(17);
    case 2: return (uint32_t)below(kPageSize + 1);
    case 3: return (uint32_t)(1u << below(32));
    default: return (uint32_t)rnd();
  }
}

// ---- writes through /dev/mem, surviving faults ----
static sigjmp_buf g_fault_jmp;
static volatile sig_atomic_t g_in_write;
// A fault anywhere else ends the program with status 111 and a line on stderr that says
// which signal, at which address and pc (async-signal-safe: no stdio).
static void put_hex(char** p, uint64_t v) {
  *(*p)++ = '0';
  *(*p)++ = 'x';
  for (int shift = 60; shift >= 0; shift -= 4) *(*p)++ = "0123456789abcdef"[(v >> shift) & 15];
}
static void on_fault(int sig, siginfo_t* si, void* context) {
  if (g_in_write) siglongjmp(g_fault_jmp, 1);
  uint64_t pc = 0;
#if defined(__x86_64__)
  pc = (uint64_t)((ucontext_t*)context)->uc_mcontext.gregs[REG_RIP];
#elif defined(__riscv)
  pc = (uint64_t)((ucontext_t*)context)->uc_mcontext.__gregs[REG_PC];
#else
  (void)context;
#endif
  char line[128], *p = line;
  const char* what = sig == SIGBUS ? "\nhostile: SIGBUS, code " : "\nhostile: SIGSEGV, code ";
  while (*what) *p++ = *what++;
  put_hex(&p, (uint64_t)si->si_code);
  for (const char* s = ", address "; *s;) *p++ = *s++;
  put_hex(&p, (uint64_t)(uintptr_t)si->si_addr);
  for (const char* s = ", pc "; *s;) *p++ = *s++;
  put_hex(&p, pc);
  *p++ = '\n';
  (void)!write(STDERR_FILENO, line, (size_t)(p - line));
  _exit(111);
}

static void mmio_write(struct Region* r, uint64_t off, unsigned width, uint64_t v) {
  if (r->disabled || off + width > r->size) return;
  volatile uint8_t* p = r->map + off;
  if (sigsetjmp(g_fault_jmp, 0)) {
    g_in_write = 0;
    r->faults++;
    g_faults++;
    if (r->writes == 0 && r->faults >= 8) r->disabled = 1;
    return;
  }
  g_in_write = 1;
  switch (width) {
    case 1: *p = (uint8_t)v; break;
    case 2: *(volatile uint16_t*)p = (uint16_t)v; break;
    case 4: *(volatile uint32_t*)p = (uint32_t)v; break;
    default: *(volatile uint64_t*)p = v; break;
  }
  g_in_write = 0;
  r->writes++;
  g_writes++;
}

static uint64_t mmio_read(struct Region* r, uint64_t off, unsigned width) {
  if (r->disabled || off + width > r->size) return 0;
  volatile uint8_t* p = r->map + off;
  uint64_t v = 0;
  if (sigsetjmp(g_fault_jmp, 0)) {
    g_in_write = 0;
    return 0;
  }
  g_in_write = 1;
  switch (width) {
    case 1: v = *p; break;
    case 2: v = *(volatile uint16_t*)p; break;
    case 4: v = *(volatile uint32_t*)p; break;
    default: v = *(volatile uint64_t*)p; break;
  }
  g_in_write = 0;
  return v;
}

// ---- virtio-mmio (virtio 1.2 4.2.2) ----
enum {
  kDeviceId = 0x008, kDeviceFeatures = 0x010, kDeviceFeaturesSel = 0x014,
  kDriverFeatures = 0x020, kDriverFeaturesSel = 0x024, kQueueSel = 0x030, kQueueNumMax = 0x034,
  kQueueNum = 0x038, kQueueReady = 0x044, kQueueNotify = 0x050, kInterruptAck = 0x064,
  kStatus = 0x070, kQueueDescLow = 0x080, kQueueDeviceHigh = 0x0a4, kConfig = 0x100,
};
enum { kDescNext = 1, kDescWrite = 2, kDescIndirect = 4 };

static void w32(struct Region* r, uint64_t off, uint32_t v) { mmio_write(r, off, 4, v); }
static void w_addr(struct Region* r, uint64_t low_reg, uint64_t a) {
  w32(r, low_reg, (uint32_t)a);
  w32(r, low_reg + 4, (uint32_t)(a >> 32));
}

static void put_desc(uint8_t* d, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next);

// One random descriptor following the rules above; indirect tables in our table pages.
static void random_desc(uint8_t* d, uint16_t num, int depth) {
  uint16_t flags = 0;
  if (chance(50)) flags |= kDescNext;
  if (chance(45)) flags |= kDescWrite;
  if (chance(depth ? 5 : 12)) flags |= kDescIndirect;
  if (chance(3)) flags = (uint16_t)rnd();
  uint32_t len = random_len();
  uint64_t addr;
  if (flags & kDescIndirect) {
    // The device reads descriptors from the table: it must lie in a table page.
    const struct Page* p = &g_table_pages[below(kTablePages)];
    uint32_t entries = (uint32_t)below(kPageSize / 16) + 1;
    uint32_t off = (uint32_t)below(kPageSize / 16 - entries + 1) * 16;
    len = chance(90) ? entries * 16 : (uint32_t)below(entries * 16 + 1);
    addr = p->pa + off;
    if (depth < 2) {
      for (uint32_t i = 0; i < entries; i++) random_desc(p->va + off + i * 16, (uint16_t)entries, depth + 1);
    }
    if (chance(5)) addr = outside_ram(len);
  } else if (flags & kDescWrite) {
    addr = writable_target(&len);
  } else {
    addr = readable_target(len);
  }
  uint16_t next = chance(85) ? (uint16_t)below(num) : (uint16_t)rnd();
  put_desc(d, addr, len, flags, next);
}

#define kMaxNum 256u                 // a 4 KiB page holds a table of 256 descriptors
#define kAvailMax (6 + 2 * kMaxNum)  // bytes of an available ring of kMaxNum entries
#define kUsedMax (6 + 8 * kMaxNum)   // and of a used ring
struct QueueSetup {
  uint32_t sel;
  uint16_t num;
  uint8_t* desc;   // our mapping of the table, or NULL when it lies outside RAM
  uint8_t* avail;
  uint16_t avail_idx;
};

static void put_desc(uint8_t* d, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next) {
  memcpy(d, &addr, 8);
  memcpy(d + 8, &len, 4);
  memcpy(d + 12, &flags, 2);
  memcpy(d + 14, &next, 2);
}

// A chain shaped like a request (header, data, status), so that devices get past their
// first checks: a virtio-blk header with a real request type and a small sector, random
// bytes after it (what net, console and vsock read as their headers). Returns its head.
static uint16_t plausible_chain(struct QueueSetup* q) {
  static const uint32_t kBlkTypes[] = {0, 1, 4, 8, 11, 13};  // in, out, flush, get id, discard, write zeroes
  const struct Page* hp = &g_table_pages[kHeaderPage];
  uint32_t hoff = (uint32_t)below(kPageSize / 64) * 64;
  uint8_t* hdr = hp->va + hoff;
  for (unsigned i = 0; i < 64; i++) hdr[i] = (uint8_t)rnd();
  uint32_t type = kBlkTypes[below(6)], zero = 0;
  uint64_t sector = below(1u << 16);
  memcpy(hdr, &type, 4);
  memcpy(hdr + 4, &zero, 4);
  memcpy(hdr + 8, &sector, 8);
  uint16_t h = (uint16_t)below(q->num - 2u);
  uint32_t dlen = 512 * (1 + (uint32_t)below(8));
  int data_write = chance(50);
  uint64_t data = data_write ? writable_target(&dlen) : readable_target(dlen);
  uint32_t slen = chance(80) ? 1 : (uint32_t)below(64);
  uint64_t status = writable_target(&slen);
  put_desc(q->desc + h * 16u, hp->pa + hoff, chance(80) ? 16 : 16 + (uint32_t)below(48), kDescNext, (uint16_t)(h + 1));
  put_desc(q->desc + (h + 1u) * 16u, data, dlen, (uint16_t)(kDescNext | (data_write ? kDescWrite : 0)), (uint16_t)(h + 2));
  put_desc(q->desc + (h + 2u) * 16u, status, slen, kDescWrite, 0);
  return h;
}

static void fill_queue(struct QueueSetup* q) {
  int plausible = -1;
  if (q->desc) {
    for (unsigned i = 0; i < q->num; i++) random_desc(q->desc + i * 16, q->num, 0);
    if (q->num >= 4 && chance(50)) plausible = plausible_chain(q);
  }
  if (q->avail) {
    uint16_t flags = (uint16_t)(chance(80) ? 0 : rnd());
    unsigned published = (unsigned)below(q->num + 1u);
    for (unsigned i = 0; i < published; i++) {
      uint16_t head = chance(90) ? (uint16_t)below(q->num) : (uint16_t)rnd();
      if (i == 0 && plausible >= 0) head = (uint16_t)plausible;
      memcpy(q->avail + 4 + ((q->avail_idx + i) % q->num) * 2u, &head, 2);
    }
    // Mostly a consistent index (the device then walks the chains); sometimes any value
    // (the device must call the ring corrupt and want a reset).
    q->avail_idx = (uint16_t)(chance(95) ? q->avail_idx + published : rnd());
    uint16_t used_event = (uint16_t)rnd();
    memcpy(q->avail, &flags, 2);
    memcpy(q->avail + 2, &q->avail_idx, 2);
    memcpy(q->avail + 4 + q->num * 2u, &used_event, 2);
  }
}

// Reset the device, negotiate (mostly) sane features, put random queues at our pages, set
// DRIVER_OK, then publish and notify random descriptors a few times.
static void virtio_session(struct Region* r) {
  uint32_t status = 0;
  w32(r, kStatus, 0);
  w32(r, kStatus, status |= 1);  // ACKNOWLEDGE
  w32(r, kStatus, status |= 2);  // DRIVER
  uint64_t offered = 0;
  for (uint32_t sel = 0; sel < 2; sel++) {
    w32(r, kDeviceFeaturesSel, sel);
    offered |= mmio_read(r, kDeviceFeatures, 4) << (32 * sel);
  }
  uint64_t features = chance(85) ? (offered & rnd()) | (offered & (1ull << 32)) : rnd();
  for (uint32_t sel = 0; sel < 2; sel++) {
    w32(r, kDriverFeaturesSel, sel);
    w32(r, kDriverFeatures, (uint32_t)(features >> (32 * sel)));
  }
  w32(r, kStatus, status |= 8);  // FEATURES_OK (refused if the features are not offered)

  struct QueueSetup qs[8];
  unsigned nq = 0;
  for (uint32_t sel = 0; sel < 8; sel++) {
    w32(r, kQueueSel, sel);
    uint32_t max = (uint32_t)mmio_read(r, kQueueNumMax, 4);
    if (max == 0) break;
    if (chance(20)) continue;
    struct QueueSetup* q = &qs[nq];
    q->sel = sel;
    // Power-of-two sizes up to what fits a page (a table of 256 descriptors is 4 KiB).
    uint32_t cap = max < kMaxNum ? max : kMaxNum, num = 1;
    while (num * 2 <= cap && chance(70)) num *= 2;
    if (chance(5)) num = (uint32_t)nasty();  // refused by QueueReady if not a valid size
    w32(r, kQueueNum, num);
    q->num = (uint16_t)(num >= 1 && num <= cap ? num : 0);
    q->avail_idx = 0;
    q->desc = q->avail = NULL;
    uint64_t desc_pa, avail_pa, used_pa;
    if (q->num && chance(95)) {
      // Offsets leave room for 256 entries: a later random QueueNum (at most 256) keeps
      // every ring inside its page.
      const struct Page* p = &g_table_pages[below(kTablePages)];
      q->desc = p->va;
      desc_pa = p->pa;
    } else {
      desc_pa = outside_ram(16ull * (num ? num : 1));
    }
    uint32_t avail_bytes = 6 + 2 * (uint32_t)(q->num ? q->num : 1);
    if (q->num && chance(95)) {
      const struct Page* p = &g_table_pages[below(kTablePages)];
      uint32_t off = (uint32_t)below((kPageSize - kAvailMax) / 2 + 1) * 2;
      q->avail = p->va + off;
      avail_pa = p->pa + off;
    } else {
      avail_pa = outside_ram(avail_bytes);
    }
    uint32_t used_bytes = 6 + 8 * (uint32_t)(q->num ? q->num : 1);
    if (q->num && chance(95)) {
      const struct Page* p = &g_write_pages[below(kPoolPages)];
      used_pa = p->pa + (uint32_t)below((kPageSize - kUsedMax) / 4 + 1) * 4;
    } else {
      used_pa = outside_ram(used_bytes);
    }
    if (q->num) fill_queue(q);
    w_addr(r, kQueueDescLow, desc_pa);
    w_addr(r, kQueueDescLow + 0x10, avail_pa);
    w_addr(r, kQueueDescLow + 0x20, used_pa);
    w32(r, kQueueReady, chance(95) ? 1 : (uint32_t)nasty());
    g_queues++;
    if (q->num) nq++;
  }
  w32(r, kStatus, status |= 4);  // DRIVER_OK
  if (chance(5)) w32(r, kStatus, (uint32_t)nasty());

  unsigned rounds = 1 + (unsigned)below(8);
  for (unsigned i = 0; i < rounds && nq; i++) {
    struct QueueSetup* q = &qs[below(nq)];
    fill_queue(q);
    __sync_synchronize();
    uint32_t which = chance(90) ? q->sel : (uint32_t)nasty();
    w32(r, kQueueNotify, which);
    g_notifies++;
    if (chance(30)) w32(r, kInterruptAck, (uint32_t)nasty());
    if (chance(10)) mmio_write(r, kConfig + below(0x100), 1u << below(4), nasty());
  }
}

// A random write to a random register of a virtio device. The queue address registers only
// ever get addresses a device may use (see above): random ones would let the device write
// over the guest kernel, which tells nothing about doppel.
static void virtio_random_write(struct Region* r) {
  unsigned width = 1u << below(4);
  uint64_t off = chance(80) ? below(0x100 / 4) * 4 : below(r->size);
  if (chance(90)) off &= ~(uint64_t)(width - 1);
  if (off < kQueueDeviceHigh + 4 && off + width > kQueueDescLow) {
    uint64_t low = kQueueDescLow + 0x10 * below(3);
    uint64_t a = low == kQueueDescLow + 0x20 ? writable_target(&(uint32_t){kPageSize}) :
                 g_table_pages[below(kTablePages)].pa;
    w_addr(r, low, a);
    return;
  }
  // QueueNum stays at most 256: the rings were placed for that many entries.
  if (off <= kQueueNum && off + width > kQueueNum) {
    w32(r, kQueueNum, (uint32_t)below(kMaxNum + 1));
    return;
  }
  // A random Status would let the device run on whatever addresses it holds: reset first.
  if (off <= kStatus && off + width > kStatus && chance(50)) w32(r, kStatus, 0);
  mmio_write(r, off, width, nasty());
}

// ---- UART, PLIC, CLINT: saved first, put back at the end ----
static uint8_t g_uart_saved[8];
static uint32_t* g_plic_saved;
static size_t g_plic_words;
static uint64_t plic_saved_off(size_t i) {
  // priorities [0, 0x1000), enables [0x2000, 0x2000 + 0x80 * contexts), thresholds.
  size_t contexts = 2 * (size_t)g_harts;
  if (i < 1024) return i * 4;
  i -= 1024;
  if (i < contexts * 32) return 0x2000 + (i / 32) * 0x80 + (i % 32) * 4;
  i -= contexts * 32;
  return 0x200000 + i * 0x1000;
}

static void save_state(void) {
  for (unsigned i = 0; i < g_nregions; i++) {
    struct Region* r = &g_regions[i];
    if (r->kind == kUart) {
      for (unsigned reg = 1; reg < 8; reg++) {
        if (reg == 1 || reg == 3 || reg == 4 || reg == 7) g_uart_saved[reg] = (uint8_t)mmio_read(r, reg, 1);
      }
    } else if (r->kind == kPlic && !g_plic_saved) {
      g_plic_words = 1024 + 2 * (size_t)g_harts * 33;
      g_plic_saved = calloc(g_plic_words, 4);
      for (size_t w = 0; g_plic_saved && w < g_plic_words; w++) {
        g_plic_saved[w] = (uint32_t)mmio_read(r, plic_saved_off(w), 4);
      }
    }
  }
}

static void restore_state(void) {
  for (unsigned i = 0; i < g_nregions; i++) {
    struct Region* r = &g_regions[i];
    if (r->kind == kUart) {
      mmio_write(r, 3, 1, 0x03);  // DLAB off to reach IER
      mmio_write(r, 2, 1, 0x07);  // FIFOs on and cleared
      mmio_write(r, 1, 1, 0);     // IER: toggled so a pending THR-empty interrupt is raised again
      mmio_write(r, 4, 1, g_uart_saved[4]);
      mmio_write(r, 7, 1, g_uart_saved[7]);
      mmio_write(r, 3, 1, g_uart_saved[3] & 0x7f);
      mmio_write(r, 1, 1, g_uart_saved[1]);
    } else if (r->kind == kPlic && g_plic_saved) {
      for (size_t w = 0; w < g_plic_words; w++) mmio_write(r, plic_saved_off(w), 4, g_plic_saved[w]);
    } else if (r->kind == kClint) {
      for (unsigned h = 0; h < g_harts; h++) mmio_write(r, 0x4000 + 8 * h, 8, 0);  // fire now
    }
  }
}

static void uart_random_write(struct Region* r) {
  mmio_write(r, below(r->size < 8 ? r->size : 8), 1, nasty());
  if (chance(5)) mmio_write(r, below(r->size), 1u << below(4), nasty());
}

static void plic_random_write(struct Region* r) {
  uint64_t off;
  switch (below(5)) {
    case 0: off = below(0x1000); break;                                // priorities
    case 1: off = 0x1000 + below(0x80); break;                         // pending (read-only)
    case 2: off = 0x2000 + below(0x80 * (2 * g_harts + 1)); break;    // enables
    case 3: off = 0x200000 + below(0x1000 * (2 * g_harts + 1)); break; // threshold, claim
    default: off = below(r->size); break;
  }
  unsigned width = chance(85) ? 4 : 1u << below(4);
  mmio_write(r, off & ~(uint64_t)(width - 1), width, nasty());
}

static void clint_random_write(struct Region* r) {
  uint64_t off = chance(50) ? below(4 * g_harts) : chance(50) ? 0x4000 + below(8 * g_harts) : below(r->size);
  unsigned width = 1u << below(4);
  off &= ~(uint64_t)(width - 1);
  if (off + width > 0xbff8 && off < 0xc000) return;  // mtime: see the top of the file
  mmio_write(r, off, width, nasty());
  // A random compare value could leave a hart without its timer interrupt: fire it now,
  // the kernel sets the next one.
  if (off < 0x4000 + 8 * g_harts && off + width > 0x4000) {
    mmio_write(r, 0x4000 + ((off - 0x4000) / 8) * 8, 8, 0);
  }
}

#if defined(__x86_64__)
// x86_64's legacy ports, found in /proc/ioports: the 16550 (saved and put back) and the
// i8042 (never its reset commands). ACPI's PM ports are left alone (SLP_EN powers off).
static int g_have_com1, g_have_i8042;
static uint8_t g_com1_saved[8];
static void discover_ioports(void) {
  FILE* f = fopen("/proc/ioports", "r");
  if (!f) return;
  char line[256];
  while (fgets(line, sizeof line, f)) {
    if (strstr(line, "03f8-03ff") && ioperm(0x3f8, 8, 1) == 0) g_have_com1 = 1;
    if (strstr(line, "keyboard") && ioperm(0x60, 5, 1) == 0) g_have_i8042 = 1;
    if (strstr(line, "ACPI PM") || strstr(line, "PM1")) {
      char* nl = strchr(line, '\n');
      if (nl) *nl = 0;
      printf("hostile: port %s excluded: ACPI power management (SLP_EN powers off the VM)\n", line);
    }
  }
  fclose(f);
  if (g_have_com1) {
    g_com1_saved[1] = inb(0x3f9);
    g_com1_saved[3] = inb(0x3fb);
    g_com1_saved[4] = inb(0x3fc);
  }
}
static void pio_random_write(void) {
  if (g_have_com1 && (chance(70) || !g_have_i8042)) {
    outb((uint8_t)nasty(), (uint16_t)(0x3f8 + below(8)));
  } else if (g_have_i8042) {
    uint8_t v = (uint8_t)nasty();
    if (chance(50)) {
      outb(v, 0x60);
    } else if (v != 0xd1 && v < 0xf0) {  // 0xd1: write output port (bit 0 resets); 0xfX: pulse reset
      outb(v, 0x64);
    }
  } else {
    return;
  }
  g_writes++;
}
static void pio_restore(void) {
  if (!g_have_com1) return;
  outb(0x03, 0x3fb);
  outb(0x07, 0x3fa);
  outb(0, 0x3f9);
  outb(g_com1_saved[4], 0x3fc);
  outb(g_com1_saved[3] & 0x7f, 0x3fb);
  outb(g_com1_saved[1], 0x3f9);
}
#endif

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char** argv) {
  if (argc < 2 || argc > 3) {
    fprintf(stderr, "usage: hostile SECONDS [SEED]\n");
    return 2;
  }
  char* end;
  double seconds = strtod(argv[1], &end);
  if (*end || seconds < 0) {
    fprintf(stderr, "hostile: SECONDS '%s' is not a number of seconds\n", argv[1]);
    return 2;
  }
  uint64_t seed;
  if (argc == 3) {
    errno = 0;
    seed = strtoull(argv[2], &end, 0);
    if (errno || *end || !*argv[2]) {
      fprintf(stderr, "hostile: SEED '%s' is not a number\n", argv[2]);
      return 2;
    }
  } else {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    seed = (uint64_t)ts.tv_nsec ^ (uint64_t)ts.tv_sec << 20 ^ (uint64_t)getpid() << 40;
  }
  printf("hostile: seed %#llx, %g s (replay: hostile %s %#llx)\n", (unsigned long long)seed,
         seconds, argv[1], (unsigned long long)seed);
  g_rng = seed ? seed : 1;

  discover_device_tree();
  discover_cmdline();
  discover_ram();
#if defined(__x86_64__)
  discover_ioports();
  printf("hostile: local APIC, I/O APIC excluded: KVM's in-kernel irqchip, not doppel\n");
#endif
  if (g_nram == 0) {
    fprintf(stderr, "hostile: /proc/iomem lists no System RAM (not root?)\n");
    return 1;
  }
  if (pool_init(g_table_pages) < 0 || pool_init(g_write_pages) < 0) {
    fprintf(stderr, "hostile: pages and their physical addresses (/proc/self/pagemap): %s\n",
            strerror(errno));
    return 1;
  }
  int fd = open("/dev/mem", O_RDWR | O_SYNC);
  if (fd < 0) {
    fprintf(stderr, "hostile: /dev/mem: %s\n", strerror(errno));
    return 1;
  }
  for (unsigned i = 0; i < g_nregions; i++) {
    struct Region* r = &g_regions[i];
    uint64_t pbase = r->base & ~(uint64_t)(kPageSize - 1);
    size_t len = (size_t)(r->base - pbase + r->size + kPageSize - 1) & ~(size_t)(kPageSize - 1);
    void* m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)pbase);
    if (m == MAP_FAILED) {
      fprintf(stderr, "hostile: /dev/mem: map %s at %#llx (%#llx bytes): %s\n", kKindName[r->kind],
              (unsigned long long)r->base, (unsigned long long)r->size, strerror(errno));
      return 1;
    }
    r->map = (volatile uint8_t*)m + (r->base - pbase);
    printf("hostile: %s at %#llx, %#llx bytes\n", kKindName[r->kind], (unsigned long long)r->base,
           (unsigned long long)r->size);
  }
  if (has_kind(kClint)) printf("hostile: clint mtime excluded: the guest's clocksource\n");
  printf("hostile: RAM ends at %#llx\n", (unsigned long long)g_ram_end);
  if (has_kind(kPlic) || has_kind(kClint)) printf("hostile: %u harts\n", g_harts);
  if (g_nregions == 0) {
    fprintf(stderr, "hostile: no MMIO device found\n");
    return 1;
  }
  // Out through the UART before its registers turn random (its output would be lost).
  fflush(stdout);
  tcdrain(STDOUT_FILENO);

  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = on_fault;
  sa.sa_flags = SA_SIGINFO | SA_NODEFER;  // left by siglongjmp: the signal must not stay blocked
  sigaction(SIGSEGV, &sa, NULL);
  sigaction(SIGBUS, &sa, NULL);

  // Random UART writes can set loopback mode: what the kernel transmits then comes back as
  // console input, where a ^C or ^Z would stop this program (and the echo of every byte
  // would keep the UART busy for good). No signals from the terminal, no echo, until the
  // UART is put back; the bytes that came in meanwhile are dropped.
  struct termios saved_tty, quiet_tty;
  int have_tty = tcgetattr(STDIN_FILENO, &saved_tty) == 0;
  if (have_tty) {
    quiet_tty = saved_tty;
    quiet_tty.c_lflag &= (tcflag_t) ~(ISIG | ECHO | ECHONL | ICANON | IEXTEN);
    quiet_tty.c_iflag &= (tcflag_t) ~(IXON | IXOFF | ICRNL | INLCR | IGNCR);
    tcsetattr(STDIN_FILENO, TCSANOW, &quiet_tty);
  }
  signal(SIGINT, SIG_IGN);
  signal(SIGQUIT, SIG_IGN);
  signal(SIGTSTP, SIG_IGN);
  signal(SIGTTOU, SIG_IGN);
  signal(SIGTTIN, SIG_IGN);
  signal(SIGHUP, SIG_IGN);

  save_state();
  const double t_end = now_s() + seconds;
  while (now_s() < t_end) {
    for (unsigned n = 0; n < 64; n++) {
      struct Region* r = &g_regions[below(g_nregions)];
      if (r->disabled) continue;
      switch (r->kind) {
        case kVirtio:
          if (chance(15)) virtio_session(r); else virtio_random_write(r);
          break;
        case kUart: uart_random_write(r); break;
        case kPlic: plic_random_write(r); break;
        case kClint: clint_random_write(r); break;
        default: mmio_write(r, below(r->size), 1u << below(4), nasty()); break;
      }
#if defined(__x86_64__)
      if (chance(10)) pio_random_write();
#endif
    }
  }
  restore_state();
#if defined(__x86_64__)
  pio_restore();
#endif
  if (have_tty) {
    tcflush(STDIN_FILENO, TCIFLUSH);
    tcsetattr(STDIN_FILENO, TCSANOW, &saved_tty);
  }
  for (unsigned i = 0; i < g_nregions; i++) {
    const struct Region* r = &g_regions[i];
    if (r->disabled) {
      printf("hostile: %s at %#llx: every write faulted (not reachable from user space), skipped\n",
             kKindName[r->kind], (unsigned long long)r->base);
    }
  }
  printf("hostile: done %lu writes %lu notifies %lu queues %lu faults\n", g_writes, g_notifies,
         g_queues, g_faults);
  fflush(stdout);
  tcdrain(STDOUT_FILENO);
  return 0;
}
