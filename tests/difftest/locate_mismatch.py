#!/usr/bin/env python3
"""Finds the first instruction after which doppel and qemu-riscv64 disagree.

Runs a program under qemu-riscv64 (-singlestep -d cpu,fpu: registers before every
instruction) and under doppel-user --state-trace, compares the two streams step by step,
and prints the instruction that produced the first differing x or f register, with the
values before and after. Registers that already differ at the start (sp, the stack) are
ignored until both implementations agree on them.

  locate_mismatch.py --runner build-x/doppel-user difftest-work/random_4
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile

QEMU_PC = re.compile(r'^ pc\s+([0-9a-f]+)')
QEMU_REG = re.compile(r'([xf])(\d+)/\S+\s+([0-9a-f]{16})')


def qemu_steps(f):
  state = None
  for line in f:
    m = QEMU_PC.match(line)
    if m:
      if state:
        yield state
      state = {'pc': int(m.group(1), 16)}
      continue
    if state is not None:
      for kind, num, val in QEMU_REG.findall(line):
        state[f'{kind}{num}'] = int(val, 16)
  if state:
    yield state


def doppel_steps(f):
  state = None
  for line in f:
    if line.startswith('pc '):
      if state:
        yield state
      state = {'pc': int(line[3:], 16)}
    elif state is not None and (line.startswith('x ') or line.startswith('f ')):
      kind = line[0]
      for i, v in enumerate(line[2:].split()):
        state[f'{kind}{i}'] = int(v, 16)
  if state:
    yield state


def disassembly(exe, cross_prefix):
  out = subprocess.run([cross_prefix + 'objdump', '-d', exe], capture_output=True, text=True).stdout
  insns = {}
  for line in out.splitlines():
    m = re.match(r'^\s+([0-9a-f]+):\s+[0-9a-f]+\s+(.*)$', line)
    if m:
      insns[int(m.group(1), 16)] = m.group(2).strip()
  return insns


def main():
  ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
  ap.add_argument('program')
  ap.add_argument('--runner', required=True)
  ap.add_argument('--qemu', default='qemu-riscv64')
  ap.add_argument('--cross-prefix', default='riscv64-linux-gnu-')
  ap.add_argument('--max-steps', type=int, default=5_000_000)
  a = ap.parse_args()

  insns = disassembly(a.program, a.cross_prefix)
  tmp = tempfile.mkdtemp(prefix='locate-')
  fifo = os.path.join(tmp, 'qemu.log')
  os.mkfifo(fifo)
  q = subprocess.Popen([a.qemu, '-singlestep', '-d', 'cpu,fpu,nochain', '-D', fifo, a.program],
                       stdout=subprocess.DEVNULL)
  d = subprocess.Popen([a.runner, '--state-trace', a.program], stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, text=True)
  qf = open(fifo)
  ignored = None
  prev_q = prev_d = None
  result = 1
  try:
    for step, (sq, sd) in enumerate(zip(qemu_steps(qf), doppel_steps(d.stderr))):
      if step >= a.max_steps:
        print(f'no difference in the first {step} instructions')
        result = 0
        break
      keys = ['pc'] + [f'x{i}' for i in range(32)] + [f'f{i}' for i in range(32)]
      diff = [k for k in keys if sq.get(k) != sd.get(k)]
      if ignored is None:
        ignored = set(diff) - {'pc'}
      ignored -= {k for k in keys if sq.get(k) == sd.get(k)}
      diff = [k for k in diff if k not in ignored]
      if diff:
        print(f'first difference before step {step} (instructions executed: {step})')
        if prev_q:
          pc = prev_q['pc']
          print(f'  after  {pc:#x}: {insns.get(pc, "?")}')
          if prev_d and prev_d['pc'] != pc:
            print(f'  (doppel was at {prev_d["pc"]:#x}: {insns.get(prev_d["pc"], "?")})')
          for k in sorted(set(keys[1:]) & {r for r in keys if prev_q.get(r) is not None}):
            pass
          srcs = insns.get(pc, '')
          print(f'  inputs (qemu values before it): ' + ', '.join(
              f'{r}={prev_q[r]:#x}' for r in re.findall(r'\b([xf]\d+)\b', _abi_to_num(srcs))
              if r in prev_q))
        for k in diff:
          print(f'  {k:<4} qemu {sq.get(k, 0):#018x}  doppel {sd.get(k, 0):#018x}')
        break
      prev_q, prev_d = sq, sd
    else:
      print('the traces agree until one of them ends')
      result = 0
  finally:
    q.kill()
    d.kill()
    qf.close()
    q.wait()
    d.wait()
    os.unlink(fifo)
    os.rmdir(tmp)
  return result


ABI = {'zero': 0, 'ra': 1, 'sp': 2, 'gp': 3, 'tp': 4, 't0': 5, 't1': 6, 't2': 7, 's0': 8,
       'fp': 8, 's1': 9, 'a0': 10, 'a1': 11, 'a2': 12, 'a3': 13, 'a4': 14, 'a5': 15, 'a6': 16,
       'a7': 17, 's2': 18, 's3': 19, 's4': 20, 's5': 21, 's6': 22, 's7': 23, 's8': 24, 's9': 25,
       's10': 26, 's11': 27, 't3': 28, 't4': 29, 't5': 30, 't6': 31}
FABI = {**{f'ft{i}': i for i in range(8)}, 'fs0': 8, 'fs1': 9,
        **{f'fa{i}': 10 + i for i in range(8)}, **{f'fs{i}': 16 + i for i in range(2, 12)},
        **{f'ft{i}': 20 + i for i in range(8, 12)}}


def _abi_to_num(text):
  def sub(m):
    w = m.group(0)
    if w in ABI:
      return f'x{ABI[w]}'
    if w in FABI:
      return f'f{FABI[w]}'
    return w
  return re.sub(r'\b[a-z]+\d*\b', sub, text)


if __name__ == '__main__':
  sys.exit(main())
