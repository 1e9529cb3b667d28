#!/usr/bin/env python3
"""Times control requests over an already open Unix socket, so that no client start-up is
counted on either side. Prints the milliseconds from sending the request to its reply.

    qmp.py hmp SOCK 'stop'            QEMU's HMP monitor: a command, until its prompt
    qmp.py migrate SOCK FILE          HMP: migrate "exec:cat > FILE", until completed
    qmp.py text SOCK 'cmd' ['cmd' ...]  HMP: runs the commands, prints their replies
    qmp.py wait-migration SOCK        HMP: polls `info migrate` until completed (or failed),
                                      prints its last reply (exit 1 if failed)
    qmp.py http SOCK METHOD PATH [BODY]   doppel's API: one HTTP/1.1 request
                                          (QMP_SENT_AT=FILE: its wall-clock send time too)
"""
import os
import socket
import sys
import time


def connect(path: str) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(60)
    s.connect(path)
    return s


def hmp_until_prompt(s: socket.socket) -> str:
    buf = b""
    while not buf.endswith(b"(qemu) "):
        chunk = s.recv(65536)
        if not chunk:
            break
        buf += chunk
    return buf.decode(errors="replace")


def hmp(s: socket.socket, command: str) -> str:
    s.sendall(command.encode() + b"\n")
    return hmp_until_prompt(s)


def main() -> int:
    mode, path = sys.argv[1], sys.argv[2]
    s = connect(path)
    if mode == "text":
        hmp_until_prompt(s)  # banner
        for command in sys.argv[3:]:
            print(hmp(s, command))
        return 0
    if mode == "wait-migration":
        hmp_until_prompt(s)
        while True:
            reply = hmp(s, "info migrate")
            if "Migration status: completed" in reply or "Migration status: failed" in reply:
                print(reply)
                return 0 if "completed" in reply else 1
            time.sleep(0.02)
    if mode in ("hmp", "migrate"):
        hmp_until_prompt(s)  # banner
        t0 = time.perf_counter()
        if mode == "hmp":
            hmp(s, sys.argv[3])
        else:
            hmp(s, 'migrate "exec:cat > %s"' % sys.argv[3])
            while "Migration status: completed" not in hmp(s, "info migrate"):
                time.sleep(0.001)
        t1 = time.perf_counter()
    else:
        method, target = sys.argv[3], sys.argv[4]
        body = sys.argv[5].encode() if len(sys.argv) > 5 else b""
        request = (f"{method} {target} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                   f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode() + body
        t0 = time.perf_counter()
        sent_at = time.time()
        s.sendall(request)
        reply = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            reply += chunk
        t1 = time.perf_counter()
        status = reply.split(b" ", 2)[1].decode() if reply.startswith(b"HTTP/") else "?"
        if not status.startswith("2"):
            print(f"HTTP {status}: {reply.decode(errors='replace')}", file=sys.stderr)
            return 1
    print(f"{(t1 - t0) * 1000:.3f}")
    if mode == "http" and os.environ.get("QMP_SENT_AT"):
        # Where the caller times from the request (not from this interpreter's start-up).
        with open(os.environ["QMP_SENT_AT"], "w") as f:
            f.write(f"{sent_at:.6f}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
