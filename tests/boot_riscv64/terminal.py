#!/usr/bin/env python3
"""The console on a terminal: doppel runs on a pseudo-terminal, the guest's shell runs a
command typed there (raw mode: the guest, not the host tty, echoes and edits), Ctrl-A x
quits with exit code 5, and the terminal's settings are restored afterwards.

  terminal.py DOPPEL SOURCE_DIR     (exit 0 pass, 1 fail, 77 skip: no guest kit)
"""
import os
import pty
import select
import subprocess
import sys
import time

doppel, source = sys.argv[1], sys.argv[2]
kit = subprocess.run([f"{source}/guest/build.sh", "--arch", "riscv64", "--print-dir"],
                     capture_output=True, text=True).stdout.strip()
if not kit or not os.path.exists(f"{kit}/kernel"):
    print("SKIP: no riscv64 guest kit (guest/build.sh --arch riscv64)")
    sys.exit(77)

work = os.environ.get("TMPDIR", "/tmp")
before, after = f"{work}/doppel-tty-before.{os.getpid()}", f"{work}/doppel-tty-after.{os.getpid()}"
pid, fd = pty.fork()
if pid == 0:
    # On the terminal: settings before, doppel, settings after.
    os.execv("/bin/sh", ["sh", "-c", f'stty -g > {before}; "$0" run; code=$?; '
                         f'stty -g > {after}; exit $code', doppel])

out = b""


def pump(seconds):
    global out
    end = time.time() + seconds
    while time.time() < end:
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            try:
                out += os.read(fd, 4096)
            except OSError:
                return


def wait_for(pattern, seconds):
    end = time.time() + seconds
    while pattern not in out and time.time() < end:
        pump(0.2)
    return pattern in out


failures = []
if not wait_for(b"doppel-guest: ready", 300):
    failures.append("no readiness line")
pump(0.5)
os.write(fd, b"echo typed-$((40+2))\r")
if not wait_for(b"typed-42", 60):
    failures.append("the typed command did not run in the guest")
os.write(fd, b"\x01x")
code = None
end = time.time() + 30
while time.time() < end:
    done, status = os.waitpid(pid, os.WNOHANG)
    if done:
        code = os.waitstatus_to_exitcode(status)
        break
    pump(0.2)
if code is None:
    os.kill(pid, 9)
    failures.append("Ctrl-A x did not end doppel")
elif code != 5:
    failures.append(f"Ctrl-A x: exit code {code}, expected 5")
try:
    with open(before) as b, open(after) as a:
        if b.read() != a.read():
            failures.append("the terminal's settings were not restored")
except OSError as e:
    failures.append(f"terminal settings not recorded: {e}")
for f in (before, after):
    if os.path.exists(f):
        os.remove(f)
for f in failures:
    print("FAIL:", f)
if failures:
    print(out[-1500:].decode(errors="replace"))
    sys.exit(1)
print("PASS: typed command ran, Ctrl-A x exit 5, terminal restored")
