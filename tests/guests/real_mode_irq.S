# Tiny real-mode guest for the KVM engine tests: an interrupt injected through the
# in-kernel 8259 PIC (IRQ 4, as the UART uses) wakes the guest from HLT.
# Loaded at 0x1000 and entered at 0000:1000.
.code16
.globl _start
_start:
  cli
  movw $handler, (0x24 * 4)     # IVT entry for vector 0x24 (IRQ 4 with base 0x20)
  movw $0, (0x24 * 4 + 2)
  mov $0x11, %al
  out %al, $0x20                # ICW1: edge, cascade, ICW4 follows
  mov $0x20, %al
  out %al, $0x21                # ICW2: vectors 0x20-0x27
  mov $0x04, %al
  out %al, $0x21                # ICW3: slave on IRQ 2
  mov $0x01, %al
  out %al, $0x21                # ICW4: 8086 mode
  mov $0xef, %al
  out %al, $0x21                # OCW1: only IRQ 4 unmasked
  mov $0x7000, %sp
  sti
  out %al, $0x10                # "ready": the test raises IRQ 4 now
1:
  hlt
  jmp 1b
handler:
  mov $0x20, %al
  out %al, $0x20                # non-specific EOI
  mov $0x99, %al
  out %al, $0x11                # "got it"
  iret
