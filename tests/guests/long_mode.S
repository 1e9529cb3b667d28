# Tiny 64-bit guest for the x86-64 machine tests, shaped like a bzImage's protected-mode
# part: the machine enters it at load address + 0x200 in long mode through doppel's own
# page tables and GDT, with RSI = boot_params. It prints to the UART, checks it really is
# in 64-bit mode, reads its boot_params and powers off through
# the ACPI PM1a control register; if anything is off it resets through the i8042.
.code64
.globl _start
_start:
  .fill 0x200, 1, 0x90
entry64:
  mov $0x3f8, %dx
  lea msg(%rip), %rcx
2:
  movb (%rcx), %al
  test %al, %al
  jz 3f
  out %al, %dx
  inc %rcx
  jmp 2b
3:
  movabs $0x1122334455667788, %rax
  shr $32, %rax                # only 64-bit mode has these upper bits
  cmp $0x11223344, %eax
  jne 4f
  mov 0x202(%rsi), %eax        # boot_params.hdr.header must be "HdrS"
  cmp $0x53726448, %eax
  jne 4f
  mov $0x3400, %ax             # ACPI PM1a control: SLP_TYPx = 5 (S5) << 10 | SLP_EN
  mov $0x604, %dx
  out %ax, %dx
4:
  mov $0x64, %dx               # i8042: pulse reset
  mov $0xfe, %al
  out %al, %dx
5:
  hlt
  jmp 5b
msg:
  .asciz "long mode ok\n"
