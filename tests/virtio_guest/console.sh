#!/usr/bin/env bash
# virtio-console: a second console stream. With file=PATH, what the guest writes to
# $hvc lands in the host file; with socket=PATH, a host client reads the guest's
# output and its input reaches the guest.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need python3
guest_dir >/dev/null
# The riscv64 guest's hvc0 is the SBI console (CONFIG_HVC_RISCV_SBI); virtio-console's
# first port is the next hvc device.
hvc=/dev/hvc1
# wait_accepted OUT: until the client wrote "connected" to OUT and doppel accepted it (a
# second socket in its fd table): output written before that is dropped, by design.
wait_accepted() {
  local i
  for ((i = 0; i < 300; i++)); do
    grep -q connected "$1" && (($(ls -l /proc/"$VM_PID"/fd 2>/dev/null | grep -c socket) >= 2)) && return 0
    sleep 0.1
  done
  fail "the console client was not accepted ($(cat "$1"))"
}

# File: guest -> host.
vm_start cfile "$(doppel_cmd --console2 "file=$WORK/c2.log")"
vm_wait_ready
vm_send "echo hvc-file-\$((6*7)) > $hvc && echo HVC-WRITTEN"
vm_wait_for 'HVC-WRITTEN'
vm_send 'poweroff -f'
vm_wait_exit 0
grep -aq 'hvc-file-42' "$WORK/c2.log" || fail "the guest's $hvc output is not in the file ($(head -c 200 "$WORK/c2.log"))"

# Socket: both directions. The client waits for the guest's line, then answers.
sock=$WORK/c2.sock
vm_start csock "$(doppel_cmd --console2 "socket=$sock")"
vm_wait_ready
python3 - "$sock" >"$WORK/client.out" 2>&1 <<'PY' &
import socket, sys, time
s = socket.socket(socket.AF_UNIX)
for _ in range(100):
    try:
        s.connect(sys.argv[1]); break
    except OSError:
        time.sleep(0.1)
print("connected", flush=True)
buf = b""
s.settimeout(60)
while b"hvc-ping" not in buf:
    chunk = s.recv(4096)
    if not chunk: break
    buf += chunk
print("client got:", buf.decode(errors="replace").strip())
s.sendall(b"host-pong\n")
time.sleep(1)
PY
client=$!
wait_accepted "$WORK/client.out"
vm_send "stty -F $hvc raw -echo 2>/dev/null; (head -n1 $hvc | sed 's/^/hvc-got /') & sleep 1; echo hvc-ping > $hvc; wait; echo HVC-SOCK-DONE"
vm_wait_for 'HVC-SOCK-DONE'
vm_send 'poweroff -f'
vm_wait_exit 0
wait "$client" || true
grep -aq 'client got: .*hvc-ping' "$WORK/client.out" || fail "the socket client did not get the guest's line ($(cat "$WORK/client.out"))"
grep -aq 'hvc-got host-pong' "$VM_OUT" || fail "the guest did not read the client's line from $hvc"

# Back-pressure: a client that reads slowly gets every byte (the guest waits), as stdout's
# reader would; nothing is dropped. 100000 lines (589 KB) is more than a socket buffers.
vm_start cslow "$(doppel_cmd --console2 "socket=$sock")"
vm_wait_ready
python3 - "$sock" "$WORK/slow.bytes" >"$WORK/slow.out" 2>&1 <<'PY' &
import socket, sys, time
s = socket.socket(socket.AF_UNIX)
for _ in range(100):
    try:
        s.connect(sys.argv[1]); break
    except OSError:
        time.sleep(0.1)
print("connected", flush=True)
time.sleep(3)  # the guest fills the socket and its queue meanwhile
buf = b""
s.settimeout(120)
while not buf.replace(b"\r", b"").endswith(b"100000\n"):
    chunk = s.recv(4096)
    if not chunk: break
    buf += chunk
    time.sleep(0.001)  # a slow reader
open(sys.argv[2], "wb").write(buf)
PY
client=$!
wait_accepted "$WORK/slow.out"
# The tty stays open (fd 3) so that raw mode holds: seq's 4 KiB writes go out whole, not a
# "\r\n"-expanded character at a time.
vm_send "exec 3<>$hvc; stty -F $hvc raw -echo; seq 1 100000 >&3; exec 3>&-; echo HVC-BULK-DONE"
vm_wait_for 'HVC-BULK-DONE'
wait "$client" || true
vm_send 'poweroff -f'
vm_wait_exit 0
cmp -s <(tr -d '\r' <"$WORK/slow.bytes") <(seq 1 100000) ||
  fail "the slow client did not get all the guest wrote: $(wc -c <"$WORK/slow.bytes") bytes ($(cat "$WORK/slow.out"))"
echo "PASS: virtio-console (file, socket, a slow socket reader)"
