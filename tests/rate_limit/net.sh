#!/usr/bin/env bash
# Network TX rate limit: the guest sends TCP data to the host through a TAP (in a network
# namespace this script creates, as tests/virtio_guest/net.sh) whose virtio-net TX is limited
# to 4 MB/s (tx_bw=800000/200). A receiver on the host times the stream from its first byte
# to its last: the rate must be the limit within 15%, and every byte must arrive. The RX
# side (the ACKs) has a generous limit of its own (rx_ops), so both directions' limiters
# run. Needs root for `ip netns`; skips otherwise.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need ip python3
guest_dir >/dev/null
[[ $(id -u) == 0 ]] || skip "needs root for ip netns"
mib=${NET_MIB:-48}         # ~12.6 s at 4 MB/s
limit=4000000

ns=doppel-rl-$$
tap=drl$$
ip netns add "$ns" || skip "ip netns add failed"
trap 'cleanup; ip netns del "$ns" 2>/dev/null || true' EXIT
ip -n "$ns" link set lo up
ip -n "$ns" tuntap add "$tap" mode tap vnet_hdr
ip -n "$ns" addr add 10.0.2.1/24 dev "$tap"
ip -n "$ns" link set "$tap" up

# The receiver: counts bytes, times first to last, checks they are all zero.
ip netns exec "$ns" python3 - "$WORK/recv.txt" <<'PY' &
import socket, sys, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("10.0.2.1", 5001)); s.listen(1); s.settimeout(600)
c, _ = s.accept()
n = nonzero = 0; first = last = None
while True:
    b = c.recv(1 << 20)
    if not b: break
    last = time.monotonic()
    if first is None: first = last
    n += len(b)
    nonzero += len(b) - b.count(0)
open(sys.argv[1], "w").write(f"{n} {last - first if first else 0:.3f} {nonzero}\n")
PY
receiver=$!

vm_start net "ip netns exec $ns $(doppel_cmd --net "tap=$tap,mac=02:00:00:00:00:11,tx_bw=800000/200,rx_ops=100000/100")"
vm_wait_ready
vm_send 'ip link set eth0 up && ip addr add 10.0.2.15/24 dev eth0 && echo NET-UP'
vm_wait_for 'NET-UP'
vm_send "dd if=/dev/zero bs=64k count=$((mib * 16)) 2>/dev/null | nc 10.0.2.1 5001 && echo NC-OK; echo NC-DONE"
vm_wait_for 'NC-DONE'
for _ in $(seq 1 100); do kill -0 "$receiver" 2>/dev/null || break; sleep 0.2; done
kill "$receiver" 2>/dev/null && fail "the receiver did not see the end of the stream"
vm_send 'poweroff -f'
vm_wait_exit 0

read -r bytes secs nonzero <"$WORK/recv.txt" || fail "no result from the receiver"
[[ $bytes == $((mib * 1048576)) && $nonzero == 0 ]] ||
  fail "received $bytes bytes ($nonzero not zero), the guest sent $((mib * 1048576))"
check_rate "net tx bandwidth" "$bytes" "$secs" "$limit" B
echo "PASS: net tx limit holds within ${TOLERANCE_PCT}%, every byte arrived"
