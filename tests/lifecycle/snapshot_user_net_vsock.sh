#!/usr/bin/env bash
# Snapshot/restore of a VM with a user network and vsock. Neither's host-side connections
# are saved (QEMU's and Firecracker's choice): the restored VM listens on the same hostfwd
# port and vsock socket again; the guest's vsock connection from before the snapshot is
# reset by the transport-reset event (its reader ends) and new connections both ways work;
# the guest keeps its DHCP address and reaches the host through 10.0.2.2 again. A clone
# beside it needs its own hostfwd port and vsock socket (`restore --net/--vsock`).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need python3
guest_dir >/dev/null
sock=$WORK/api.sock
snap=$WORK/snap
uds=$WORK/v.sock
read -r fwd_port http_port < <(python3 -c '
import socket
ss = [socket.socket() for _ in range(2)]
for s in ss: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in ss])')
mkdir -p "$WORK/www"
echo "served-by-the-host-$$" >"$WORK/www/hello.txt"
python3 -m http.server "$http_port" --bind 127.0.0.1 --directory "$WORK/www" >"$WORK/http.log" 2>&1 &
http_pid=$!
trap 'kill $http_pid 2>/dev/null || true; cleanup' EXIT

# host_connect PORT DATA [UDS]: vsock_host_connect on this VM's socket by default.
host_connect() { vsock_host_connect "${3:-$uds}" "$1" "$2"; }

vm_start orig "$(doppel_cmd --net "user,hostfwd=tcp:127.0.0.1:$fwd_port-:8000" --vsock "cid=3,uds=$uds" --api-sock "$sock")"
vm_wait_ready
wait_sock "$sock"
vm_send "printf '#!/bin/sh\n[ \"\$1\" = bound ] && ip addr add \$ip/\$mask dev \$interface && ip route add default via \$router\nexit 0\n' >/tmp/dh && chmod +x /tmp/dh"
vm_send 'ip link set eth0 up && udhcpc -i eth0 -n -q -s /tmp/dh >/dev/null 2>&1; echo "DHCP-$((6*7))"'
vm_wait_for 'DHCP-42'
# A vsock connection that stays open across the snapshot: the host holds it, the guest's
# listener waits for data that never comes.
vm_send '(vsock listen 6000 </dev/null >/dev/null; echo "OLD-CONN-ENDED-$((5*5))") & echo "HOLD-$((3*3))"'
vm_wait_for 'HOLD-9'
python3 - "$uds" >"$WORK/hold.log" 2>&1 <<'PY' &
import socket, sys, time
for _ in range(40):
    s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.sendall(b"CONNECT 6000\n")
    if s.recv(100).startswith(b"OK"): break
    time.sleep(0.5)
print("held"); sys.stdout.flush()
time.sleep(600)
PY
holder=$!
for _ in $(seq 1 100); do grep -q held "$WORK/hold.log" && break; sleep 0.2; done
grep -q held "$WORK/hold.log" || fail "could not open the long-lived vsock connection"

ctl "$sock" pause
ctl "$sock" snapshot "$snap"
kill_vm
kill "$holder" 2>/dev/null || true

vm_start restored "$DOPPEL restore $snap"
vm_wait_for 'OLD-CONN-ENDED-25'   # the transport reset ended the old connection
# New connections, both ways.
vm_send 'echo guest-answer | vsock listen 6001 >/tmp/from-host.txt & echo "L-$((4*4))"'
vm_wait_for 'L-16'
got=$(host_connect 6001 host-after-restore) || fail "host -> guest vsock after the restore"
[[ $got == guest-answer ]] || fail "host -> guest vsock after the restore: got '$got'"
vm_send 'wait; echo "from-host: $(cat /tmp/from-host.txt)"'
vm_wait_for 'from-host: host-after-restore'
# The user network: the lease is still there, the gateway still reaches the host.
vm_send "wget -q -O - http://10.0.2.2:$http_port/hello.txt; echo \"W-\$((7*7))\""
vm_wait_for 'W-49'
grep -aq "^served-by-the-host-$$" "$VM_OUT" || fail "the restored guest did not reach the host's HTTP server"
# hostfwd listens again in the restored VM.
vm_send 'echo fwd-answer | nc -l -p 8000 >/dev/null & echo "N-$((8*8))"'
vm_wait_for 'N-64'
got=$(python3 - "$fwd_port" <<'PY'
import socket, sys, time
for _ in range(40):
    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=30)
    s.sendall(b"x\n"); s.shutdown(socket.SHUT_WR)
    out = s.recv(100)
    if out: print(out.decode().strip()); break
    time.sleep(0.5)
PY
)
[[ $got == fwd-answer ]] || fail "hostfwd after the restore: got '$got'"

# A clone of the same snapshot beside the restored VM: with the snapshot's own hostfwd port
# and socket it is refused, naming what is taken; with its own (--net, --vsock, another
# CID) it runs, and its vsock works.
if "$DOPPEL" restore "$snap" >"$WORK/clash.out" 2>&1; then fail "a second restore on the same hostfwd port started"; fi
grep -q "hostfwd=tcp:127.0.0.1:$fwd_port-10.0.2.15:8000: cannot listen on the host port" "$WORK/clash.out" ||
  fail "the clash message does not name the forward: $(cat "$WORK/clash.out")"
read -r clone_port < <(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
if "$DOPPEL" restore "$snap" --net "user,hostfwd=tcp:127.0.0.1:$clone_port-:8000" >"$WORK/clash2.out" 2>&1; then
  fail "a second restore on the same vsock socket started"
fi
grep -q "vsock uds $uds: in use" "$WORK/clash2.out" || fail "the vsock clash message: $(cat "$WORK/clash2.out")"
mkfifo "$WORK/clone.in"
"$DOPPEL" restore "$snap" --net "user,hostfwd=tcp:127.0.0.1:$clone_port-:8000" --vsock "cid=4,uds=$WORK/clone.sock" \
  <"$WORK/clone.in" >"$WORK/clone.out" 2>&1 &
clone_pid=$!
exec 8>"$WORK/clone.in"
trap 'kill $http_pid $clone_pid 2>/dev/null || true; cleanup' EXIT
for _ in $(seq 1 300); do grep -aq 'OLD-CONN-ENDED-25' "$WORK/clone.out" && break; sleep 0.2; done
grep -aq 'OLD-CONN-ENDED-25' "$WORK/clone.out" || fail "the clone did not come up: $(tail -5 "$WORK/clone.out")"
echo 'echo clone-answer | vsock listen 6002 >/dev/null & echo "CL-$((9*9))"' >&8
for _ in $(seq 1 300); do grep -aq 'CL-81' "$WORK/clone.out" && break; sleep 0.2; done
got=$(host_connect 6002 x "$WORK/clone.sock") || fail "host -> clone vsock"
[[ $got == clone-answer ]] || fail "host -> clone vsock: got '$got'"
echo 'poweroff -f' >&8
wait "$clone_pid" || fail "the clone exited with $?"
exec 8>&-

vm_send 'poweroff -f'
vm_wait_exit 0
echo "PASS: a restored VM's user network and vsock work; the old vsock connection was reset"
