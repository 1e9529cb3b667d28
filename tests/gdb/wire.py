#!/usr/bin/env python3
"""The gdb stub on the wire, as a hostile or plain client would speak to it, against the
riscv64 guest kit on the emulator (no --gdb-wait: the guest boots to its shell first):
connecting stops the VM (a command typed on the console stays unanswered), 'c' resumes
it, Ctrl-C (0x03) stops it again with T02; garbage between packets is ignored, a bad
checksum gets '-', an over-long packet '+' and an error, malformed commands errors, and
the stub still answers afterwards; the monitor reports the state; 'k' ends doppel with
exit code 5 (quit).

  wire.py DOPPEL SOURCE_DIR     (exit 0 pass, 1 fail, 77 skip: no guest kit)
"""
import os
import socket
import subprocess
import sys
import tempfile
import time

doppel, source = sys.argv[1], sys.argv[2]
kit = subprocess.run([f"{source}/guest/build.sh", "--arch", "riscv64", "--print-dir"],
                     capture_output=True, text=True).stdout.strip()
if not kit or not os.path.exists(f"{kit}/kernel"):
    print("SKIP: no riscv64 guest kit (guest/build.sh --arch riscv64)")
    sys.exit(77)

work = tempfile.mkdtemp(prefix="doppel-gdbwire.")
sock_path = f"{work}/gdb.sock"
out_path = f"{work}/console.out"
failures = []


def check(cond, what):
    print(("ok: " if cond else "FAIL: ") + what)
    if not cond:
        failures.append(what)


def console():
    with open(out_path, "rb") as f:
        return f.read()


def wait_console(pattern, seconds):
    end = time.time() + seconds
    while time.time() < end:
        if pattern in console():
            return True
        if vm.poll() is not None:
            return False
        time.sleep(0.2)
    return False


def checksum(payload):
    return b"%02x" % (sum(payload) % 256)


def packet(payload):
    return b"$" + payload + b"#" + checksum(payload)


class Wire:
    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.connect(path)
        self.s.settimeout(30)
        self.buf = b""

    def send(self, raw):
        self.s.sendall(raw)

    def _fill(self):
        data = self.s.recv(65536)
        if not data:
            raise EOFError("the stub closed the connection")
        self.buf += data

    def byte(self):
        while not self.buf:
            self._fill()
        b, self.buf = self.buf[:1], self.buf[1:]
        return b

    def reply(self):
        """The next packet's payload, skipping acks (and checking the checksum)."""
        while True:
            b = self.byte()
            if b == b"$":
                break
            if b not in b"+-":
                raise ValueError(f"unexpected byte {b!r} outside a packet")
        while b"#" not in self.buf or len(self.buf) < self.buf.index(b"#") + 3:
            self._fill()
        end = self.buf.index(b"#")
        payload, cs = self.buf[:end], self.buf[end + 1:end + 3]
        self.buf = self.buf[end + 3:]
        if checksum(payload) != cs:
            raise ValueError(f"bad checksum on {payload!r}")
        return payload

    def ask(self, payload):
        self.send(packet(payload))
        return self.reply()


vm = subprocess.Popen([doppel, "run", "--gdb", f"unix:{sock_path}"], stdin=subprocess.PIPE,
                      stdout=open(out_path, "wb"), stderr=subprocess.STDOUT)
try:
    if not wait_console(b"doppel-guest: ready", 300):
        print(console().decode(errors="replace")[-3000:])
        print("FAIL: no readiness line")
        sys.exit(1)
    w = Wire(sock_path)
    stop = w.ask(b"?")
    check(stop.startswith(b"T05thread:1;"), f"connecting stops the VM: '?' -> {stop!r}")
    vm.stdin.write(b"echo while-stopped-$((40+2))\n")
    vm.stdin.flush()
    time.sleep(2)
    check(b"while-stopped-42" not in console(), "nothing runs while the debugger holds the VM")

    # Hostile input: garbage, a bad checksum, an over-long packet, malformed commands.
    w.send(b"\x00\xffgarbage\r\n")
    w.send(b"$g#00")
    check(w.byte() == b"-", "a bad checksum is answered '-'")
    big = b"m" * 20000
    check(w.ask(big) == b"E01", "an over-long packet gets an error")
    for bad in [b"m", b"mzz,4", b"Z0,1", b"Hg99", b"vCont;q", b"qRcmd,zz", b"P999=00", b"G00",
                b"X1,4:ab", b"vCont;s:p1.99"]:
        r = w.ask(bad)
        check(r.startswith(b"E"), f"{bad!r} -> {r!r}")
    check(w.ask(b"qC") == b"QC1", "the stub still answers after all that")
    check(w.ask(b"qfThreadInfo") == b"m1", "one thread per vCPU")

    # The monitor: console-output packets, then OK.
    w.send(packet(b"qRcmd," + b"info status".hex().encode()))
    text = b""
    while True:
        r = w.reply()
        if r == b"OK":
            break
        check(r.startswith(b"O"), f"monitor output packet {r[:10]!r}")
        text += bytes.fromhex(r[1:].decode())
    check(text == b"VM status: paused\n", f"monitor info status -> {text!r}")

    # Resume, then Ctrl-C.
    w.send(packet(b"c"))
    check(wait_console(b"while-stopped-42", 60), "after 'c' the guest runs the typed command")
    w.send(b"\x03")
    r = w.reply()
    check(r.startswith(b"T02thread:"), f"Ctrl-C stops the VM with SIGINT: {r!r}")
    g = w.ask(b"g")
    check(len(g) == 2 * (65 * 8 + 3 * 4 + 8), f"'g' gives all {len(g) // 2} bytes of registers")

    # Kill: doppel ends with the quit code.
    w.send(packet(b"k"))
    try:
        code = vm.wait(30)
    except subprocess.TimeoutExpired:
        code = None
    check(code == 5, f"'k' ends doppel with exit code 5 (got {code})")
finally:
    if vm.poll() is None:
        vm.kill()
        vm.wait()
    subprocess.run(["rm", "-rf", work])

if failures:
    print(f"{len(failures)} failure(s)")
    sys.exit(1)
print("ok: all")
