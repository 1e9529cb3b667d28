#!/usr/bin/env python3
"""Runs HMP commands on a QEMU monitor socket and prints their replies.

    hmp.py SOCK 'cmd' ['cmd' ...]
    hmp.py --wait-migration SOCK     polls `info migrate` until completed (or failed) and
                                     prints its last reply
"""
import socket
import sys
import time


def until_prompt(s: socket.socket) -> str:
    buf = b""
    while not buf.endswith(b"(qemu) "):
        chunk = s.recv(65536)
        if not chunk:
            break
        buf += chunk
    return buf.decode(errors="replace")


def main() -> int:
    wait = sys.argv[1] == "--wait-migration"
    args = sys.argv[2:] if wait else sys.argv[1:]
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(600)
    s.connect(args[0])
    until_prompt(s)
    if wait:
        while True:
            s.sendall(b"info migrate\n")
            reply = until_prompt(s)
            if "Migration status: completed" in reply or "Migration status: failed" in reply:
                print(reply)
                return 0 if "completed" in reply else 1
            time.sleep(0.02)
    for command in args[1:]:
        s.sendall(command.encode() + b"\n")
        print(until_prompt(s))
    return 0


if __name__ == "__main__":
    sys.exit(main())
