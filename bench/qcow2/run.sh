#!/usr/bin/env bash
# qcow2 benchmarks (not in make test): the same riscv64 guest (guest kit) and workload on
#   doppel + raw image, doppel + qcow2 image, qemu-system-riscv64 + the same qcow2 image,
# printing each metric and two ratios: doppel qcow2/raw (what qcow2 costs in doppel) and
# doppel/QEMU on qcow2 (higher is better for doppel).
#
#   bench/qcow2/run.sh
#   BLK_MIB=64 RAND_SECONDS=10 bench/qcow2/run.sh
#
# Workload (bench/virtio/vbench.c, in the guest, O_DIRECT on the whole disk): sequential
# 1 MiB writes over BLK_MIB MiB of a fresh image (allocating in qcow2), sequential reads of
# them, then 4 KiB random reads and random writes over the whole disk (BLK_MIB + 16 MiB,
# so some random writes allocate). Each side starts from a fresh copy of the same empty
# image: qcow2 v3, 64 KiB clusters (`doppel disk create`). Like for like on the host side:
# doppel uses the host page cache (a flush is fdatasync), so QEMU's drive is
# cache=writeback with aio=threads.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../../tests/virtio_guest/lib.sh"
need riscv64-linux-gnu-gcc debugfs qemu-system-riscv64 qemu-img
guest_dir >/dev/null
[[ -x $DOPPEL ]] || skip "$DOPPEL not built"
VM_TIMEOUT=${VM_TIMEOUT:-900}
BLK_MIB=${BLK_MIB:-64}
RAND_SECONDS=${RAND_SECONDS:-10}
disk_mib=$((BLK_MIB + 16))

riscv64-linux-gnu-gcc -static -O2 -Wall -Wextra -Werror -o "$WORK/vbench" \
  "$(dirname "${BASH_SOURCE[0]}")/../virtio/vbench.c" || fail "building vbench"
make_ext4 "$WORK/tools.img" 8
debugfs -w -R "write $WORK/vbench vbench" "$WORK/tools.img" >/dev/null 2>&1 || fail "debugfs write"
"$DOPPEL" disk create "$WORK/empty.qcow2" --size "${disk_mib}M" >/dev/null || fail "doppel disk create"

declare -A result
FIND_DISKS='mkdir -p /t; for d in vda vdb; do if mount -t ext4 -o ro /dev/$d /t 2>/dev/null; then T=$d; else B=$d; fi; done; echo "disks tools=$T bench=$B"'

run_side() {  # name
  local side=$1 img cmd
  case $side in
    doppel-raw)
      img=$WORK/bench.raw; rm -f "$img"; truncate -s "${disk_mib}M" "$img"
      cmd=$(doppel_cmd --disk "$img" --disk "$WORK/tools.img") ;;
    doppel-qcow2)
      img=$WORK/bench.qcow2; cp "$WORK/empty.qcow2" "$img"
      cmd=$(doppel_cmd --disk "$img" --disk "$WORK/tools.img") ;;
    qemu-qcow2)
      img=$WORK/bench.qcow2; cp "$WORK/empty.qcow2" "$img"
      cmd=$(qemu_cmd -drive "file=$img,format=qcow2,if=none,id=d0,cache=writeback,aio=threads" \
        -device virtio-blk-device,drive=d0 \
        -drive "file=$WORK/tools.img,format=raw,if=none,id=d1" -device virtio-blk-device,drive=d1) ;;
  esac
  vm_start "$side" "$cmd"
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
  if [[ $img == *.qcow2 ]]; then
    qemu-img check -q "$img" || echo "warning: qemu-img check $side: exit $?" >&2
  fi
}

for side in doppel-raw doppel-qcow2 qemu-qcow2; do run_side "$side"; done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a != "" && b > 0) printf "%.2f", a / b; else print "-" }'; }
printf '%-10s %13s %13s %13s %12s %12s\n' metric doppel-raw doppel-qcow2 qemu-qcow2 qcow2/raw doppel/qemu
for m in seqwrite seqread randread randwrite; do
  unit=MB/s; [[ $m == rand* ]] && unit=IOPS
  r=${result[doppel-raw.$m]:-} d=${result[doppel-qcow2.$m]:-} q=${result[qemu-qcow2.$m]:-}
  printf '%-10s %13s %13s %13s %12s %12s\n' "$m" "${r:--} $unit" "${d:--} $unit" "${q:--} $unit" \
    "$(ratio "$d" "$r")" "$(ratio "$d" "$q")"
done
