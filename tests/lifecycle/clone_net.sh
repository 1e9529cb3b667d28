#!/usr/bin/env bash
# Clones on their own networks: a guest with virtio-net on a TAP (10.0.2.15, MAC :10) is
# snapshotted; two clones are restored at once, each with `--net` naming its own TAP in its
# own network namespace. Each namespace reaches its clone at 10.0.2.15 through its TAP.
# Clone 1 keeps the snapshot's MAC. Clone 2 is given a new one (mac=...:22): the guest's
# driver read the MAC when it probed, so the guest rebinds virtio_net and then answers with
# the new MAC. Needs root for `ip netns`; skips otherwise.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need ip ping
guest_dir >/dev/null
[[ $(id -u) == 0 ]] || skip "needs root for ip netns"

declare -a nss=()
make_ns() {  # make_ns I: namespace doppel-cn-$$-I holding TAP dtapI-$$ at 10.0.2.1/24
  local ns=doppel-cn-$$-$1 tap=dtap$1-$$
  ip netns add "$ns" || skip "ip netns add failed"
  nss+=("$ns")
  ip -n "$ns" link set lo up
  ip -n "$ns" tuntap add "$tap" mode tap vnet_hdr
  ip -n "$ns" addr add 10.0.2.1/24 dev "$tap"
  ip -n "$ns" link set "$tap" up
}
declare -a pids=()
finish() {
  kill "${pids[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
  for ns in "${nss[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
  cleanup
}
trap finish EXIT
for i in 0 1 2; do make_ns "$i"; done

sock=$WORK/api.sock
snap=$WORK/snap
vm_start orig "ip netns exec ${nss[0]} $(doppel_cmd --net "tap=dtap0-$$,mac=02:00:00:00:00:10" --api-sock "$sock")"
vm_wait_ready
wait_sock "$sock"
vm_send 'ip link set eth0 up && ip addr add 10.0.2.15/24 dev eth0 && ping -c 1 -W 5 10.0.2.1 >/dev/null && echo NET-""UP'
vm_wait_for 'NET-UP'
ctl "$sock" pause
ctl "$sock" snapshot "$snap"
kill_vm

for i in 1 2; do
  net="tap=dtap$i-$$"
  [[ $i == 2 ]] && net+=",mac=02:00:00:00:00:22"
  mkfifo "$WORK/clone$i.in"
  ip netns exec "${nss[i]}" "$DOPPEL" restore "$snap" --id "clone-$i" --net "$net" \
    <"$WORK/clone$i.in" >"$WORK/clone$i.out" 2>&1 &
  pids+=($!)
  exec {fd}>"$WORK/clone$i.in"
  eval "clone${i}_fd=$fd"
done
# Clone 2 rebinds its NIC's driver, which reads the new MAC from the device.
rebind='d=$(basename $(readlink /sys/class/net/eth0/device)); echo $d > /sys/bus/virtio/drivers/virtio_net/unbind; echo $d > /sys/bus/virtio/drivers/virtio_net/bind; ip link set eth0 up && ip addr add 10.0.2.15/24 dev eth0 && echo REBOUND-""OK'
printf '%s\n' "$rebind" >&"$clone2_fd"
for ((t = 0; t < 300; t++)); do grep -aq 'REBOUND-OK' "$WORK/clone2.out" && break; sleep 0.2; done
grep -aq 'REBOUND-OK' "$WORK/clone2.out" || { tail -n 20 "$WORK/clone2.out" >&2; fail "clone 2 did not rebind virtio_net"; }

mac_seen() {  # mac_seen I: the MAC namespace I sees answering for 10.0.2.15
  ip netns exec "${nss[$1]}" ping -c 3 -W 5 10.0.2.15 >/dev/null ||
    { tail -n 20 "$WORK/clone$1.out" >&2; fail "namespace $1 cannot ping clone $1 through its TAP"; }
  ip -n "${nss[$1]}" neigh show 10.0.2.15 | grep -o 'lladdr [0-9a-f:]*' | cut -d' ' -f2
}
got1=$(mac_seen 1)
[[ $got1 == 02:00:00:00:00:10 ]] || fail "clone 1 answered with MAC '$got1', the snapshot's is 02:00:00:00:00:10"
got2=$(mac_seen 2)
[[ $got2 == 02:00:00:00:00:22 ]] || fail "clone 2 answered with MAC '$got2', it was given 02:00:00:00:00:22"
for i in 1 2; do
  eval "fd=\$clone${i}_fd"
  printf '%s\n' 'poweroff -f' >&"$fd"
  rc=0; wait "${pids[i - 1]}" || rc=$?
  [[ $rc == 0 ]] || fail "clone $i exited with $rc"
done
pids=()
echo "PASS: 2 clones, each on its own TAP; MACs $got1 (kept) and $got2 (given)"
