#!/usr/bin/env bash
# Linked clones: two VMs at once, each on its own overlay (`doppel disk create --backing`)
# of one ext4 base. Each reads the base's file and writes its own name and data; afterwards
# each overlay holds its own clone's files and not the other's, qemu-img check is clean for
# both, e2fsck finds each clone's file system clean, and the base is byte-for-byte unchanged.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need debugfs e2fsck sha256sum
guest_dir >/dev/null
[[ -x $DOPPEL ]] || skip "$DOPPEL not built"

base=$WORK/base.raw
make_ext4 "$base" 32
echo shared-by-all >"$WORK/s.txt"
debugfs -w -R "write $WORK/s.txt shared.txt" "$base" >/dev/null 2>&1 || fail "debugfs write"
base_sum=$(host_sum "$base")

pids=()
stop_clones() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap 'stop_clones; cleanup' EXIT
for i in 1 2; do
  "$DOPPEL" disk create "$WORK/clone$i.qcow2" --backing "$base" >/dev/null || fail "doppel disk create"
  # The commands wait in doppel's console input until the guest's shell reads them.
  printf '%s\n' 'mkdir -p /mnt && mount -t ext4 /dev/vda /mnt && echo MOUNT-OK' \
    'echo "shared says $(cat /mnt/shared.txt)"' \
    "echo clone-$i > /mnt/me.txt" \
    "dd if=/dev/urandom of=/mnt/data$i.bin bs=64k count=32 2>/dev/null" \
    "echo \"data$i \$(sha256sum < /mnt/data$i.bin | cut -d' ' -f1)\"" \
    'sync && umount /mnt && echo UMOUNT-OK' 'poweroff -f' |
    $(doppel_cmd --disk "$WORK/clone$i.qcow2") >"$WORK/clone$i.out" 2>&1 &
  pids+=($!)
done
for i in 1 2; do
  rc=0
  for ((t = 0; t < VM_TIMEOUT * 5; t++)); do kill -0 "${pids[i - 1]}" 2>/dev/null || break; sleep 0.2; done
  wait "${pids[i - 1]}" || rc=$?
  [[ $rc == 0 ]] || { tail -n 20 "$WORK/clone$i.out" >&2; fail "clone $i exited with $rc"; }
  out=$WORK/clone$i.out
  grep -aq 'UMOUNT-OK' "$out" || { tail -n 20 "$out" >&2; fail "clone $i did not finish writing"; }
  grep -aq 'shared says shared-by-all' "$out" || fail "clone $i did not read the base's file"
done
[[ $(host_sum "$base") == "$base_sum" ]] || fail "a clone wrote to the base"
for i in 1 2; do
  other=$((3 - i))
  qcheck_clean "$WORK/clone$i.qcow2"
  qemu-img convert -q -O raw "$WORK/clone$i.qcow2" "$WORK/clone$i.raw"
  e2fsck -fn "$WORK/clone$i.raw" >"$WORK/fsck.log" 2>&1 || { cat "$WORK/fsck.log" >&2; fail "e2fsck: clone $i"; }
  [[ $(debugfs -R 'cat /me.txt' "$WORK/clone$i.raw" 2>/dev/null) == "clone-$i" ]] || fail "clone $i's me.txt"
  want=$(grep -ao "data$i [0-9a-f]*" "$WORK/clone$i.out" | tail -n1 | cut -d' ' -f2)
  [[ $(debugfs -R "cat /data$i.bin" "$WORK/clone$i.raw" 2>/dev/null | sha256sum | cut -d' ' -f1) == "$want" ]] ||
    fail "clone $i's data$i.bin differs from what the guest wrote"
  debugfs -R "stat /data$other.bin" "$WORK/clone$i.raw" 2>&1 | grep -q 'File not found' ||
    fail "clone $i holds clone $other's file"
done
echo "PASS: two linked clones of one base, each with its own data, the base unchanged"
