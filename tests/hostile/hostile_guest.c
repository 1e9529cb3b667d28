/* A hostile riscv64 guest (issue 14, part 5), bare metal in M-mode on doppel's virt machine
 * (--firmware none): for SECONDS of guest time it writes random values to every MMIO
 * register doppel exposes (virtio-mmio slots, UART, PLIC, CLINT; never the test finisher)
 * and drives each virtio-mmio device through a random initialisation onto random queues
 * whose descriptors point at random memory: inside a scratch area of RAM, and anywhere
 * (outside RAM, into MMIO). Interrupts stay off (mstatus.MIE = 0): whatever the devices
 * raise is never taken. At the end it prints "hostile: done, N writes" and powers off
 * through the finisher: doppel exiting 0 means it survived. The program itself lives
 * below SCRATCH and no descriptor it writes points there, so the devices' DMA cannot
 * overwrite it (indirect tables and the scratch bytes are random: their addresses are
 * random 64-bit values, practically never inside this program).
 *
 * Build: riscv64-linux-gnu-gcc -O2 -ffreestanding -nostdlib -nostartfiles -static -no-pie
 *        -march=rv64gc -mabi=lp64d -mcmodel=medany -Wl,-Ttext=0x80000000 -DSECONDS=20 ... */
#include <stdint.h>

#ifndef SECONDS
#define SECONDS 20
#endif

#define RAM_BASE 0x80000000ull
#define SCRATCH (RAM_BASE + (16ull << 20)) /* 16 MiB in: the program and its stack are below */
#define SCRATCH_SIZE (16ull << 20)
#define TEST_BASE 0x100000ull
#define CLINT_BASE 0x2000000ull
#define PLIC_BASE 0xc000000ull
#define UART_BASE 0x10000000ull
#define VIRTIO_BASE 0x10001000ull
#define VIRTIO_SLOTS 8
#define TIMEBASE_HZ 10000000ull

/* virtio-mmio registers (virtio 1.2 4.2.2). */
enum {
  kDeviceFeaturesSel = 0x014, kDriverFeatures = 0x020, kDriverFeaturesSel = 0x024,
  kQueueSel = 0x030, kQueueNum = 0x038, kQueueReady = 0x044, kQueueNotify = 0x050,
  kInterruptAck = 0x064, kStatus = 0x070, kQueueDescLow = 0x080, kQueueDescHigh = 0x084,
  kQueueDriverLow = 0x090, kQueueDriverHigh = 0x094, kQueueDeviceLow = 0x0a0,
  kQueueDeviceHigh = 0x0a4, kShmSel = 0x0ac, kConfig = 0x100,
};

static uint64_t g_rng = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void) {
  g_rng ^= g_rng << 13;
  g_rng ^= g_rng >> 7;
  g_rng ^= g_rng << 17;
  return g_rng;
}

static void w8(uint64_t a, uint8_t v) { *(volatile uint8_t*)a = v; }
static void w16(uint64_t a, uint16_t v) { *(volatile uint16_t*)a = v; }
static void w32(uint64_t a, uint32_t v) { *(volatile uint32_t*)a = v; }
static void w64(uint64_t a, uint64_t v) { *(volatile uint64_t*)a = v; }
static uint32_t r32(uint64_t a) { return *(volatile uint32_t*)a; }
static uint64_t mtime(void) { return *(volatile uint64_t*)(CLINT_BASE + 0xbff8); }

static void putc_uart(char c) {
  while (!(*(volatile uint8_t*)(UART_BASE + 5) & 0x20)) {
  }
  w8(UART_BASE, (uint8_t)c);
}
static void puts_uart(const char* s) {
  while (*s) putc_uart(*s++);
}
static void putu(uint64_t v) {
  char buf[24];
  int n = 0;
  do buf[n++] = (char)('0' + v % 10); while ((v /= 10) != 0);
  while (n) putc_uart(buf[--n]);
}

/* A value a device might take badly: 0, all ones, small, a power of two, or random. */
static uint32_t nasty32(void) {
  switch (rnd() % 6) {
    case 0: return 0;
    case 1: return 0xffffffffu;
    case 2: return (uint32_t)(rnd() % 8);
    case 3: return 1u << (rnd() % 32);
    case 4: return (uint32_t)(rnd() % 0x10000);
    default: return (uint32_t)rnd();
  }
}

/* A guest address for a ring or a buffer: mostly the scratch area, else anywhere. */
static uint64_t some_address(void) {
  switch (rnd() % 8) {
    case 0: return rnd();                                   /* anywhere at all */
    case 1: return RAM_BASE + (64ull << 20) - (rnd() % 4096); /* straddling the end of RAM */
    case 2: return VIRTIO_BASE + (rnd() % 0x8000);          /* into MMIO */
    case 3: return SCRATCH + SCRATCH_SIZE - (rnd() % 64);   /* the scratch's last bytes */
    default: return SCRATCH + (rnd() % SCRATCH_SIZE);
  }
}

static uint64_t g_writes;
uint64_t g_faults; /* access faults doppel raised for writes no device takes (trap_entry) */

static void random_register_write(uint64_t base, uint64_t span) {
  const uint64_t off = (rnd() % span) & ~3ull;
  const int width = (int)(rnd() % 4);
  if (width == 0) w8(base + off + (rnd() % 4), (uint8_t)rnd());
  else if (width == 1) w16(base + off + ((rnd() % 2) * 2), (uint16_t)rnd());
  else if (width == 2) w32(base + off, nasty32());
  else w64(base + (off & ~7ull), rnd());
  ++g_writes;
}

/* Random bytes over a part of the scratch area, with descriptors that look almost right. */
static void scribble_descriptors(uint64_t table, unsigned count) {
  for (unsigned i = 0; i < count; ++i) {
    const uint64_t d = table + 16ull * i;
    if (d + 16 > SCRATCH + SCRATCH_SIZE) break;
    w64(d, rnd() % 4 ? SCRATCH + (rnd() % SCRATCH_SIZE) : some_address()); /* addr */
    w32(d + 8, rnd() % 4 ? (uint32_t)(rnd() % 65536) : nasty32());         /* len */
    w16(d + 12, (uint16_t)(rnd() % 8));  /* flags: NEXT, WRITE, INDIRECT in any mix */
    w16(d + 14, (uint16_t)(rnd() % 4 ? (i + 1) % (count ? count : 1) : rnd())); /* next */
  }
}

/* Chains of three (a 16-byte header a device can read, a data buffer, a 1-byte status it
 * can write) that a device will mostly take: virtio-blk requests of any type on any sector,
 * console and rng buffers. Every buffer is in the scratch area. */
static void plausible_chains(uint64_t table, unsigned count) {
  static const uint32_t kBlkTypes[] = {0, 1, 4, 8, 11, 13, 2, 0xffffffffu};
  for (unsigned i = 0; i + 2 < count; i += 3) {
    const uint64_t d = table + 16ull * i;
    if (d + 48 > SCRATCH + SCRATCH_SIZE) break;
    const uint64_t header = SCRATCH + (rnd() % (SCRATCH_SIZE - 4096)) / 16 * 16;
    w32(header, kBlkTypes[rnd() % 8]);                              /* type */
    w32(header + 4, 0);                                             /* reserved */
    w64(header + 8, rnd() % 4 ? rnd() % 20000 : rnd());             /* sector */
    const uint64_t data = SCRATCH + (rnd() % (SCRATCH_SIZE - 65536)) / 512 * 512;
    w64(d, header); w32(d + 8, 16); w16(d + 12, 1); w16(d + 14, (uint16_t)(i + 1));
    w64(d + 16, data); w32(d + 24, (uint32_t)(512 * (1 + rnd() % 8)));
    w16(d + 28, (uint16_t)(1 | (rnd() % 2 ? 2 : 0))); w16(d + 30, (uint16_t)(i + 2));
    w64(d + 32, data + 65536 - 1 - rnd() % 64); w32(d + 40, 1); w16(d + 44, 2); w16(d + 46, 0);
  }
}

static void random_queue_setup(uint64_t dev) {
  w32(dev + kStatus, 0); /* reset */
  w32(dev + kStatus, 1 | 2); /* ACKNOWLEDGE | DRIVER */
  for (unsigned sel = 0; sel < 2; ++sel) {
    w32(dev + kDeviceFeaturesSel, sel);
    w32(dev + kDriverFeaturesSel, sel);
    w32(dev + kDriverFeatures, rnd() % 3 ? r32(dev + 0x010) : nasty32()); /* what it offers, or not */
  }
  w32(dev + kStatus, 1 | 2 | 8); /* FEATURES_OK */
  const unsigned queues = 1 + (unsigned)(rnd() % 4);
  for (unsigned q = 0; q < queues; ++q) {
    w32(dev + kQueueSel, rnd() % 8 ? q : nasty32());
    const unsigned num = rnd() % 4 ? 1u << (rnd() % 9) : nasty32();
    w32(dev + kQueueNum, num);
    const uint64_t desc = some_address(), avail = some_address(), used = some_address();
    w32(dev + kQueueDescLow, (uint32_t)desc);
    w32(dev + kQueueDescHigh, (uint32_t)(desc >> 32));
    w32(dev + kQueueDriverLow, (uint32_t)avail);
    w32(dev + kQueueDriverHigh, (uint32_t)(avail >> 32));
    w32(dev + kQueueDeviceLow, (uint32_t)used);
    w32(dev + kQueueDeviceHigh, (uint32_t)(used >> 32));
    if (desc >= SCRATCH && desc < SCRATCH + SCRATCH_SIZE) {
      if (rnd() % 2) plausible_chains(desc, num < 512 ? num : 512);
      else scribble_descriptors(desc, num < 512 ? num : 512);
    }
    if (avail >= SCRATCH && avail + 4 + 2 * 512 < SCRATCH + SCRATCH_SIZE) {
      w16(avail, (uint16_t)(rnd() % 2));  /* flags */
      /* idx: a few new chains (what a driver publishes), or any number at all */
      w16(avail + 2, (uint16_t)(rnd() % 4 ? 1 + rnd() % 8 : rnd()));
      for (unsigned i = 0; i < 512 && i < num; ++i)
        w16(avail + 4 + 2 * i, (uint16_t)(rnd() % 4 ? (3 * i) % (num ? num : 1) : rnd()));
    }
    w32(dev + kQueueReady, rnd() % 8 ? 1 : nasty32());
    g_writes += 10;
  }
  w32(dev + kStatus, rnd() % 8 ? (1 | 2 | 8 | 4) : nasty32()); /* DRIVER_OK, or nonsense */
  for (unsigned n = 0; n < 4; ++n) w32(dev + kQueueNotify, rnd() % 4 ? (uint32_t)(rnd() % 4) : nasty32());
  w32(dev + kInterruptAck, nasty32());
  g_writes += 10;
}

void hostile_main(uint64_t hart) {
  if (hart != 0)
    for (;;) __asm__ volatile("wfi");
  g_rng ^= mtime() * 0x2545f4914f6cdd1dull;
  puts_uart("hostile: start, ");
  putu(SECONDS);
  puts_uart(" s\n");
  const uint64_t end = mtime() + (uint64_t)SECONDS * TIMEBASE_HZ;
  uint64_t rounds = 0;
  while (mtime() < end) {
    const uint64_t dev = VIRTIO_BASE + (rnd() % VIRTIO_SLOTS) * 0x1000;
    switch (rnd() % 10) {
      case 0: case 1: case 2: random_register_write(dev, 0x200); break; /* registers + config */
      case 3: case 4: random_queue_setup(dev); break;
      case 5: w32(dev + kQueueNotify, (uint32_t)(rnd() % 4)); ++g_writes; break;
      case 6: random_register_write(UART_BASE + 1, 7); break; /* not the transmit register */
      case 7: random_register_write(PLIC_BASE, 0x400000); break;
      case 8: /* CLINT: msip and mtimecmp only (interrupts are off), never mtime */
        if (rnd() % 2) w32(CLINT_BASE, (uint32_t)rnd());
        else w64(CLINT_BASE + 0x4000, rnd());
        ++g_writes;
        break;
      default: w32(dev + kShmSel, nasty32()); w32(dev + kConfig + (rnd() % 0x100 & ~3ull), nasty32()); g_writes += 2;
    }
    if (++rounds % 100000 == 0) putc_uart('.');
  }
  /* The random writes left the UART in any mode: divisor latch, loopback. Back to 8N1. */
  w8(UART_BASE + 3, 0x03); /* LCR: DLAB off */
  w8(UART_BASE + 4, 0x00); /* MCR: no loopback */
  w8(UART_BASE + 1, 0x00); /* IER */
  puts_uart("\nhostile: done, ");
  putu(rounds);
  puts_uart(" rounds, ");
  putu(g_writes);
  puts_uart(" writes, ");
  putu(g_faults);
  puts_uart(" access faults\n");
  w32(TEST_BASE, 0x5555); /* pass: power off */
  for (;;) __asm__ volatile("wfi");
}

__asm__(
    ".pushsection .text.start, \"ax\"\n"
    ".globl _start\n"
    "_start:\n"
    "  csrci mstatus, 8\n"   /* MIE off */
    "  la t0, trap_entry\n"
    "  csrw mtvec, t0\n"
    "  la sp, _stack_top\n"
    "  slli t0, a0, 14\n"    /* 16 KiB of stack per hart */
    "  sub sp, sp, t0\n"
    "  j hostile_main\n"
    /* A write no device takes is an access fault (doppel raises it, as a bus would):
     * count it and skip the instruction (2 or 4 bytes: the low bits of its first half). */
    ".balign 4\n"
    "trap_entry:\n"
    "  csrw mscratch, t0\n"
    "  la t0, trap_save\n"
    "  sd t1, 0(t0)\n"
    "  sd t2, 8(t0)\n"
    "  csrr t1, mepc\n"
    "  lhu t2, 0(t1)\n"
    "  andi t2, t2, 3\n"
    "  addi t1, t1, 2\n"
    "  addi t2, t2, -3\n"
    "  bnez t2, 1f\n"
    "  addi t1, t1, 2\n"
    "1:\n"
    "  csrw mepc, t1\n"
    "  la t0, g_faults\n"
    "  ld t1, 0(t0)\n"
    "  addi t1, t1, 1\n"
    "  sd t1, 0(t0)\n"
    "  la t0, trap_save\n"
    "  ld t1, 0(t0)\n"
    "  ld t2, 8(t0)\n"
    "  csrr t0, mscratch\n"
    "  mret\n"
    ".popsection\n"
    ".pushsection .bss\n"
    ".balign 16\n"
    "trap_save:\n"
    "  .space 16\n"
    ".balign 16\n"
    "  .space 16384 * 8\n"
    "_stack_top:\n"
    ".popsection\n");
