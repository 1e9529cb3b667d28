/* A tiny S-mode payload in Linux Image format: OpenSBI (fw_dynamic) jumps to it in S-mode.
 * It prints through the SBI legacy console, turns on Sv39 with a 1 GiB identity gigapage,
 * prints again (now fetching and loading through the MMU, with hardware A/D bits), runs a
 * floating-point divide, and asks SBI SRST for shutdown. Exercises M->S entry, ecall
 * delegation to OpenSBI, satp/sfence.vma and the F extension as a whole machine. */
.section .text
.globl _start
_start:
.option push
.option norvc
  j real_start
  .word 0
  .dword 0x200000      /* text_offset */
  .dword 0x10000       /* image_size */
  .dword 0             /* flags */
  .word 2              /* version */
  .word 0
  .dword 0
  .ascii "RISCV\0\0\0"
  .ascii "RSC\x05"
  .word 0
.option pop
real_start:
  lla s0, msg
1: lbu a0, 0(s0)
  beqz a0, 2f
  li a7, 1             /* legacy console_putchar */
  ecall
  addi s0, s0, 1
  j 1b
2:
  /* exercise the MMU a little: Sv39 gigapage identity for 0x80000000 */
  lla t0, pt
  li t1, (0x80000 << 10) | 0xcf   /* V R W X A D */
  sd t1, 16(t0)
  srli t0, t0, 12
  li t1, 8
  slli t1, t1, 60
  or t0, t0, t1
  csrw satp, t0
  sfence.vma
  lla s0, msg2
3: lbu a0, 0(s0)
  beqz a0, 4f
  li a7, 1
  ecall
  addi s0, s0, 1
  j 3b
4:
  /* FS = Initial, then 1.0 / 4.0 = 0.25: print '=F=' if the result's bits are right */
  li t0, 1 << 13
  csrs sstatus, t0
  li t0, 0x3ff0000000000000
  fmv.d.x f1, t0
  li t0, 0x4010000000000000
  fmv.d.x f2, t0
  fdiv.d f3, f1, f2
  fmv.x.d t1, f3
  li t0, 0x3fd0000000000000
  li a0, 'x'
  bne t0, t1, 6f
  li a0, 'F'
6: mv s1, a0
  li a0, '='
  li a7, 1
  ecall
  mv a0, s1
  li a7, 1
  ecall
  li a0, '='
  li a7, 1
  ecall
  li a0, '\n'
  li a7, 1
  ecall
  li a7, 0x53525354    /* SRST */
  li a6, 0
  li a0, 0             /* shutdown */
  li a1, 0
  ecall
5: j 5b
msg: .asciz "hello from S-mode\n"
msg2: .asciz "paging on, still alive\n"
.balign 4096
pt: .fill 512, 8, 0
