#!/usr/bin/env bash
# Side-by-side virtio benchmarks: the same riscv64 guest (guest kit) under build/doppel and
# under qemu-system-riscv64 -M virt (virtio-blk-device / virtio-net-device on virtio-mmio),
# printing each metric and the doppel/QEMU ratio (higher is better for doppel).
#
#   bench/virtio/run.sh [blk] [net]       default: blk (net needs root for a netns + TAP)
#   BLK_MIB=64 RAND_SECONDS=10 NET_MIB=32 bench/virtio/run.sh blk net
#   ONLY=doppel|qemu bench/virtio/run.sh  # run one side only
#
# Metrics (measured inside the guest, vbench.c): sequential 1 MiB O_DIRECT write and read
# (MB/s), 4 KiB O_DIRECT random read and write (IOPS), guest-to-host TCP (MB/s).
# Like for like on the host side: doppel's disk uses the host page cache (a flush is an
# fdatasync), so QEMU's drive is cache=writeback (its default) with aio=threads; QEMU's
# TAP has vhost off (doppel has no vhost).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../../tests/virtio_guest/lib.sh"
need riscv64-linux-gnu-gcc debugfs
guest_dir >/dev/null
VM_TIMEOUT=${VM_TIMEOUT:-900}
BLK_MIB=${BLK_MIB:-64}
RAND_SECONDS=${RAND_SECONDS:-10}
NET_MIB=${NET_MIB:-32}
suites=("$@"); ((${#suites[@]})) || suites=(blk)
sides=(doppel qemu); [[ -n ${ONLY:-} ]] && sides=("$ONLY")

# The in-guest tool, on a small ext4 "tools" disk.
riscv64-linux-gnu-gcc -static -O2 -Wall -Wextra -Werror -o "$WORK/vbench" \
  "$(dirname "${BASH_SOURCE[0]}")/vbench.c" || fail "building vbench"
make_ext4 "$WORK/tools.img" 8
debugfs -w -R "write $WORK/vbench vbench" "$WORK/tools.img" >/dev/null 2>&1 || fail "debugfs write"

declare -A result
# Mounts whichever disk holds the tools (device order differs between machines) and
# records the other one as the bench disk.
FIND_DISKS='mkdir -p /t; for d in vda vdb; do if mount -t ext4 -o ro /dev/$d /t 2>/dev/null; then T=$d; else B=$d; fi; done; echo "disks tools=$T bench=$B"'

run_blk() {  # side
  local side=$1 img=$WORK/bench-$1.img cmd
  truncate -s "$((BLK_MIB + 16))M" "$img"
  if [[ $side == doppel ]]; then
    cmd=$(doppel_cmd --disk "$img" --disk "$WORK/tools.img")
  else
    need qemu-system-riscv64
    cmd=$(qemu_cmd -drive "file=$img,format=raw,if=none,id=d0,cache=writeback,aio=threads" \
      -device virtio-blk-device,drive=d0 \
      -drive "file=$WORK/tools.img,format=raw,if=none,id=d1" -device virtio-blk-device,drive=d1)
  fi
  vm_start "blk-$side" "$cmd"
  vm_wait_ready
  vm_send "$FIND_DISKS"
  vm_send "/t/vbench seqwrite /dev/\$B $BLK_MIB"
  vm_send "/t/vbench seqread /dev/\$B $BLK_MIB"
  vm_send "/t/vbench randread /dev/\$B $RAND_SECONDS"
  vm_send "/t/vbench randwrite /dev/\$B $RAND_SECONDS"
  vm_send 'echo BENCH-DONE'
  vm_wait_for 'BENCH-DONE'
  vm_send 'poweroff -f'
  vm_wait_exit 0 || true
  for m in seqwrite seqread; do
    result[$side.$m]=$(grep -ao "vbench $m: .* = [0-9.]* MB/s" "$VM_OUT" | sed 's/.*= \([0-9.]*\) MB\/s/\1/' | tail -n1)
  done
  for m in randread randwrite; do
    result[$side.$m]=$(grep -ao "vbench $m: .* = [0-9]* IOPS" "$VM_OUT" | sed 's/.*= \([0-9]*\) IOPS/\1/' | tail -n1)
  done
}

run_net() {  # side
  local side=$1
  [[ $(id -u) == 0 ]] || { echo "net: skipped (needs root for ip netns)"; return; }
  local ns=doppel-vbench-$$ tap=vbtap$$ cmd
  ip netns add "$ns"
  ip -n "$ns" link set lo up
  ip -n "$ns" tuntap add "$tap" mode tap vnet_hdr
  ip -n "$ns" addr add 10.0.2.1/24 dev "$tap"
  ip -n "$ns" link set "$tap" up
  if [[ $side == doppel ]]; then
    cmd="ip netns exec $ns $(doppel_cmd --disk "$WORK/tools.img" --net "tap=$tap")"
  else
    cmd="ip netns exec $ns $(qemu_cmd -drive "file=$WORK/tools.img,format=raw,if=none,id=d1" \
      -device virtio-blk-device,drive=d1 \
      -netdev "tap,id=n0,ifname=$tap,script=no,downscript=no,vhost=off" -device virtio-net-device,netdev=n0)"
  fi
  ip netns exec "$ns" sh -c 'while nc -l -p 5001 >/dev/null; do :; done' &
  local listener=$!
  vm_start "net-$side" "$cmd"
  vm_wait_ready
  vm_send "$FIND_DISKS"
  vm_send 'ip link set eth0 up; ip addr add 10.0.2.15/24 dev eth0; ping -c 1 -W 5 10.0.2.1 >/dev/null'
  vm_send "/t/vbench tcpsend 10.0.2.1 5001 $NET_MIB"
  vm_send 'echo BENCH-DONE'
  vm_wait_for 'BENCH-DONE'
  vm_send 'poweroff -f'
  vm_wait_exit 0 || true
  kill "$listener" 2>/dev/null || true
  ip netns del "$ns" || true
  result[$side.tcpsend]=$(grep -ao "vbench tcpsend: .* = [0-9.]* MB/s" "$VM_OUT" | sed 's/.*= \([0-9.]*\) MB\/s/\1/' | tail -n1)
}

for s in "${suites[@]}"; do
  for side in "${sides[@]}"; do "run_$s" "$side"; done
done

printf '%-12s %14s %14s %10s\n' metric doppel qemu ratio
for m in seqwrite seqread randread randwrite tcpsend; do
  d=${result[doppel.$m]:-} q=${result[qemu.$m]:-}
  [[ -z $d && -z $q ]] && continue
  unit=MB/s; [[ $m == rand* ]] && unit=IOPS
  ratio=-
  [[ -n $d && -n $q ]] && ratio=$(awk -v d="$d" -v q="$q" 'BEGIN { if (q > 0) printf "%.2f", d / q; else print "-" }')
  printf '%-12s %14s %14s %10s\n' "$m" "${d:--} $unit" "${q:--} $unit" "$ratio"
done
