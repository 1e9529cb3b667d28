/* A bare-metal riscv64 program for doppel's boot tests (tests/boot_riscv64/baremetal.sh).
 * PC-relative only, so the same code runs as an ELF at its link address or as a raw binary
 * wherever it is loaded: with --firmware none from reset in M-mode, or as OpenSBI fw_jump's
 * payload in S-mode. Hart 0 prints through the 16550 UART what it was given (a device tree
 * in a1) and its privilege mode, then writes FINISHER to the sifive,test finisher; other
 * harts park. Build with -DFINISHER=0x73333 for "fail, code 7". */
#ifndef FINISHER
#define FINISHER 0x5555  /* pass: power off */
#endif
#define UART 0x10000000
#define TEST 0x100000

.section .text
.globl _start
_start:
  bnez a0, park
  mv s0, a1
  lla a0, msg_hello
  call puts
  /* A device tree starts with the big-endian magic 0xd00dfeed. */
  lwu t0, 0(s0)
  li t1, 0xedfe0dd0
  lla a0, msg_no_dtb
  bne t0, t1, 1f
  lla a0, msg_dtb
1:
  call puts
  /* mhartid is readable in M-mode only: in S-mode the read is an illegal instruction that
   * OpenSBI hands back to stvec. */
  lla t0, in_s_mode
  csrw stvec, t0
  csrr t0, mhartid
  lla a0, msg_m_mode
  j 2f
.balign 4
in_s_mode:
  lla a0, msg_s_mode
2:
  call puts
  li t0, TEST
  li t1, FINISHER
  sw t1, 0(t0)
park:
  wfi
  j park

/* puts(a0): the NUL-terminated string at a0, waiting for THR empty (LSR bit 5). */
puts:
  li t0, UART
3:
  lbu t1, 0(a0)
  beqz t1, 5f
4:
  lbu t2, 5(t0)
  andi t2, t2, 0x20
  beqz t2, 4b
  sb t1, 0(t0)
  addi a0, a0, 1
  j 3b
5:
  ret

msg_hello: .asciz "baremetal: hello from hart 0\n"
msg_dtb: .asciz "baremetal: a1 holds a device tree\n"
msg_no_dtb: .asciz "baremetal: a1 holds no device tree\n"
msg_m_mode: .asciz "baremetal: running in M-mode\n"
msg_s_mode: .asciz "baremetal: running in S-mode\n"
