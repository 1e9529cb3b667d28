#!/usr/bin/env bash
# virtio-net over a TAP: inside a network namespace this script creates (so the host's
# network is untouched), the guest pings the host end of the TAP and sends a few MiB over
# TCP with busybox nc; the host checks the checksum. Needs root (or CAP_NET_ADMIN) for
# `ip netns`; skips otherwise.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need ip nc sha256sum
guest_dir >/dev/null
[[ $(id -u) == 0 ]] || skip "needs root for ip netns"

ns=doppel-vnet-$$
tap=dtap$$
ip netns add "$ns" || skip "ip netns add failed"
trap 'cleanup; ip netns del "$ns" 2>/dev/null || true' EXIT
ip -n "$ns" link set lo up
ip -n "$ns" tuntap add "$tap" mode tap vnet_hdr
ip -n "$ns" addr add 10.0.2.1/24 dev "$tap"
ip -n "$ns" link set "$tap" up

size_mib=${NET_MIB:-4}
vm_start net "ip netns exec $ns $(doppel_cmd --net "tap=$tap,mac=02:00:00:00:00:10")"
vm_wait_ready
vm_send 'ip link set eth0 up && ip addr add 10.0.2.15/24 dev eth0 && echo NET-UP'
vm_wait_for 'NET-UP'
vm_send 'ping -c 3 -W 5 10.0.2.1 && echo PING-OK || echo PING-FAIL'
vm_wait_for 'PING-(OK|FAIL)'
grep -aq 'PING-OK' "$VM_OUT" || fail "guest could not ping the host"

# Host listens; the guest generates deterministic data, checksums it and sends it.
ip netns exec "$ns" sh -c "nc -l -p 5001 > '$WORK/recv.bin'" &
listener=$!
sleep 0.5
vm_send "dd if=/dev/urandom of=/tmp/tx.bin bs=1M count=$size_mib 2>/dev/null; echo \"tx-sum \$(sha256sum /tmp/tx.bin)\""
vm_send 'nc 10.0.2.1 5001 < /tmp/tx.bin; echo NC-DONE'
vm_wait_for 'NC-DONE'
for _ in $(seq 1 50); do kill -0 "$listener" 2>/dev/null || break; sleep 0.2; done
kill "$listener" 2>/dev/null || true
vm_send 'poweroff -f'
vm_wait_exit 0

want=$(grep -ao 'tx-sum [0-9a-f]*' "$VM_OUT" | tail -n1 | cut -d' ' -f2)
got=$(sha256sum <"$WORK/recv.bin" | cut -d' ' -f1)
[[ -n $want && $want == "$got" ]] || fail "TCP transfer checksum: guest $want, host $got ($(wc -c <"$WORK/recv.bin") bytes)"
echo "PASS: virtio-net ping + ${size_mib} MiB TCP"
