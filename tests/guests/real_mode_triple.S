# Tiny real-mode guest for the KVM engine tests: a triple fault, which a PC answers with
# a reset. Loaded at 0x1000 and entered at 0000:1000.
.code16
.globl _start
_start:
  mov $0x10, %dx
  out %al, %dx            # "starting": a second one means the vCPU was silently restarted
  lidt idt_empty          # no IDT: the next exception cannot be delivered
  int3                    # #BP -> #GP -> #DF -> triple fault -> KVM_EXIT_SHUTDOWN
  out %al, $0x11          # only reached if the exception was somehow delivered
1:
  jmp 1b
.align 8
idt_empty:
  .word 0
  .long 0
