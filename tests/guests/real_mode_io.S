# Tiny real-mode guest for the KVM engine tests: port and MMIO exits.
# Loaded at 0x1000 and entered at 0000:1000. RAM is [0, 64 KiB); 0x20000 is not RAM.
.code16
.globl _start
_start:
  mov $0x10, %dx
  mov $0x41, %al
  out %al, %dx            # PIO write: port 0x10, 1 byte, 0x41
  in $0x11, %al           # PIO read: port 0x11 (the test answers 0x5a)
  inc %al
  out %al, $0x12          # PIO write: port 0x12, 0x5b
  mov $0x1234, %ax
  out %ax, $0x13          # PIO write: port 0x13, 2 bytes
  mov $msg, %si
  mov $3, %cx
  mov $0x14, %dx
  cld
  rep outsb               # string PIO: three 1-byte writes to port 0x14, "dop"
  mov $0x2000, %ax
  mov %ax, %ds
  movw $0xbeef, (0)       # MMIO write: 0x20000, 2 bytes
  movl (4), %eax          # MMIO read: 0x20004, 4 bytes (the test answers 0xcafef00d)
  out %eax, $0x15         # PIO write: port 0x15, 4 bytes, the value read
  hlt                     # interrupts are off: sleeps in KVM until kicked
1:
  jmp 1b
msg:
  .ascii "dop"
