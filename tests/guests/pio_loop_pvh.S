# Port-I/O exit cost: N round trips through `out` to port 0x80 (no device: each one exits
# to the VMM's user space and back), then power off: doppel's ACPI PM1a control register (0x604),
# and QEMU's isa-debug-exit (0xf4) for the side-by-side run. A PVH ELF, so doppel and QEMU
# microvm both load it with -kernel. Assemble with --defsym N=count.
.section .note.pvh, "a", @note
.align 4
.long 4, 4, 18         # namesz, descsz, XEN_ELFNOTE_PHYS32_ENTRY
.asciz "Xen"
.long _start
.text
.code32
.globl _start
_start:
  mov $N, %ecx
  test %ecx, %ecx
  jz 2f
1:
  out %al, $0x80
  dec %ecx
  jnz 1b
2:
  mov $0x3400, %ax     # ACPI PM1a control: SLP_TYPx = 5 (S5) << 10 | SLP_EN
  mov $0x604, %dx
  out %ax, %dx
  xor %al, %al
  out %al, $0xf4
3:
  hlt
  jmp 3b
