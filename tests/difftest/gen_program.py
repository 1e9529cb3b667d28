#!/usr/bin/env python3
"""Generates a riscv64 test program (GNU assembly) for the differential test.

The program runs a body of generated instruction sequences, then dumps x1..x31, f0..f31
(raw bits), fcsr and a checksum of its scratch memory through write(2) as hex lines, and
calls exit_group(0). Running it under qemu-riscv64 and under doppel-user must print the
same text.

  gen_program.py --kind directed --group fp_edges --seed 1 -o prog.S
  gen_program.py --kind random --seed 42 -o prog.S

Register conventions inside generated code:
  x31 (t6)  base of the scratch area; never written after the prologue
  x29 (t4)  loop counter of generated loops; never a destination of random instructions
  x30 (t5)  address temporary of memory instructions (also a normal destination)
Everything here is deterministic in both implementations: no cycle/time/instret values
reach the dumped state (only their monotonicity does).
"""

import argparse
import random
import struct
import sys

SCRATCH_SIZE = 4096
# regsave lies just below scratch so the dump reaches it from x31 with 12-bit offsets.
X_SAVE = -640   # x[i] at X_SAVE + 8*i
F_SAVE = -384   # f[i] at F_SAVE + 8*i
FCSR_SAVE = -128
INITIAL_SP = -16  # the stack pointer the program started with
REGSAVE_SIZE = 640

DEST_X = [i for i in range(1, 31) if i != 29]
SRC_X = list(range(0, 32))

EDGE64 = [0, 1, 2, 0xffffffffffffffff, 0x8000000000000000, 0x7fffffffffffffff,
          0x80000000, 0x7fffffff, 0xffffffff80000000, 0xffffffff, 0x100000000, 63, 64, 31, 32,
          0xfffffffffffffffe, 0x5555555555555555, 0xaaaaaaaaaaaaaaaa, 0x00000000ffff8000,
          0x8000, 0x7fff, 0xff, 0x80, 0xfffffffffffff800, 0x7ff, 0x800]

# binary32 / binary64 special operands.
F32_SPECIAL = [0x00000000, 0x80000000, 0x3f800000, 0xbf800000, 0x7f800000, 0xff800000,
               0x7fc00000, 0xffc00000, 0x7f800001, 0x7fa00000, 0x00000001, 0x807fffff,
               0x00800000, 0x7f7fffff, 0xff7fffff, 0x3f000000, 0x4f000000, 0xcf000000,
               0x5f000000, 0xdf000000, 0x4f800000, 0x5f800000, 0x3fc00000, 0x40200000,
               0xbfc00000, 0x3effffff, 0x4b7fffff, 0x34000000, 0x00400000]
F64_SPECIAL = [0x0000000000000000, 0x8000000000000000, 0x3ff0000000000000, 0xbff0000000000000,
               0x7ff0000000000000, 0xfff0000000000000, 0x7ff8000000000000, 0xfff8000000000000,
               0x7ff0000000000001, 0x7ff4000000000000, 0x0000000000000001, 0x800fffffffffffff,
               0x0010000000000000, 0x7fefffffffffffff, 0xffefffffffffffff, 0x3fe0000000000000,
               0x41e0000000000000, 0xc1e0000000000000, 0x43e0000000000000, 0xc3e0000000000000,
               0x41f0000000000000, 0x43f0000000000000, 0x3ff8000000000000, 0x4004000000000000,
               0xbff8000000000000, 0x41dfffffffc00000, 0x41efffffffe00000, 0xc1e0000000200000,
               0x3cb0000000000000, 0x0008000000000000, 0x36a0000000000000, 0x47efffffe0000000]

def box32(v):
  return 0xffffffff00000000 | v


FPOOL = [box32(v) for v in F32_SPECIAL] + F64_SPECIAL + [
    0x3ff0000000000001, 0x4010000000000000, 0xc05ec00000000000, 0x408f400000000000,
    box32(0x41200000), box32(0xc2c80000), box32(0x3f800001), box32(0x4479c000)]

RMS = ['rne', 'rtz', 'rdn', 'rup', 'rmm', 'dyn']


class Gen:
  def __init__(self, seed, observe_fflags=True):
    self.r = random.Random(seed)
    # False: no fflags value reaches the printed state (the dump masks fcsr to frm). Only
    # for keeping a known fflags bug from hiding every other mismatch.
    self.observe_fflags = observe_fflags
    self.lines = []
    self.label_n = 0
    self.norvc = False  # inside an `.option norvc` block: no explicit c.* mnemonics

  def emit(self, s):
    self.lines.append('  ' + s)

  def label(self, name):
    self.lines.append(name + ':')

  def new_label(self):
    self.label_n += 1
    return f'.Lg{self.label_n}'

  # ---- operand choices ----
  def xd(self):
    if self.r.random() < 0.03:
      return 'x0'  # writes to x0 are discarded
    return f'x{self.r.choice(DEST_X)}'

  def xs(self):
    return f'x{self.r.choice(SRC_X)}'

  def fr(self):
    return f'f{self.r.randrange(32)}'

  def imm12(self):
    return self.r.choice([0, 1, -1, 2047, -2048, self.r.randrange(-2048, 2048)])

  def val64(self):
    c = self.r.randrange(5)
    if c == 0:
      return self.r.choice(EDGE64)
    if c == 1:
      return self.r.randrange(-64, 64) & 0xffffffffffffffff
    if c == 2:
      return self.r.getrandbits(32)
    if c == 3:
      return self.r.getrandbits(32) | (0xffffffff00000000 if self.r.random() < 0.5 else 0)
    return self.r.getrandbits(64)

  def fval(self):
    """A 64-bit pattern for an FP register: boxed singles, doubles, or unboxed junk."""
    c = self.r.randrange(8)
    if c < 3:
      return box32(self.r.choice(F32_SPECIAL))
    if c < 6:
      return self.r.choice(F64_SPECIAL)
    if c == 6:
      # A "nice" value: small integers and halves, so arithmetic stays finite.
      v = self.r.randrange(-1000, 1000) / 4
      if self.r.random() < 0.5:
        return box32(struct.unpack('<I', struct.pack('<f', v))[0])
      return struct.unpack('<Q', struct.pack('<d', v))[0]
    if self.r.random() < 0.5:
      return box32(self.r.getrandbits(32))
    return self.r.getrandbits(64)  # usually not NaN-boxed: single ops see a canonical NaN

  def li(self, reg, value):
    self.emit(f'li {reg}, {value:#x}')

  def fli(self, freg, bits, tmp='x30'):
    self.li(tmp, bits)
    self.emit(f'fmv.d.x {freg}, {tmp}')

  def set_frm(self, rm=None):
    if rm is None:
      rm = self.r.randrange(5)
    self.emit(f'fsrmi x0, {rm}')

  # ---- random instruction groups ----
  def rand_int_op(self):
    r = self.r
    kind = r.randrange(10)
    if kind < 4:
      op = r.choice(['add', 'sub', 'sll', 'slt', 'sltu', 'xor', 'srl', 'sra', 'or', 'and',
                     'addw', 'subw', 'sllw', 'srlw', 'sraw',
                     'mul', 'mulh', 'mulhsu', 'mulhu', 'div', 'divu', 'rem', 'remu',
                     'mulw', 'divw', 'divuw', 'remw', 'remuw'])
      self.emit(f'{op} {self.xd()}, {self.xs()}, {self.xs()}')
    elif kind < 6:
      op = r.choice(['addi', 'slti', 'sltiu', 'xori', 'ori', 'andi', 'addiw'])
      self.emit(f'{op} {self.xd()}, {self.xs()}, {self.imm12()}')
    elif kind < 7:
      op = r.choice(['slli', 'srli', 'srai', 'slliw', 'srliw', 'sraiw'])
      sh = r.randrange(64) if not op.endswith('w') else r.randrange(32)
      self.emit(f'{op} {self.xd()}, {self.xs()}, {sh}')
    elif kind < 8:
      op = r.choice(['lui', 'auipc'])
      self.emit(f'{op} {self.xd()}, {r.randrange(1 << 20):#x}')
    elif kind < 9 or self.norvc:
      self.li(self.xd(), self.val64())
    else:
      # Compressed-only encodings gas will not pick on its own.
      rd = f'x{r.choice([8, 9, 10, 11, 12, 13, 14, 15])}'
      op = r.choice(['c.srli', 'c.srai', 'c.andi', 'c.subw', 'c.addw', 'c.and', 'c.or',
                     'c.xor', 'c.sub', 'c.addiw', 'c.slli', 'c.mv', 'c.add', 'c.li', 'c.lui'])
      if op in ('c.srli', 'c.srai'):
        self.emit(f'{op} {rd}, {r.randrange(1, 64)}')
      elif op == 'c.slli':
        self.emit(f'{op} {self.xd()}, {r.randrange(1, 64)}')
      elif op == 'c.andi':
        self.emit(f'{op} {rd}, {r.randrange(-32, 32)}')
      elif op == 'c.addiw':
        # rd = x0 is reserved for c.addiw (not a hint), so the assembler rejects it.
        self.emit(f'{op} x{r.choice(DEST_X)}, {r.randrange(-32, 32)}')
      elif op in ('c.mv', 'c.add'):
        src = f'x{r.choice([i for i in range(1, 32)])}'
        self.emit(f'{op} {self.xd()}, {src}')
      elif op == 'c.li':
        self.emit(f'{op} {self.xd()}, {r.randrange(-32, 32)}')
      elif op == 'c.lui':
        rd2 = f'x{r.choice([1] + list(range(3, 29)))}'
        self.emit(f'{op} {rd2}, {r.choice([1, 2, 31, 0xfffe0, 0xfffff])}')
      else:
        rs = f'x{r.choice([8, 9, 10, 11, 12, 13, 14, 15])}'
        self.emit(f'{op} {rd}, {rs}')

  def addr(self, align):
    """x30 = scratch + (random register masked) with the given alignment; returns offset room."""
    mask = 0x7ff & ~(align - 1)
    self.emit(f'andi x30, {self.xs()}, {mask:#x}')
    self.emit('add x30, x30, x31')

  def rand_mem_op(self):
    r = self.r
    kind = r.randrange(6)
    if kind < 3:
      op, size = r.choice([('lb', 1), ('lh', 2), ('lw', 4), ('ld', 8), ('lbu', 1), ('lhu', 2),
                           ('lwu', 4), ('sb', 1), ('sh', 2), ('sw', 4), ('sd', 8),
                           ('flw', 4), ('fld', 8), ('fsw', 4), ('fsd', 8)])
      misaligned = r.random() < 0.15 and size > 1
      self.addr(1 if misaligned else size)
      off = r.randrange(0, 2048 - 16) & ~(0 if misaligned else size - 1)
      if op.startswith('f'):
        self.emit(f'{op} {self.fr()}, {off}(x30)')
      elif op.startswith('s'):
        self.emit(f'{op} {self.xs()}, {off}(x30)')
      else:
        self.emit(f'{op} {self.xd()}, {off}(x30)')
    elif kind < 5:
      w = r.choice(['w', 'd'])
      self.addr(4 if w == 'w' else 8)
      op = r.choice(['amoswap', 'amoadd', 'amoxor', 'amoand', 'amoor', 'amomin', 'amomax',
                     'amominu', 'amomaxu'])
      order = r.choice(['', '.aq', '.rl', '.aqrl'])
      rd = self.xd()
      while rd == 'x30':
        rd = self.xd()
      self.emit(f'{op}.{w}{order} {rd}, {self.xs()}, (x30)')
    else:
      # LR/SC pair on the same aligned address: succeeds (rd = 0).
      w = r.choice(['w', 'd'])
      self.addr(4 if w == 'w' else 8)
      rd1 = self.xd()
      while rd1 == 'x30':
        rd1 = self.xd()
      rd2 = self.xd()
      while rd2 in ('x30', rd1):
        rd2 = self.xd()
      self.emit(f'lr.{w} {rd1}, (x30)')
      self.emit(f'add {rd1}, {rd1}, {self.xs()}')
      self.emit(f'sc.{w} {rd2}, {rd1}, (x30)')

  def rand_fp_op(self):
    r = self.r
    if r.random() < 0.12:
      # Reload an operand from the pool of special values, so that long loops do not
      # settle into all-NaN registers.
      self.emit('la x30, fpool')
      self.emit(f'fld {self.fr()}, {8 * r.randrange(len(FPOOL))}(x30)')
      return
    fmt = r.choice(['s', 'd'])
    rm = r.choice(RMS)
    kind = r.randrange(12)
    fd, f1, f2, f3 = self.fr(), self.fr(), self.fr(), self.fr()
    if kind < 3:
      op = r.choice(['fadd', 'fsub', 'fmul', 'fdiv'])
      self.emit(f'{op}.{fmt} {fd}, {f1}, {f2}, {rm}')
    elif kind < 4:
      self.emit(f'fsqrt.{fmt} {fd}, {f1}, {rm}')
    elif kind < 6:
      op = r.choice(['fmadd', 'fmsub', 'fnmsub', 'fnmadd'])
      self.emit(f'{op}.{fmt} {fd}, {f1}, {f2}, {f3}, {rm}')
    elif kind < 7:
      op = r.choice(['fsgnj', 'fsgnjn', 'fsgnjx', 'fmin', 'fmax'])
      self.emit(f'{op}.{fmt} {fd}, {f1}, {f2}')
    elif kind < 8:
      op = r.choice(['feq', 'flt', 'fle'])
      self.emit(f'{op}.{fmt} {self.xd()}, {f1}, {f2}')
    elif kind < 9:
      it = r.choice(['w', 'wu', 'l', 'lu'])
      self.emit(f'fcvt.{it}.{fmt} {self.xd()}, {f1}, {rm}')
    elif kind < 10:
      it = r.choice(['w', 'wu', 'l', 'lu'])
      exact = fmt == 'd' and it in ('w', 'wu')  # no rm field: always exact
      self.emit(f'fcvt.{fmt}.{it} {fd}, {self.xs()}' + ('' if exact else f', {rm}'))
    elif kind < 11:
      if fmt == 's':
        self.emit(f'fcvt.s.d {fd}, {f1}, {rm}')
      else:
        self.emit(f'fcvt.d.s {fd}, {f1}')
    else:
      op = r.choice(['fclass', 'fmvx', 'fmvf'])
      if op == 'fclass':
        self.emit(f'fclass.{fmt} {self.xd()}, {f1}')
      elif op == 'fmvx':
        self.emit(f'fmv.x.{"w" if fmt == "s" else "d"} {self.xd()}, {f1}')
      else:
        self.emit(f'fmv.{"w" if fmt == "s" else "d"}.x {fd}, {self.xs()}')

  def rand_csr_op(self):
    r = self.r
    kind = r.randrange(6)
    # Without fflags observation the old value of fflags/fcsr never reaches a register.
    rd = self.xd() if self.observe_fflags else 'x0'
    if not self.observe_fflags and kind in (0, 5):
      self.emit(f'frrm {self.xd()}')
      return
    if kind == 0:
      self.emit(f'frflags {rd}')
    elif kind == 1:
      self.emit(f'fsflags {rd}, {self.xs()}')
    elif kind == 2:
      self.emit(f'csrrci {rd}, fflags, {r.randrange(32)}')
    elif kind == 3:
      self.emit(f'csrrsi {rd}, fflags, {r.randrange(32)}')
    elif kind == 4:
      self.emit(f'fsrmi {rd}, {r.randrange(5)}')
    else:
      self.emit(f'frcsr {rd}')

  def rand_branch(self):
    """A forward branch or jump over a few instructions."""
    r = self.r
    target = self.new_label()
    kind = r.randrange(6)
    if kind < 3:
      op = r.choice(['beq', 'bne', 'blt', 'bge', 'bltu', 'bgeu', 'beqz', 'bnez'])
      if op in ('beqz', 'bnez'):
        self.emit(f'{op} {self.xs()}, {target}')
      else:
        self.emit(f'{op} {self.xs()}, {self.xs()}, {target}')
    elif kind < 4:
      self.emit(f'jal {self.xd()}, {target}')
    elif kind < 5:
      self.emit(f'la x30, {target}')
      # (register adjustment, jalr offset); the last one checks that jalr clears bit 0.
      adjust, off = r.choice([(0, 0), (8, -8), (-8, 8), (0, 1)])
      if adjust:
        self.emit(f'addi x30, x30, {adjust}')
      self.emit(f'jalr {self.xd()}, {off}(x30)')
    else:
      self.emit(f'j {target}')
    for _ in range(r.randrange(1, 4)):
      self.rand_int_op()
    self.label(target)

  def rand_instr(self):
    k = self.r.randrange(20)
    if k < 8:
      self.rand_int_op()
    elif k < 11:
      self.rand_mem_op()
    elif k < 16:
      self.rand_fp_op()
    elif k < 17:
      self.rand_csr_op()
    else:
      self.rand_branch()

  def rand_block(self, n):
    if self.r.random() < 0.3:
      self.emit('.option push')
      self.emit('.option norvc')
      self.norvc = True
      for _ in range(n):
        self.rand_instr()
      self.norvc = False
      self.emit('.option pop')
    else:
      for _ in range(n):
        self.rand_instr()

  def loop(self, iterations, body_len):
    top = self.new_label()
    self.li('x29', iterations)
    self.label(top)
    self.rand_block(body_len)
    self.emit('addi x29, x29, -1')
    self.emit(f'bnez x29, {top}')

  # ---- program skeleton ----
  def prologue(self):
    self.emit('la x31, scratch')
    self.emit(f'sd x2, {INITIAL_SP}(x31)')  # for the `process` group
    self.emit('fscsr x0')
    for i in range(32):
      self.fli(f'f{i}', self.fval())
    for i in range(1, 31):
      self.li(f'x{i}', self.val64())
    self.set_frm()

  def program(self, body_fn):
    out = []
    out.append('# generated by tests/difftest/gen_program.py')
    out.append('  .option rvc')
    out.append('  .text')
    out.append('  .globl _start')
    out.append('_start:')
    self.prologue()
    body_fn()
    self.emit('j dump')
    out.extend(self.lines)
    dump = DUMP_ROUTINE
    if not self.observe_fflags:
      dump = dump.replace('  frcsr t0\n', '  frcsr t0\n  andi t0, t0, 0xe0\n')
    out.append(dump)
    out.append('  .data')
    out.append('  .balign 16')
    out.append('regsave:')
    out.append(f'  .zero {REGSAVE_SIZE}')
    out.append('scratch:')
    for _ in range(SCRATCH_SIZE // 8):
      out.append(f'  .quad {self.val64():#x}')
    out.append('  .zero 64')
    out.append('fpool:')
    for v in FPOOL:
      out.append(f'  .quad {v:#x}')
    out.append(f'outbuf:')
    for name in OUT_NAMES:
      out.append(f'  .ascii "{name:<5}{"0" * 16}\\n"')
    out.append('outbuf_end:')
    out.append('end_of_image:')
    return '\n'.join(out) + '\n'


OUT_NAMES = [f'x{i}' for i in range(1, 32)] + [f'f{i}' for i in range(32)] + ['fcsr', 'mem']
LINE_LEN = 5 + 16 + 1

DUMP_ROUTINE = f"""
dump:
{chr(10).join(f'  sd x{i}, {X_SAVE + 8 * i}(x31)' for i in range(1, 31))}
  sd x31, {X_SAVE + 8 * 31}(x31)
{chr(10).join(f'  fsd f{i}, {F_SAVE + 8 * i}(x31)' for i in range(32))}
  frcsr t0
  sd t0, {FCSR_SAVE}(x31)
  # checksum of scratch: h = rotl(h, 7) ^ w, h += w (base ISA only)
  li t0, 0
  mv t1, x31
  li t2, {SCRATCH_SIZE // 8}
1:
  ld t3, 0(t1)
  slli a0, t0, 7
  srli a1, t0, 57
  or t0, a0, a1
  xor t0, t0, t3
  add t0, t0, t3
  addi t1, t1, 8
  addi t2, t2, -1
  bnez t2, 1b
  sd t0, {FCSR_SAVE + 8}(x31)
  # hex lines: x1..x31 then f0..f31, fcsr, mem are consecutive in regsave
  la a2, outbuf + 5
  addi s1, x31, {X_SAVE + 8}
  li s2, {len(OUT_NAMES)}
2:
  ld a1, 0(s1)
  li t0, 16
3:
  srli t1, a1, 60
  slli a1, a1, 4
  addi t1, t1, -10
  bltz t1, 4f
  addi t1, t1, 97
  j 5f
4:
  addi t1, t1, 58
5:
  sb t1, 0(a2)
  addi a2, a2, 1
  addi t0, t0, -1
  bnez t0, 3b
  addi a2, a2, 6
  addi s1, s1, 8
  addi s2, s2, -1
  bnez s2, 2b
  li a7, 64
  li a0, 1
  la a1, outbuf
  li a2, {len(OUT_NAMES) * LINE_LEN}
  ecall
  li a7, 94
  li a0, 0
  ecall
"""
# x1..x31 at X_SAVE+8..X_SAVE+248, f0..f31 at F_SAVE.., fcsr, mem follow contiguously.
assert X_SAVE + 8 * 32 == F_SAVE and F_SAVE + 8 * 32 == FCSR_SAVE


# ---------------------------------------------------------------------------------------
# Directed sequences: edge values for every extension. Each block ends by folding what it
# computed into registers that the dump prints (results are kept in x/f registers and in
# scratch memory, whose checksum is printed).

class Directed(Gen):
  def snapshot(self):
    """Folds the block's result registers and fflags into x26/x27 (printed by the dump), so
    a wrong value anywhere in the block shows even if later code overwrites it."""
    regs = ['x5', 'x6', 'x7', 'x10', 'x11', 'x12', 'x13', 'x14']
    for reg in regs + (['fflags'] if self.observe_fflags else []):
      if reg == 'fflags':
        self.emit('frflags x25')
        reg = 'x25'
      self.emit('slli x28, x26, 13')
      self.emit('srli x26, x26, 51')
      self.emit('or x26, x26, x28')
      self.emit(f'xor x26, x26, {reg}')
      self.emit('add x27, x27, x26')

  def int_edges(self):
    vals = EDGE64
    ops = ['add', 'sub', 'sll', 'srl', 'sra', 'slt', 'sltu', 'addw', 'subw', 'sllw', 'srlw',
           'sraw', 'mul', 'mulh', 'mulhsu', 'mulhu', 'mulw', 'div', 'divu', 'rem', 'remu',
           'divw', 'divuw', 'remw', 'remuw']
    pairs = [(0, 0), (1, 0), (0xffffffffffffffff, 0), (0x8000000000000000, 0xffffffffffffffff),
             (0xffffffff80000000, 0xffffffffffffffff), (0x80000000, 0xffffffff),
             (0x7fffffffffffffff, 0x7fffffffffffffff), (0x8000000000000000, 0x8000000000000000),
             (0x123456789abcdef0, 63), (0x123456789abcdef0, 64), (0x80000001, 31), (0x80000001, 32),
             (0xffffffffffffffff, 0xffffffffffffffff), (7, 0xfffffffffffffffd),
             (0xfffffffffffffff9, 2), (0x8000000000000000, 1)]
    for a, b in pairs:
      self.li('x5', a)
      self.li('x6', b)
      for i, op in enumerate(ops):
        dst = ['x7', 'x10', 'x11', 'x12', 'x13', 'x14'][i % 6]
        self.emit(f'{op} {dst}, x5, x6')
        if i % 6 == 5:
          self.snapshot()
      self.snapshot()
    for v in vals:
      self.li('x5', v)
      for op, sh in [('slli', 63), ('srli', 63), ('srai', 63), ('slli', 0), ('srai', 1),
                     ('slliw', 31), ('srliw', 31), ('sraiw', 31), ('sraiw', 0), ('addiw', 0),
                     ('addiw', -1), ('sltiu', -1), ('slti', -2048), ('xori', -1)]:
        self.emit(f'{op} x7, x5, {sh}')
        self.emit('add x10, x10, x7')
        self.emit('xor x11, x11, x7')
        self.emit('slli x11, x11, 1')
      self.snapshot()
    # x0 is hard-wired.
    self.emit('addi x0, x0, 5')
    self.emit('lui x0, 0x12345')
    self.emit('add x7, x0, x0')
    self.snapshot()

  def compressed(self):
    self.emit('mv x8, x31')         # s0 = scratch
    self.emit('addi x2, x31, 512')  # sp = scratch + 512
    self.li('x9', 0x8000000000000001)
    self.li('x10', 0xfffffffffffffff0)
    for s in ['c.addi x10, -32', 'c.addi x10, 31', 'c.addiw x10, -1', 'c.li x11, -32',
              'c.lui x12, 0xfffe0', 'c.lui x13, 1', 'c.srli x9, 63', 'c.srai x10, 1',
              'c.andi x10, -17', 'c.slli x11, 63', 'c.mv x14, x10', 'c.add x14, x9',
              'c.sub x9, x10', 'c.xor x9, x10', 'c.or x9, x10', 'c.and x9, x10',
              'c.subw x9, x10', 'c.addw x9, x10', 'c.addi16sp x2, -64', 'c.addi16sp x2, 496',
              'c.addi4spn x15, x2, 1020', 'c.addi4spn x12, x2, 4',
              'c.sd x9, 0(x8)', 'c.sw x10, 8(x8)', 'c.ld x11, 0(x8)', 'c.lw x12, 8(x8)',
              'c.fsd f8, 16(x8)', 'c.fld f9, 16(x8)', 'c.sdsp x10, 504(x2)',
              'c.swsp x11, 252(x2)', 'c.ldsp x13, 504(x2)', 'c.lwsp x14, 252(x2)',
              'c.fsdsp f1, 24(x2)', 'c.fldsp f2, 24(x2)', 'c.lw x15, 124(x8)', 'c.ld x15, 248(x8)']:
      self.emit(s)
    self.emit('c.addi16sp x2, -496')
    # c.j / c.jal-free RV64: c.jr, c.jalr, c.beqz, c.bnez
    l1, l2, l3 = self.new_label(), self.new_label(), self.new_label()
    self.emit(f'la x5, {l1}')
    self.emit('c.jalr x5')        # ra = return address
    self.emit(f'c.j {l2}')
    self.label(l1)
    self.emit('c.mv x6, x1')
    self.emit('c.jr x1')
    self.label(l2)
    self.emit('c.li x10, 0')
    self.emit(f'c.beqz x10, {l3}')
    self.emit('c.li x10, 7')
    self.label(l3)
    self.emit(f'c.bnez x10, {l3}_skip')
    self.emit('c.li x11, 9')
    self.label(f'{l3}_skip')
    self.emit('c.nop')
    self.snapshot()

  def memory(self):
    self.li('x5', 0x8899aabbccddeeff)
    self.emit('sd x5, 64(x31)')
    for op in ['lb', 'lbu', 'lh', 'lhu', 'lw', 'lwu', 'ld']:
      for off in [64, 65, 67, 71]:
        self.emit(f'{op} x7, {off}(x31)')  # misaligned where off is odd
        self.emit('xor x10, x10, x7')
        self.emit('slli x10, x10, 3')
        self.emit('add x11, x11, x7')
    self.li('x6', 0x0102030405060708)
    for op, off in [('sb', 129), ('sh', 131), ('sw', 133), ('sd', 139), ('sh', 144), ('sw', 150)]:
      self.emit(f'{op} x6, {off}(x31)')
    self.emit('ld x12, 128(x31)')
    self.emit('ld x13, 136(x31)')
    self.emit('ld x14, 144(x31)')
    # FP loads/stores: flw NaN-boxes, fsw stores the low half.
    self.emit('flw f3, 64(x31)')
    self.emit('fsd f3, 160(x31)')
    self.emit('fld f4, 64(x31)')
    self.emit('fsw f4, 168(x31)')
    self.emit('flw f5, 66(x31)')  # misaligned FP load
    self.emit('fsd f5, 171(x31)')
    self.emit('ld x5, 160(x31)')
    self.emit('ld x6, 168(x31)')
    self.emit('ld x7, 171(x31)')
    self.snapshot()

  def atomics(self):
    self.emit('addi x30, x31, 256')
    for w in ['w', 'd']:
      for op in ['amoswap', 'amoadd', 'amoxor', 'amoand', 'amoor', 'amomin', 'amomax',
                 'amominu', 'amomaxu']:
        for a, b in [(0x7fffffff, 0x80000000), (0xffffffffffffffff, 1),
                     (0x8000000000000000, 0x7fffffffffffffff), (0x80000000, 0xffffffff)]:
          self.li('x5', a)
          self.li('x6', b)
          self.emit(f'sd x5, 0(x30)')
          self.emit(f'{op}.{w} x7, x6, (x30)')
          self.emit('ld x10, 0(x30)')
          self.emit('xor x11, x11, x7')
          self.emit('add x12, x12, x10')
          self.emit('slli x11, x11, 1')
        self.snapshot()
    # LR/SC: pair succeeds; SC without reservation fails; SC to another address fails;
    # rd == rs2 form.
    self.li('x5', 0x1111222233334444)
    self.emit('sd x5, 0(x30)')
    self.emit('lr.d.aq x6, (x30)')
    self.emit('addi x6, x6, 1')
    self.emit('sc.d.rl x7, x6, (x30)')      # 0
    self.emit('sc.d x10, x6, (x30)')        # fails: reservation gone
    self.emit('lr.w x11, (x30)')
    self.emit('sc.w x12, x5, (x30)')        # 0
    self.emit('lr.d x13, (x30)')
    self.emit('addi x14, x30, 64')
    self.emit('sc.d x14, x5, (x14)')        # different address: fails (non-zero)
    self.emit('sltu x14, x0, x14')
    self.emit('ld x6, 0(x30)')
    self.emit('lr.w.aqrl x5, (x30)')
    self.emit('sc.w.aqrl x5, x5, (x30)')
    self.snapshot()

  def fp_edges(self):
    # Every op on every pair of a small special-value set, in every static rounding mode
    # for the ones that round.
    s_vals = [0x00000000, 0x80000000, 0x3f800000, 0x7f800000, 0xff800000, 0x7fc00000,
              0x7f800001, 0x00000001, 0x7f7fffff, 0x3eaaaaab, 0xc0490fdb]
    d_vals = [0x0, 0x8000000000000000, 0x3ff0000000000000, 0x7ff0000000000000,
              0xfff0000000000000, 0x7ff8000000000000, 0x7ff0000000000001, 0x1,
              0x7fefffffffffffff, 0x3fd5555555555555, 0xc00921fb54442d18]
    for fmt, vals in [('s', s_vals), ('d', d_vals)]:
      for a in vals:
        self.fli('f10', box32(a) if fmt == 's' else a)
        for b in vals[::2]:
          self.fli('f11', box32(b) if fmt == 's' else b)
          self.emit('fsflags x0')
          for op in ['fadd', 'fsub', 'fmul', 'fdiv']:
            for rm in RMS[:5]:
              self.emit(f'{op}.{fmt} f12, f10, f11, {rm}')
              self.emit(f'fmv.x.d x5, f12')
              self.emit('add x10, x10, x5')
              self.emit('slli x11, x11, 1')
              self.emit('xor x11, x11, x5')
          for op in ['fmin', 'fmax', 'fsgnj', 'fsgnjn', 'fsgnjx']:
            self.emit(f'{op}.{fmt} f12, f10, f11')
            self.emit('fmv.x.d x5, f12')
            self.emit('add x12, x12, x5')
            self.emit('slli x12, x12, 1')
          for op in ['feq', 'flt', 'fle']:
            self.emit(f'{op}.{fmt} x6, f10, f11')
            self.emit('slli x13, x13, 1')
            self.emit('or x13, x13, x6')
          self.emit('fmadd.' + fmt + ' f13, f10, f11, f10, rne')
          self.emit('fnmsub.' + fmt + ' f14, f10, f11, f11, rdn')
          self.emit('fmv.x.d x6, f13')
          self.emit('fmv.x.d x7, f14')
          self.snapshot()
        self.emit(f'fsqrt.{fmt} f15, f10')
        self.emit(f'fclass.{fmt} x14, f10')
        self.snapshot()

  def fcvt_edges(self):
    fvals_d = [0x0, 0x8000000000000000, 0x3fe0000000000000, 0xbfe0000000000000,
               0x3ff8000000000000, 0xbff8000000000000, 0x4004000000000000, 0xc004000000000000,
               0x41dfffffffc00000, 0x41e0000000000000, 0xc1e0000000000000, 0xc1e0000000200000,
               0x41efffffffe00000, 0x41f0000000000000, 0x43dfffffffffffff, 0x43e0000000000000,
               0xc3e0000000000000, 0x43f0000000000000, 0x7ff0000000000000, 0xfff0000000000000,
               0x7ff8000000000000, 0x7ff0000000000001, 0xfff8000000000000, 0x0000000000000001,
               0xbff0000000000000, 0xbfefffffffffffff]
    fvals_s = [0x0, 0x80000000, 0x3f000000, 0xbf000000, 0x3fc00000, 0xbfc00000, 0x40200000,
               0xc0200000, 0x4effffff, 0x4f000000, 0xcf000000, 0x4f800000, 0x5effffff,
               0x5f000000, 0xdf000000, 0x5f800000, 0x7f800000, 0xff800000, 0x7fc00000,
               0x7f800001, 0xbf800000, 0xbf7fffff, 0x00000001]
    for fmt, vals in [('d', fvals_d), ('s', fvals_s)]:
      for v in vals:
        self.fli('f10', box32(v) if fmt == 's' else v)
        self.emit('fsflags x0')
        for it in ['w', 'wu', 'l', 'lu']:
          for rm in RMS[:5]:
            self.emit(f'fcvt.{it}.{fmt} x5, f10, {rm}')
            self.emit('add x10, x10, x5')
            self.emit('slli x11, x11, 1')
            self.emit('xor x11, x11, x5')
        if fmt == 'd':
          for rm in RMS[:5]:
            self.emit(f'fcvt.s.d f11, f10, {rm}')
            self.emit('fmv.x.d x6, f11')
            self.emit('add x12, x12, x6')
            self.emit('slli x12, x12, 1')
        else:
          self.emit('fcvt.d.s f11, f10')
          self.emit('fmv.x.d x13, f11')
        self.snapshot()
    ivals = [0, 1, 0xffffffffffffffff, 0x7fffffff, 0x80000000, 0xffffffff80000000, 0xffffffff,
             0x7fffffffffffffff, 0x8000000000000000, 0x1000001, 0x20000000000001,
             0xfffffffffeffffff, 0x123456789abcdef1]
    for v in ivals:
      self.li('x5', v)
      self.emit('fsflags x0')
      for fmt in ['s', 'd']:
        for it in ['w', 'wu', 'l', 'lu']:
          for rm in RMS[:5]:
            exact = fmt == 'd' and it in ('w', 'wu')  # no rm field: always exact
            self.emit(f'fcvt.{fmt}.{it} f12, x5' + ('' if exact else f', {rm}'))
            self.emit('fmv.x.d x6, f12')
            self.emit('add x10, x10, x6')
            self.emit('slli x11, x11, 1')
            self.emit('xor x11, x11, x6')
      self.snapshot()

  def nan_boxing(self):
    # fmv.w.x boxes; a single op on an unboxed value sees the canonical NaN; fmv.x.w
    # sign-extends; fsgnj.s on unboxed input; fadd.d on a boxed single.
    self.li('x5', 0x3f800000)
    self.emit('fmv.w.x f1, x5')
    self.emit('fmv.x.d x6, f1')           # 0xffffffff3f800000
    self.emit('fadd.d f2, f1, f1')        # a NaN as binary64: result is canonical NaN
    self.emit('fmv.x.d x7, f2')
    self.li('x5', 0x000000003f800000)
    self.emit('fmv.d.x f3, x5')           # not boxed
    self.emit('fadd.s f4, f3, f1')        # canonical NaN (f3 is NaN as single)
    self.emit('fmv.x.d x10, f4')
    self.emit('fsgnj.s f5, f3, f3')
    self.emit('fmv.x.d x11, f5')
    self.emit('fsgnjn.s f6, f1, f3')
    self.emit('fmv.x.d x12, f6')
    self.li('x5', 0xffffffff80000000)
    self.emit('fmv.d.x f7, x5')
    self.emit('fmv.x.w x13, f7')          # sign-extended
    self.li('x5', 0xfffffff0bf800000)      # almost boxed: not boxed
    self.emit('fmv.d.x f8, x5')
    self.emit('fclass.s x14, f8')          # quiet NaN
    self.snapshot()
    self.emit('fmv.x.w x13, f8')           # fmv.x.w ignores boxing
    self.emit('fsd f6, 200(x31)')
    self.emit('fcvt.d.s f9, f3')
    self.emit('fmv.x.d x29, f9')
    self.emit('fmax.s f10, f3, f1')        # unboxed operand counts as a NaN
    self.emit('fmv.x.d x5, f10')
    self.emit('flw f11, 200(x31)')
    self.emit('fmv.x.d x6, f11')
    self.snapshot()

  def rounding_dyn(self):
    # Same ops via the static rm field and via frm + DYN: must agree.
    pairs = [(0x3ff0000000000000, 0x3ca0000000000000), (0xbff0000000000000, 0xbca0000000000000),
             (0x3ff0000000000000, 0x3cb8000000000000), (0x4000000000000001, 0x3ff0000000000003)]
    for a, b in pairs:
      self.fli('f10', a)
      self.fli('f11', b)
      self.emit('fcvt.s.d f12, f10')
      self.emit('fcvt.s.d f13, f11')
      for rm in range(5):
        self.set_frm(rm)
        self.emit('fadd.d f14, f10, f11')
        self.emit('fmul.d f15, f10, f11, dyn')
        self.emit('fmadd.s f16, f12, f13, f12')
        self.emit('fcvt.w.d x5, f14')
        self.emit('fcvt.s.d f17, f15')
        self.emit('fmv.x.d x6, f14')
        self.emit('fmv.x.d x7, f15')
        self.emit('fmv.x.d x10, f16')
        self.emit('fmv.x.d x11, f17')
        self.emit('frcsr x12')
        self.snapshot()
    # fcsr as a CSR: frm and fflags fields, reserved bits read back as zero.
    self.emit('li x5, -1')
    self.emit('fscsr x6, x5')
    self.emit('frcsr x7')                  # 0xff
    self.emit('frrm x10')
    self.emit('frflags x11')
    self.emit('fsrmi x12, 7')              # frm = 7 (invalid, only DYN would trap)
    self.emit('frrm x13')
    self.emit('csrrwi x14, fcsr, 0x15')
    self.snapshot()
    self.emit('csrrs x13, frm, x0')
    self.emit('csrrc x5, fflags, x5')
    self.emit('csrr x6, fcsr')
    self.emit('csrrwi x7, frm, 3')
    self.emit('csrrsi x10, fflags, 1')
    self.emit('csrrci x11, fcsr, 0x18')
    self.emit('csrr x12, fcsr')
    self.snapshot()

  def counters(self):
    # Zicntr: values differ between implementations, monotonicity does not.
    for csr in ['cycle', 'time', 'instret']:
      self.emit(f'rd{csr} x5')
      self.emit('addi x0, x0, 0')
      self.emit(f'rd{csr} x6')
      self.emit('sltu x7, x6, x5')   # 0: counters never go backwards
      self.emit('add x10, x10, x7')
    self.emit('li x5, 0')
    self.emit('li x6, 0')
    self.snapshot()

  def fence_i(self):
    # Zifencei: patch an instruction, fence.i, run it again.
    self.emit('fence')
    self.emit('fence rw, rw')
    self.emit('fence.i')
    self.emit('la x30, smc_fn')
    self.emit('jalr x1, 0(x30)')
    self.emit('mv x11, x10')
    self.li('x5', (5 << 20) | (10 << 7) | 0x13)  # addi x10, x0, 5
    self.emit('sw x5, 0(x30)')
    self.emit('fence.i')
    self.emit('jalr x1, 0(x30)')
    self.emit('mv x12, x10')
    self.li('x5', (77 << 20) | (10 << 7) | 0x13)  # addi x10, x0, 77
    self.emit('sw x5, 0(x30)')
    self.emit('fence.i')
    self.emit('jalr x1, 0(x30)')
    self.emit('mv x13, x10')
    self.snapshot()

  def process(self):
    # What the loader and the system calls give a program, as Linux (qemu-user) does:
    # argc, argv[0], envp count, auxv entries, brk, and error returns of system calls.
    self.emit(f'ld x8, {INITIAL_SP}(x31)')
    self.emit('andi x5, x8, 15')          # 0: sp is 16-byte aligned
    self.emit('ld x6, 0(x8)')             # argc
    self.emit('ld x7, 8(x8)')             # argv[0]
    self.emit('lbu x10, 0(x7)')           # its first byte ('/')
    self.emit('li x7, 0')                 # (a stack address: differs between implementations)
    self.emit('ld x11, 16(x8)')           # argv[argc] == NULL
    self.snapshot()
    self.emit('addi x9, x8, 24')          # envp
    self.emit('li x12, 0')
    loop, done = self.new_label(), self.new_label()
    self.label(loop)
    self.emit('ld x13, 0(x9)')
    self.emit('addi x9, x9, 8')
    self.emit(f'beqz x13, {done}')
    self.emit('addi x12, x12, 1')         # number of environment strings
    self.emit(f'j {loop}')
    self.label(done)
    # auxv: fold the value of each type the program can rely on.
    for at in [3, 4, 5, 6, 9, 16, 23]:    # PHDR PHENT PHNUM PAGESZ ENTRY HWCAP SECURE
      found, nxt, end = self.new_label(), self.new_label(), self.new_label()
      self.emit('mv x15, x9')
      self.emit('li x5, -1')
      self.label(nxt)
      self.emit('ld x6, 0(x15)')
      self.emit(f'beqz x6, {end}')
      self.emit(f'li x7, {at}')
      self.emit(f'bne x6, x7, {found}')
      self.emit('ld x5, 8(x15)')
      self.label(found)
      self.emit('addi x15, x15, 16')
      self.emit(f'j {nxt}')
      self.label(end)
      self.emit('mv x6, x0')
      self.emit('mv x7, x0')
      self.snapshot()
    # AT_RANDOM points at 16 readable bytes on the stack (values differ: not folded).
    self.emit('li x5, 0')
    # brk: the initial break is the page-aligned end of the image; it grows, and new
    # memory is zero and writable.
    def sys(nr, a0=None, a1=None, a2=None):
      for reg, v in (('x10', a0), ('x11', a1), ('x12', a2)):
        if v is not None:
          self.emit(f'{"mv" if isinstance(v, str) else "li"} {reg}, {v}')
      self.emit(f'li x17, {nr}')
      self.emit('ecall')
    sys(214, 0)
    self.emit('mv x5, x10')
    self.emit('la x6, end_of_image')
    self.emit('sub x6, x5, x6')           # distance to the end of the data
    self.emit('lui x7, 0x10')
    self.emit('add x7, x5, x7')
    sys(214, 'x7')                        # grow by 64 KiB
    self.emit('sub x7, x10, x5')
    self.emit('ld x11, 8(x5)')            # zero
    self.emit('sd x7, 0x7f8(x5)')
    self.emit('ld x12, 0x7f8(x5)')
    sys(214, 1)                           # below the start: unchanged
    self.emit('sub x13, x10, x5')
    self.snapshot()
    # Error returns: bad fd, bad pointer, unknown call, and a successful zero-length write.
    sys(64, 99, 'x31', 1)
    self.emit('mv x5, x10')               # -EBADF
    sys(64, 1, 8, 1)
    self.emit('mv x6, x10')               # -EFAULT
    sys(9999, 0)
    self.emit('mv x7, x10')               # -ENOSYS
    sys(64, 1, 'x31', 0)
    self.emit('mv x11, x10')              # 0
    self.emit('li x12, 0')
    self.emit('li x13, 0')
    self.emit('li x14, 0')
    self.emit('li x17, 0')
    self.snapshot()
    for reg in ['x8', 'x9', 'x15']:       # stack addresses differ between implementations
      self.emit(f'li {reg}, 0')

  def page_cross(self):
    # Loads and stores that straddle a 4 KiB page boundary (the slow path of a software
    # TLB), and instructions that straddle one (fetch from two pages).
    self.emit('la x8, pagebuf + 4096')
    self.li('x5', 0x0123456789abcdef)
    self.li('x6', 0xfedcba9876543210)
    for off in [-1, -2, -3, -4, -5, -7]:
      for op in ['sd', 'sw', 'sh']:
        self.emit(f'{op} x5, {off}(x8)')
        for lop in ['ld', 'lw', 'lwu', 'lh', 'lhu', 'lb']:
          self.emit(f'{lop} x7, {off}(x8)')
          self.emit('add x10, x10, x7')
          self.emit('slli x11, x11, 1')
          self.emit('xor x11, x11, x7')
        self.emit('xor x5, x5, x6')
        self.emit('slli x6, x6, 3')
      self.emit(f'fld f1, {off}(x8)')
      self.emit(f'flw f2, {off}(x8)')
      self.emit(f'fsd f2, {off - 8}(x8)')
      self.emit(f'fsw f1, {off + 8}(x8)')
      self.emit(f'ld x12, {off - 8}(x8)')
      self.emit(f'ld x13, {off + 8}(x8)')
      self.snapshot()
    self.emit('ld x14, -16(x8)')
    self.emit('ld x13, 0(x8)')
    self.emit('ld x12, 8(x8)')
    self.emit('li x8, 0')
    # Straddling instructions, reached by falling through and by a jump.
    self.emit('li x5, 0')
    self.emit('call straddle_fn')
    self.emit('mv x6, x5')
    self.emit('la x7, straddle_insn')
    self.emit('jalr x1, 0(x7)')
    self.emit('mv x7, x5')
    self.snapshot()

  GROUPS = ['process', 'page_cross', 'int_edges', 'compressed', 'memory', 'atomics', 'fp_edges', 'fcvt_edges',
            'nan_boxing', 'rounding_dyn', 'counters', 'fence_i']

  def run(self, group):
    self.emit('li x26, 0')
    self.emit('li x27, 0')
    getattr(self, group)()
    self.set_frm(0)


# Programs that must die of a signal, the same one as under Linux: name -> body.
FAULTS = {
    'illegal_unimp': ['unimp'],
    'illegal_rm5': ['.insn r 0x53, 5, 0, f1, f2, f3'],          # fadd.s with reserved rm 5
    'illegal_dyn_frm7': ['fsrmi x0, 7', 'fadd.d f1, f2, f3'],    # DYN with frm = 7
    'illegal_csr_mstatus': ['csrr x5, mstatus'],                 # M-mode CSR from U-mode
    'illegal_csr_sstatus': ['csrr x5, sstatus'],
    'illegal_wfi': ['wfi'],
    'illegal_mret': ['mret'],
    'breakpoint': ['ebreak'],
    'c_breakpoint': ['c.ebreak'],
    'load_page_zero': ['li x5, 8', 'ld x6, 0(x5)'],
    'store_page_zero': ['sd x5, 0(x0)'],
    'load_high': ['li x5, 0x7ffffffff000', 'lw x6, 0(x5)'],
    'jump_unmapped': ['li x5, 0x100', 'jr x5'],
    'amo_misaligned': ['addi x5, x31, 2', 'amoadd.w x6, x6, (x5)'],
    'lr_misaligned': ['addi x5, x31, 4', 'lr.d x6, (x5)'],
}

SMC_SECTION = """
  .section .smc, "awx"
  .option push
  .option norvc
  .balign 4
smc_fn:
  addi x10, x0, 1
  ret
  .option pop
"""


# page_cross: a 32-bit instruction at page offset 0xffe, and a data buffer across pages.
PAGE_CROSS_SECTIONS = """
  .text
  .balign 4096
straddle_fn:
  .option push
  .option rvc
  .rept 2047
  c.addi x5, 1
  .endr
  .option norvc
straddle_insn:
  addi x5, x5, 1000
  addi x5, x5, 7
  ret
  .option pop
  .data
  .balign 4096
pagebuf:
  .zero 8192
"""


def generate(kind, seed, loops, body, iterations, group=None, observe_fflags=True):
  if kind == 'fault':
    g = Gen(seed)

    def fault_body():
      for line in FAULTS[group]:
        g.emit(line)

    return g.program(fault_body)
  if kind == 'directed':
    g = Directed(seed, observe_fflags)
    extra = {'fence_i': SMC_SECTION, 'page_cross': PAGE_CROSS_SECTIONS}.get(group, '')
    return g.program(lambda: g.run(group)) + extra
  g = Gen(seed, observe_fflags)

  def body_fn():
    for _ in range(loops):
      g.rand_block(g.r.randrange(10, 40))
      g.loop(iterations, body)
    g.rand_block(50)

  return g.program(body_fn)


def main():
  ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
  ap.add_argument('--kind', choices=['directed', 'random', 'fault'], required=True)
  ap.add_argument('--group', choices=Directed.GROUPS + list(FAULTS), help='directed, fault: which group')
  ap.add_argument('--seed', type=int, required=True)
  ap.add_argument('--loops', type=int, default=4, help='random: number of loops')
  ap.add_argument('--body', type=int, default=40, help='random: instructions per loop body')
  ap.add_argument('--iterations', type=int, default=400, help='random: iterations per loop')
  ap.add_argument('--no-fflags', action='store_true',
                  help='keep fflags values out of the printed state')
  ap.add_argument('-o', '--output', default='-')
  a = ap.parse_args()
  if a.kind in ('directed', 'fault') and not a.group:
    ap.error(f'--kind {a.kind} needs --group')
  text = generate(a.kind, a.seed, a.loops, a.body, a.iterations, a.group, not a.no_fflags)
  if a.output == '-':
    sys.stdout.write(text)
  else:
    with open(a.output, 'w') as f:
      f.write(text)


if __name__ == '__main__':
  main()
