#!/usr/bin/env python3
"""Differential test: generated riscv64 programs under qemu-riscv64 and under doppel-user.

Generates the directed groups and N random programs (fixed seeds, plus one fresh seed that
is printed so a failure can be reproduced with --seeds), assembles and links them, runs
each under both, and compares what the programs print (x1..x31, f0..f31, fcsr, scratch
checksum) and their exit status. Fails if doppel executed fewer than --min-instret
instructions in total.

  run_difftest.py --runner build/doppel-user --workdir /tmp/dt
  run_difftest.py --runner build/doppel-user --seeds 1234 --no-directed   # reproduce
"""

import argparse
import concurrent.futures
import os
import random
import re
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import gen_program  # noqa: E402

MARCH = 'rv64gc_zicsr_zifencei'
KNOWN = os.path.join(HERE, 'KNOWN_MISMATCHES.md')


class Case:
  def __init__(self, name, kind, seed, group=None):
    self.name, self.kind, self.seed, self.group = name, kind, seed, group

  def describe(self):
    if self.kind == 'libc':
      return f'static glibc program {self.group}.c'
    if self.kind == 'fault':
      return f'fault {self.group}'
    if self.kind == 'directed':
      return f'directed group {self.group} (seed {self.seed})'
    return f'random seed {self.seed}'

  def regen_cmd(self, args):
    g = f' --group {self.group}' if self.group else ''
    nf = ' --no-fflags' if args.no_fflags else ''
    return (f'{HERE}/gen_program.py --kind {self.kind}{g} --seed {self.seed}{nf} '
            f'--loops {args.loops} --body {args.body} --iterations {args.iterations}')


def run(cmd, timeout, **kw):
  return subprocess.run(cmd, capture_output=True, timeout=timeout, **kw)


class Skip(Exception):
  pass


def build_c(case, args):
  src = os.path.join(HERE, 'programs', case.group + '.c')
  exe = os.path.join(args.workdir, case.name)
  p = run([args.cross_prefix + 'gcc', '-static', '-O2', src, '-o', exe, '-lm'], 120)
  if p.returncode:
    err = p.stderr.decode(errors='replace')
    if 'stdio.h' in err or 'crt1.o' in err or 'cannot find -l' in err:
      raise Skip(f'no riscv64 libc to build {src} (libc6-dev-riscv64-cross)')
    raise RuntimeError(f'{case.describe()}: compiling {src} failed:\n{err}')
  return src, exe


def build(case, args):
  if case.kind == 'libc':
    return build_c(case, args)
  src = os.path.join(args.workdir, case.name + '.S')
  obj = os.path.join(args.workdir, case.name + '.o')
  exe = os.path.join(args.workdir, case.name)
  text = gen_program.generate(case.kind, case.seed, args.loops, args.body, args.iterations,
                              case.group, not args.no_fflags)
  with open(src, 'w') as f:
    f.write(text)
  p = run([args.cross_prefix + 'as', f'-march={MARCH}', src, '-o', obj], 120)
  if p.returncode:
    raise RuntimeError(f'{case.describe()}: assembling {src} failed:\n{p.stderr.decode()}')
  p = run([args.cross_prefix + 'ld', '--no-relax', '--no-warn-rwx-segments', '-static', obj,
           '-o', exe], 120)
  if p.returncode:
    raise RuntimeError(f'{case.describe()}: linking failed:\n{p.stderr.decode()}')
  return src, exe


INSTRET_RE = re.compile(rb'instret (\d+)')


def shell_status(returncode):
  """subprocess reports death by signal N as -N; doppel-user exits 128 + N as a shell would."""
  return 128 - returncode if returncode < 0 else returncode


def check_fault(case, args, src, exe):
  ref = run([args.qemu, exe], args.timeout)
  if ref.returncode >= 0:
    return False, f'{case.describe()}: qemu-riscv64 exited {ref.returncode} instead of dying of a signal: generator bug', 0
  got = run([args.runner, '--report-instret', exe], args.timeout)
  m = INSTRET_RE.search(got.stderr)
  instret = int(m.group(1)) if m else 0
  if shell_status(ref.returncode) == got.returncode and got.stdout == ref.stdout:
    return True, '', instret
  return False, (f'{case.describe()}: MISMATCH\n  program: {src}\n'
                 f'  exit status: qemu {shell_status(ref.returncode)} (signal {-ref.returncode}), '
                 f'doppel {got.returncode}\n  doppel-user stderr: '
                 f'{got.stderr.decode(errors="replace").strip()[-2000:]}'), instret


def check(case, args):
  """Returns (ok, message, instret)."""
  src, exe = build(case, args)
  if case.kind == 'fault':
    if args.runner is None:
      ref = run([args.qemu, exe], args.timeout)
      return ref.returncode < 0, f'{case.describe()}: qemu exited {ref.returncode}, no signal', 0
    return check_fault(case, args, src, exe)
  if case.kind == 'libc':
    ref = run([args.qemu, exe], args.timeout)
    if args.runner is None:
      return True, '', 0
    got = run([args.runner, '--report-instret', exe], args.timeout)
    m = INSTRET_RE.search(got.stderr)
    instret = int(m.group(1)) if m else 0
    if got.returncode == shell_status(ref.returncode) and got.stdout == ref.stdout:
      return True, '', instret
    exp_lines = ref.stdout.decode(errors='replace').splitlines()
    got_lines = got.stdout.decode(errors='replace').splitlines()
    first = next((f'    qemu:   {e}\n    doppel: {g}' for e, g in zip(exp_lines, got_lines) if e != g),
                 f'    qemu printed {len(exp_lines)} lines, doppel {len(got_lines)}')
    return False, (f'{case.describe()}: MISMATCH\n  exit status: qemu {shell_status(ref.returncode)}, '
                   f'doppel {got.returncode}\n  first differing line:\n{first}\n  doppel-user stderr: '
                   f'{got.stderr.decode(errors="replace").strip()[-2000:]}'), instret
  ref = run([args.qemu, exe], args.timeout)
  if ref.returncode != 0 or ref.stdout.count(b'\n') != len(gen_program.OUT_NAMES):
    return False, (f'{case.describe()}: the reference qemu-riscv64 run failed '
                   f'(exit {ref.returncode}): generator bug\n  program: {src}\n'
                   f'{ref.stderr.decode(errors="replace")}'), 0
  if args.runner is None:
    return True, '', 0
  try:
    got = run([args.runner, '--report-instret', exe], args.timeout)
  except subprocess.TimeoutExpired:
    return False, f'{case.describe()}: doppel-user timed out after {args.timeout}s\n  program: {src}', 0
  m = INSTRET_RE.search(got.stderr)
  instret = int(m.group(1)) if m else 0
  if got.returncode == ref.returncode and got.stdout == ref.stdout:
    return True, '', instret
  lines = [f'{case.describe()}: MISMATCH',
           f'  program: {src}', f'  regenerate: {case.regen_cmd(args)}',
           f'  locate: {HERE}/locate_mismatch.py --runner {args.runner} {exe}',
           f'  exit status: qemu {ref.returncode}, doppel {got.returncode}']
  exp_lines = ref.stdout.decode(errors='replace').splitlines()
  got_lines = got.stdout.decode(errors='replace').splitlines()
  for i, e in enumerate(exp_lines):
    g = got_lines[i] if i < len(got_lines) else '<missing>'
    if e != g:
      lines.append(f'  first differing register: {gen_program.OUT_NAMES[i]}')
      lines.append(f'    qemu:   {e}')
      lines.append(f'    doppel: {g}')
      break
  err = got.stderr.decode(errors='replace').strip()
  if err:
    lines.append('  doppel-user stderr: ' + err[-2000:])
  return False, '\n'.join(lines), instret


def main():
  ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
  ap.add_argument('--runner', help='doppel-user executable (omit to check programs under qemu only)')
  ap.add_argument('--qemu', default='qemu-riscv64')
  ap.add_argument('--cross-prefix', default='riscv64-linux-gnu-')
  ap.add_argument('--workdir', default='difftest-work')
  ap.add_argument('--random-programs', type=int, default=10, help='fixed seeds 1..N')
  ap.add_argument('--seeds', type=int, nargs='*', help='only these random seeds (no fresh one)')
  ap.add_argument('--fresh-seed', type=int, help='the extra random seed (default: from the clock)')
  ap.add_argument('--no-directed', action='store_true')
  ap.add_argument('--groups', nargs='*', help='only these directed groups')
  ap.add_argument('--skip-groups', nargs='*', default=[],
                  help='directed groups left out (see KNOWN_MISMATCHES.md)')
  ap.add_argument('--no-fflags', action='store_true',
                  help='random programs keep fflags out of the printed state (a known-bug workaround)')
  ap.add_argument('--loops', type=int, default=5)
  ap.add_argument('--body', type=int, default=40)
  ap.add_argument('--iterations', type=int, default=500)
  ap.add_argument('--min-instret', type=int, default=1_000_000)
  ap.add_argument('--timeout', type=float, default=60)
  ap.add_argument('-j', '--jobs', type=int, default=2)
  args = ap.parse_args()
  os.makedirs(args.workdir, exist_ok=True)

  cases = []
  if not args.no_directed:
    for g in args.groups or gen_program.Directed.GROUPS:
      if g not in args.skip_groups:
        cases.append(Case(f'directed_{g}', 'directed', 1, g))
    for g in gen_program.FAULTS:
      if g not in args.skip_groups and not args.groups:
        cases.append(Case(f'fault_{g}', 'fault', 1, g))
    for c_file in sorted(os.listdir(os.path.join(HERE, 'programs'))):
      g = c_file[:-2]
      if c_file.endswith('.c') and g not in args.skip_groups and not args.groups:
        cases.append(Case(f'libc_{g}', 'libc', 0, g))
  if args.seeds:
    seeds = args.seeds
  else:
    fresh = args.fresh_seed if args.fresh_seed is not None else random.SystemRandom().randrange(1 << 31)
    seeds = list(range(1, args.random_programs + 1)) + [fresh]
    print(f'difftest: fresh random seed {fresh} (reproduce with --seeds {fresh})', flush=True)
  cases += [Case(f'random_{s}', 'random', s) for s in seeds]

  start = time.monotonic()
  failures, skipped, total, generated = [], [], 0, 0
  with concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs) as pool:
    futures = {pool.submit(check, c, args): c for c in cases}
    for fut in concurrent.futures.as_completed(futures):
      c = futures[fut]
      try:
        ok, msg, instret = fut.result()
      except Skip as e:
        skipped.append(f'{c.describe()}: skipped: {e}')
        print(f'difftest: {c.name:<24} skipped ({e})', flush=True)
        continue
      except Exception as e:  # build or timeout problems are failures, not crashes
        ok, msg, instret = False, f'{c.describe()}: {e}', 0
      total += instret
      if c.kind in ('directed', 'random'):
        generated += instret
      status = 'ok' if ok else 'FAIL'
      print(f'difftest: {c.name:<24} {status:<4} instret {instret}', flush=True)
      if not ok:
        failures.append(msg)
  elapsed = time.monotonic() - start
  print(f'difftest: {len(cases)} programs, {len(failures)} failed, {total} instructions '
        f'executed by doppel ({generated} in generated programs), {elapsed:.1f}s')
  for msg in skipped + failures:
    print(msg)
  if failures:
    print(f'difftest: known CPU/FPU mismatches are listed in {KNOWN}')
    return 1
  if args.runner and generated < args.min_instret:
    print(f'difftest: only {generated} instructions executed in generated programs, fewer than '
          f'--min-instret {args.min_instret}')
    return 1
  return 0


if __name__ == '__main__':
  sys.exit(main())
