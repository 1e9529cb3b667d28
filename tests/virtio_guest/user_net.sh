#!/usr/bin/env bash
# User-mode networking (--net user, libslirp): no root, no TAP. Run as the unprivileged user
# `nobody` when the test is root (setpriv; the binary and a copy of the guest kit readable
# by it), else as whoever runs it. The guest gets 10.0.2.15/24 with gateway 10.0.2.2 from
# DHCP, fetches a file from a host HTTP server on 127.0.0.1 through 10.0.2.2, and a host
# connection to a forwarded port reaches a guest listener; data both ways is checked by
# sha256 on both ends.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need python3 sha256sum
gdir=$(guest_dir)
[[ -x $DOPPEL ]] || skip "$DOPPEL not built"

# Two free host ports on 127.0.0.1.
read -r http_port fwd_port < <(python3 -c '
import socket
ss = [socket.socket() for _ in range(2)]
for s in ss: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in ss])')

# The unprivileged run: a copy of the kit in the work dir, readable by nobody.
prefix=""
as_user=$(id -un)
if [[ $(id -u) == 0 ]] && command -v setpriv >/dev/null && id nobody >/dev/null 2>&1; then
  chmod 755 "$WORK"
  mkdir -p "$WORK/kit"
  cp "$gdir/kernel" "$gdir/initrd.cpio.gz" "$gdir/fw_dynamic.bin" "$WORK/kit/"
  chmod -R a+rX "$WORK/kit"
  gdir=$WORK/kit
  # The binary must be reachable by nobody (a build under /root would not be).
  if ! setpriv --reuid=nobody --regid=nogroup --clear-groups test -x "$DOPPEL"; then
    cp "$DOPPEL" "$WORK/doppel" && chmod 755 "$WORK/doppel" && DOPPEL=$WORK/doppel
  fi
  prefix="setpriv --reuid=nobody --regid=nogroup --clear-groups --no-new-privs"
  as_user=nobody
fi

# The host's HTTP server, on loopback only: the guest reaches it as 10.0.2.2.
mkdir -p "$WORK/www"
head -c 300000 /dev/urandom >"$WORK/www/blob.bin"
[[ $(wc -c <"$WORK/www/blob.bin") == 300000 ]] || fail "the host's /dev/urandom gave no data"
python3 -m http.server "$http_port" --bind 127.0.0.1 --directory "$WORK/www" >"$WORK/http.log" 2>&1 &
http_pid=$!
trap 'kill $http_pid 2>/dev/null || true; cleanup' EXIT
python3 -c '
import socket, sys, time
for _ in range(300):
    try:
        socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1).close(); sys.exit(0)
    except OSError: time.sleep(0.1)
sys.exit(1)' "$http_port" || fail "the host HTTP server did not start: $(cat "$WORK/http.log")"

vm_start unet "$prefix $DOPPEL run --arch riscv64 --kernel $gdir/kernel --initrd $gdir/initrd.cpio.gz \
  --firmware $gdir/fw_dynamic.bin --net user,hostfwd=tcp:127.0.0.1:$fwd_port-:8000"
vm_wait_ready
uid=$(awk '/^Uid:/ {print $2}' "/proc/$VM_PID/status")
[[ $as_user != nobody || $uid == 65534 ]] || fail "doppel runs as uid $uid, not nobody"

# Markers are computed ($((6*7))) so that the console's echo of the command cannot match.
# DHCP, with busybox udhcpc and a script that applies the lease.
vm_send "printf '#!/bin/sh\n[ \"\$1\" = bound ] && ip addr add \$ip/\$mask dev \$interface && ip route add default via \$router\nexit 0\n' >/tmp/dh && chmod +x /tmp/dh"
vm_send 'ip link set eth0 up && udhcpc -i eth0 -n -q -s /tmp/dh >/dev/null 2>&1; echo "addr: $(ip -4 -o addr show eth0)"; echo "route: $(ip route | grep default)"; echo "DHCP-$((6*7))"'
vm_wait_for 'DHCP-42'
grep -aq 'addr: .*inet 10\.0\.2\.15/24' "$VM_OUT" || fail "the guest did not get 10.0.2.15/24 by DHCP"
grep -aq 'route: default via 10\.0\.2\.2 ' "$VM_OUT" || fail "the guest's default route is not via 10.0.2.2"

# Guest -> host service through the gateway address.
want=$(sha256sum <"$WORK/www/blob.bin" | cut -d' ' -f1)
vm_send "wget -q -O /tmp/blob.bin http://10.0.2.2:$http_port/blob.bin; echo \"wget-sum \$(sha256sum </tmp/blob.bin) WGET-\$((1+1))\""
vm_wait_for 'WGET-2'
got=$(grep -ao 'wget-sum [0-9a-f]*' "$VM_OUT" | tail -n1 | cut -d' ' -f2)
[[ $got == "$want" ]] || fail "(http log: $(tail -n 3 "$WORK/http.log")) the guest's copy of the host's file differs: guest $got, host $want"

# Host -> forwarded port -> guest listener, with data both ways on one connection.
vm_send "head -c 200000 /dev/urandom >/tmp/tx.bin; echo \"tx-sum \$(sha256sum </tmp/tx.bin)\"; nc -l -p 8000 </tmp/tx.bin >/tmp/rx.bin & echo LISTENING-\$((2+3))"
vm_wait_for 'LISTENING-5'
head -c 250000 /dev/urandom >"$WORK/host-tx.bin"
python3 - "$fwd_port" "$WORK/host-tx.bin" "$WORK/host-rx.bin" <<'PY' || fail "the forwarded connection failed"
import socket, sys, time, threading
port, tx, rx = int(sys.argv[1]), sys.argv[2], sys.argv[3]
data = open(tx, "rb").read()
deadline = time.time() + 120
while True:  # the guest's nc may not be listening yet
    s = socket.create_connection(("127.0.0.1", port), timeout=60)
    s.sendall(data[:1])
    first = b""
    try:
        s.settimeout(2)
        first = s.recv(65536)
    except socket.timeout:
        pass  # connected and nothing yet: fine, the guest's nc is there
    if first or time.time() > deadline:
        break
    # An immediate EOF: slirp accepted, the guest refused (no listener yet). Retry.
    s.close()
    time.sleep(1)
s.settimeout(60)
def send_rest():
    s.sendall(data[1:])
    s.shutdown(socket.SHUT_WR)
t = threading.Thread(target=send_rest); t.start()
out = bytearray(first)
while True:
    b = s.recv(65536)
    if not b: break
    out += b
t.join()
open(rx, "wb").write(out)
PY
vm_send 'wait; echo "rx-sum $(sha256sum </tmp/rx.bin)"'
vm_wait_for 'rx-sum [0-9a-f]{64}'
guest_tx=$(grep -ao 'tx-sum [0-9a-f]*' "$VM_OUT" | tail -n1 | cut -d' ' -f2)
guest_rx=$(grep -ao 'rx-sum [0-9a-f]*' "$VM_OUT" | tail -n1 | cut -d' ' -f2)
host_tx=$(sha256sum <"$WORK/host-tx.bin" | cut -d' ' -f1)
host_rx=$(sha256sum <"$WORK/host-rx.bin" | cut -d' ' -f1)
[[ $(wc -c <"$WORK/host-tx.bin") == 250000 && $(wc -c <"$WORK/host-rx.bin") == 200000 ]] ||
  fail "hostfwd byte counts: the host sent $(wc -c <"$WORK/host-tx.bin") (250000) and got $(wc -c <"$WORK/host-rx.bin") (200000)"
[[ $guest_rx == "$host_tx" ]] || fail "host -> guest through hostfwd: sent $host_tx, the guest got $guest_rx"
[[ $host_rx == "$guest_tx" ]] || fail "guest -> host through hostfwd: the guest sent $guest_tx, the host got $host_rx ($(wc -c <"$WORK/host-rx.bin") bytes)"

vm_send 'poweroff -f'
vm_wait_exit 0
echo "PASS: user networking as $as_user: DHCP 10.0.2.15 via 10.0.2.2, host HTTP from the guest, hostfwd both ways"
