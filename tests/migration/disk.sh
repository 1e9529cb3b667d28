#!/usr/bin/env bash
# Live migration while the guest writes a file on virtio-blk (ext4), the disk file shared
# by both "hosts" as on shared storage: a writer appends numbered lines and syncs after
# each chunk; the VM moves mid-way; the destination finishes the file and unmounts. On the
# host, the file's bytes are exactly `seq 1 N` and e2fsck finds the filesystem clean.
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
seq_writer_start "$chunks"
ctl "$sock" migrate "$DEST"
grep -aq 'WRITER-DONE' "$VM_OUT" && fail "the writer finished before the migration: raise CHUNKS"
rc=0; wait "$VM_PID" || rc=$?
VM_PID=""
[[ $rc == 0 ]] || fail "the source exited with $rc after migrating"

dest_wait_for 'WRITER-DONE'
printf '%s\n' 'poweroff -f' >&9
rc=0; wait "$DEST_PID" || rc=$?
DEST_PID=""
[[ $rc == 0 ]] || fail "the destination exited with $rc"
seq_file_is_right "$img" "$chunks"
echo "PASS: migration during disk writes: file bytes right, e2fsck clean"
