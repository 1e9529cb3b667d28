#!/usr/bin/env bash
# Live migration while the guest writes a file on virtio-blk (ext4), the disk file shared
# by both "hosts" as on shared storage: a writer appends numbered lines and syncs after
# each chunk; the VM moves mid-way; the destination finishes the file and unmounts. On the
# host, the file's bytes are exactly `seq 1 N` and e2fsck finds the filesystem clean.
# The disk's image lock moves with the VM: while the destination waits the source holds it,
# afterwards the destination does (a third VM is refused, naming the holder).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need debugfs e2fsck sha256sum
guest_dir >/dev/null
img=$WORK/disk.img
make_ext4 "$img" 32
sock=$WORK/api.sock
chunks=${CHUNKS:-200}

start_destination --disk "$img"
vm_start src "ip netns exec $HOST_A $DOPPEL --log-level info run --arch riscv64 --disk $img --api-sock $sock"
vm_wait_ready
wait_sock "$sock"
# third_vm_refused PID: a third VM (read-only: harmless if it did start) is refused the disk,
# the holder named.
third_vm_refused() {
  local out rc=0
  out=$(timeout 60 "$DOPPEL" run --arch riscv64 --disk "$img,ro" </dev/null 2>&1) || rc=$?
  [[ $rc == 1 ]] && grep -q "disk $img: in use by another VM or program (pid $1 " <<<"$out" ||
    fail "a third VM was not refused the disk held by pid $1 (exit $rc): $out"
}
third_vm_refused "$VM_PID"
seq_writer_start "$chunks"
ctl "$sock" migrate "$DEST"
grep -aq 'WRITER-DONE' "$VM_OUT" && fail "the writer finished before the migration: raise CHUNKS"
rc=0; wait "$VM_PID" || rc=$?
VM_PID=""
[[ $rc == 0 ]] || fail "the source exited with $rc after migrating"
third_vm_refused "$DEST_PID"

dest_wait_for 'WRITER-DONE'
printf '%s\n' 'poweroff -f' >&9
rc=0; wait "$DEST_PID" || rc=$?
DEST_PID=""
[[ $rc == 0 ]] || fail "the destination exited with $rc"
seq_file_is_right "$img" "$chunks"
echo "PASS: migration during disk writes: file bytes right, e2fsck clean"
