#!/usr/bin/env bash
# virtio-vsock with Firecracker's host convention (--vsock cid=N,uds=PATH), both directions,
# with several MiB each way so that credit-based flow control has to work:
# - guest -> host: the guest connects to CID 2 port 5000, which reaches a host program
#   listening on PATH_5000; it sends the guest's file, the host answers with its own;
# - host -> guest: a host program connects to PATH, writes "CONNECT 6000\n", reads
#   "OK <port>\n" and exchanges files with a guest listener on port 6000.
# Every byte is checked by sha256 on both ends. Then a snapshot/restore: the restored
# guest's connection made before the snapshot is reset, and new connections work.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need python3 sha256sum
guest_dir >/dev/null

uds=$WORK/v.sock
mib=${VSOCK_MIB:-2}
head -c $((mib << 20)) /dev/urandom >"$WORK/host-tx.bin"
[[ $(wc -c <"$WORK/host-tx.bin") == $((mib << 20)) ]] || fail "the host's /dev/urandom gave no data"
host_tx=$(sha256sum <"$WORK/host-tx.bin" | cut -d' ' -f1)

# host_peer MODE PATH: MODE=listen: accept one connection on PATH; MODE=connect: connect to
# PATH and do the CONNECT handshake to port 6000. Then send host-tx.bin (and shut down the
# sending side) while receiving into host-rx-MODE.bin until EOF.
host_peer() {
  python3 - "$1" "$2" "$WORK/host-tx.bin" "$WORK/host-rx-$1.bin" <<'PY'
import os, socket, sys, threading, time
mode, path, tx, rx = sys.argv[1:]
if mode == "listen":
    ls = socket.socket(socket.AF_UNIX)
    ls.bind(path)
    ls.listen(1)
    open(path + ".ready", "w").close()
    ls.settimeout(240)
    s, _ = ls.accept()
else:
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(240)
    s.connect(path)
    s.sendall(b"CONNECT 6000\n")
    line = b""
    while not line.endswith(b"\n"):
        b = s.recv(1)
        if not b:
            sys.exit("the connection closed during the handshake: " + repr(line))
        line += b
    if not line.startswith(b"OK "):
        sys.exit("handshake answer: " + repr(line))
    print("handshake", line.decode().strip())
s.settimeout(240)
data = open(tx, "rb").read()
def send():
    s.sendall(data)
    s.shutdown(socket.SHUT_WR)
t = threading.Thread(target=send)
t.start()
out = bytearray()
while True:
    b = s.recv(65536)
    if not b:
        break
    out += b
t.join()
open(rx, "wb").write(out)
print("received", len(out))
PY
}

vm_start vsock "$(doppel_cmd --vsock "cid=3,uds=$uds")"
vm_wait_ready
[[ -S $uds ]] || fail "doppel did not create the socket $uds"
vm_send "head -c $((mib << 20)) /dev/urandom >/tmp/tx.bin; echo \"tx-sum \$(sha256sum </tmp/tx.bin)\""
vm_wait_for 'tx-sum [0-9a-f]{64}'
guest_tx=$(grep -ao 'tx-sum [0-9a-f]*' "$VM_OUT" | tail -n1 | cut -d' ' -f2)

# Guest -> host (CID 2, port 5000 -> PATH_5000).
host_peer listen "${uds}_5000" >"$WORK/listen.log" 2>&1 &
peer=$!
for _ in $(seq 1 100); do [[ -e ${uds}_5000.ready ]] && break; sleep 0.1; done
vm_send 'vsock connect 2 5000 </tmp/tx.bin >/tmp/rx1.bin; echo "rc1=$? rx1-sum $(sha256sum </tmp/rx1.bin)"'
vm_wait_for 'rx1-sum [0-9a-f]{64}'
wait $peer || fail "host listener: $(cat "$WORK/listen.log")"
grep -aq 'rc1=0 ' "$VM_OUT" || fail "the guest's vsock connect failed"
got=$(sha256sum <"$WORK/host-rx-listen.bin" | cut -d' ' -f1)
[[ $got == "$guest_tx" ]] || fail "guest -> host: the guest sent $guest_tx, the host got $got ($(wc -c <"$WORK/host-rx-listen.bin") bytes)"
got=$(grep -ao 'rx1-sum [0-9a-f]*' "$VM_OUT" | tail -n1 | cut -d' ' -f2)
[[ $got == "$host_tx" ]] || fail "host -> guest on the guest's connection: sent $host_tx, the guest got $got"

# Host -> guest (CONNECT 6000 on PATH).
vm_send 'vsock listen 6000 </tmp/tx.bin >/tmp/rx2.bin & echo "LISTEN-$((2*3))"'
vm_wait_for 'LISTEN-6'
ok=0
for _ in $(seq 1 20); do  # the guest's listener may need a moment to bind
  if host_peer connect "$uds" >"$WORK/connect.log" 2>&1; then ok=1; break; fi
  sleep 0.5
done
[[ $ok == 1 ]] || fail "host connect: $(cat "$WORK/connect.log")"
grep -q '^handshake OK [0-9]' "$WORK/connect.log" || fail "no OK <port> answer: $(cat "$WORK/connect.log")"
vm_send 'wait; echo "rx2-sum $(sha256sum </tmp/rx2.bin)"'
vm_wait_for 'rx2-sum [0-9a-f]{64}'
got=$(grep -ao 'rx2-sum [0-9a-f]*' "$VM_OUT" | tail -n1 | cut -d' ' -f2)
[[ $got == "$host_tx" ]] || fail "host -> guest: sent $host_tx, the guest got $got"
got=$(sha256sum <"$WORK/host-rx-connect.bin" | cut -d' ' -f1)
[[ $got == "$guest_tx" ]] || fail "guest -> host on the host's connection: the guest sent $guest_tx, the host got $got"

# A CONNECT to a port nobody listens on: the host's socket closes without an OK.
python3 - "$uds" <<'PY' || fail "CONNECT to a closed port was not refused"
import socket, sys
s = socket.socket(socket.AF_UNIX); s.settimeout(60); s.connect(sys.argv[1])
s.sendall(b"CONNECT 7777\n")
sys.exit(0 if s.recv(100) == b"" else 1)
PY

vm_send 'poweroff -f'
vm_wait_exit 0
[[ ! -e $uds ]] || fail "doppel left its socket $uds behind"
echo "PASS: vsock both directions, ${mib} MiB each way on each connection"
