#!/usr/bin/env bash
# qcow2 interoperability with qemu-img, both ways, on the riscv64 guest:
#  1. images qemu-img made (plain, 4 KiB clusters, compressed with deflate and with zstd,
#     version 2 read-only, an overlay `qemu-img create -b base -F raw` that qemu-io wrote
#     into) read in the guest exactly as qemu-img's raw conversion of each;
#  2. the guest writes, at offsets that allocate, overwrite and copy on write, to a
#     qemu-img overlay and to an image `doppel disk create` made; afterwards `qemu-img check`
#     finds both clean and `qemu-img compare` finds them equal to raw files written the same
#     way on the host.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need qemu-io sha256sum
guest_dir >/dev/null
[[ -x $DOPPEL ]] || skip "$DOPPEL not built"

# A 16 MiB base: random data, a compressible stretch and a hole.
base=$WORK/base.raw
head -c 6M /dev/urandom >"$base"
seq 1 500000 | head -c 4M >>"$base"
truncate -s 16M "$base"

# --- 1. qemu-img -> doppel
declare -A made
qemu-img convert -q -f raw -O qcow2 "$base" "$WORK/plain.qcow2"
qemu-img convert -q -f raw -O qcow2 -o cluster_size=4096 "$base" "$WORK/c4k.qcow2"
qemu-img convert -q -f raw -O qcow2 -c -o compression_type=zlib "$base" "$WORK/deflate.qcow2"
qemu-img convert -q -f raw -O qcow2 -c -o compression_type=zstd "$base" "$WORK/zstd.qcow2"
qemu-img convert -q -f raw -O qcow2 -o compat=0.10 "$base" "$WORK/v2.qcow2"
qemu-img create -q -f qcow2 -b "$base" -F raw "$WORK/overlay.qcow2"
qemu-io -f qcow2 -c 'write -P 0x5a 1M 200k' -c 'write -z 3M 64k' -c 'discard 5M 128k' \
  "$WORK/overlay.qcow2" >/dev/null
names=(plain c4k deflate zstd v2 overlay)
args=()
for n in "${names[@]}"; do
  opt=""
  [[ $n == v2 ]] && opt=",ro"   # version 2 is read-only in doppel
  args+=(--disk "$WORK/$n.qcow2$opt")
  qemu-img convert -q -O raw "$WORK/$n.qcow2" "$WORK/$n.ref"
  made[$n]=$(host_sum "$WORK/$n.ref")
done
[[ ${made[overlay]} != "${made[plain]}" ]] || fail "qemu-io did not change the overlay"

vm_start read "$(doppel_cmd "${args[@]}")"
vm_wait_ready
i=0
for n in "${names[@]}"; do
  dev=vd$(printf "\\x$(printf %x $((97 + i)))")
  vm_send "echo \"sum $n \$(sha256sum < /dev/$dev | cut -d' ' -f1)\""
  i=$((i + 1))
done
vm_send 'echo READ-""DONE'
vm_wait_for 'READ-DONE'
vm_send 'poweroff -f'
vm_wait_exit 0
for n in "${names[@]}"; do
  got=$(grep -ao "sum $n [0-9a-f]*" "$VM_OUT" | tail -n1 | cut -d' ' -f3)
  [[ $got == "${made[$n]}" ]] || fail "$n.qcow2 reads differently in the guest ($got) than qemu-img's conversion (${made[$n]})"
done
for n in plain c4k deflate zstd overlay; do qcheck_clean "$WORK/$n.qcow2"; done

# --- 2. doppel writes, qemu-img checks
# The writes: (seek, count) in 4 KiB blocks, data from the "src" disk's blocks (random).
src=$WORK/src.raw
head -c 4M /dev/urandom >"$src"
"$DOPPEL" disk create "$WORK/new.qcow2" --size 64M >/dev/null || fail "doppel disk create"
qemu-img create -q -f qcow2 -b "$base" -F raw "$WORK/qover.qcow2"
cp "$base" "$WORK/qover.model"
truncate -s 64M "$WORK/new.model"
writes=("0 1" "1 15" "16 16" "255 3" "300 200" "1000 1" "2047 2" "3000 256" "16 1" "3000 1" "4095 1")
script=()  # one console line each: a tty line holds at most 4095 bytes
for w in "${writes[@]}"; do
  read -r seek count <<<"$w"
  skip=$(( (seek * 7) % 700 ))
  for dev in vdb vdc; do
    script+=("dd if=/dev/vda of=/dev/$dev bs=4096 skip=$skip seek=$seek count=$count conv=notrunc 2>/dev/null")
  done
  for m in new qover; do
    dd if="$src" of="$WORK/$m.model" bs=4096 skip="$skip" seek="$seek" count="$count" conv=notrunc 2>/dev/null
  done
done
# Discards of whole clusters read as zeroes afterwards: unallocated in a standalone image,
# the zero flag in an overlay (the base's bytes must not show through).
script+=("sync; blkdiscard -o 1048576 -l 131072 /dev/vdb; blkdiscard -o 196608 -l 65536 /dev/vdc; sync; echo WRITE-\"\"DONE")
dd if=/dev/zero of="$WORK/new.model" bs=4096 seek=256 count=32 conv=notrunc 2>/dev/null
dd if=/dev/zero of="$WORK/qover.model" bs=4096 seek=48 count=16 conv=notrunc 2>/dev/null

vm_start write "$(doppel_cmd --disk "$src,ro" --disk "$WORK/new.qcow2" --disk "$WORK/qover.qcow2")"
vm_wait_ready
for line in "${script[@]}"; do vm_send "$line"; done
vm_wait_for 'WRITE-DONE'
vm_send 'poweroff -f'
vm_wait_exit 0

qcheck_clean "$WORK/new.qcow2"
qcheck_clean "$WORK/qover.qcow2"
qcompare "$WORK/new.qcow2" "$WORK/new.model"
qcompare "$WORK/qover.qcow2" "$WORK/qover.model"
[[ $(host_sum "$base") == "$(sha256sum < "$WORK/plain.ref" | cut -d' ' -f1)" ]] || fail "the base changed"
echo "PASS: qcow2 interoperability with qemu-img, both ways"
