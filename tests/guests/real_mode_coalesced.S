# Tiny real-mode guest for the KVM engine tests: three writes to ports 0x10-0x11 (coalesced by
# the test, so they do not exit), then a write to port 0x12 (exits). Loaded at 0x1000.
.code16
.globl _start
_start:
  mov $0x10, %dx
  mov $0x61, %al
  out %al, %dx            # 'a'
  mov $0x62, %al
  out %al, %dx            # 'b'
  mov $0x6463, %ax
  out %ax, %dx            # "cd" as one 2-byte write
  out %al, $0x12          # exits: everything above must come out of the ring first
  hlt
1:
  jmp 1b
