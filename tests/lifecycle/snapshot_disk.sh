#!/usr/bin/env bash
# Snapshot while the guest writes to a virtio-blk disk: a writer appends numbered lines to
# a file on ext4 and syncs after each chunk. The VM is snapshotted mid-way and killed; the
# restored VM finishes the file and unmounts. On the host, the file's bytes are exactly
# `seq 1 N` and e2fsck finds the filesystem clean: no write the guest was told had completed
# was lost, none was doubled.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need debugfs e2fsck sha256sum
guest_dir >/dev/null
img=$WORK/disk.img
make_ext4 "$img" 32
sock=$WORK/api.sock
snap=$WORK/snap
chunks=${CHUNKS:-200}

vm_start orig "$(doppel_cmd --disk "$img" --api-sock "$sock")"
vm_wait_ready
wait_sock "$sock"
seq_writer_start "$chunks"
# The counters saw those writes: at least the synced file's bytes went to the disk.
written=$(metric "$sock" devices virtio-blk0 virtio_bytes_from_guest)
((written >= $(seq 1 2500 | wc -c))) || fail "GET /metrics: virtio-blk0 took $written bytes from the guest"
(($(metric "$sock" devices virtio-blk0 virtio_requests) > 0)) || fail "GET /metrics: no virtio-blk0 requests"
insns=$(metric "$sock" vcpus 0 instructions_retired)
((insns > 1000000)) || fail "GET /metrics: vCPU 0 retired $insns instructions"
(($(metric "$sock" vcpus 0 block_cache_hits) > 0)) || fail "GET /metrics: no block cache hits"
# The JIT is on by default on x86-64 hosts: the hot blocks of the boot were translated.
if [[ $(uname -m) == x86_64 && ${DOPPEL_JIT:-on} != off ]]; then
  (($(metric "$sock" vcpus 0 jit_translations) > 0)) || fail "GET /metrics: no JIT translations"
  (($(metric "$sock" vcpus 0 jit_code_bytes) > 0)) || fail "GET /metrics: no JIT code"
fi
ctl "$sock" pause
ctl "$sock" snapshot "$snap"
grep -aq 'WRITER-DONE' "$VM_OUT" && fail "the writer finished before the snapshot: raise CHUNKS"
kill_vm

vm_start restored "$DOPPEL restore $snap"
vm_wait_for 'WRITER-DONE'
vm_send 'poweroff -f'
vm_wait_exit 0

seq_file_is_right "$img" "$chunks"
echo "PASS: snapshot during disk writes: file bytes right, e2fsck clean"
