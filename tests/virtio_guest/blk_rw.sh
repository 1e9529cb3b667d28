#!/usr/bin/env bash
# virtio-blk read/write: the guest mounts a host-made ext4 image, writes files, syncs and
# powers off; the host then reads the files back with debugfs and e2fsck finds it clean.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need debugfs e2fsck sha256sum
guest_dir >/dev/null

img=$WORK/disk.img
make_ext4 "$img" 64
# A host file the guest must read correctly (checked by its checksum in the guest).
head -c 3000000 /dev/urandom >"$WORK/host.bin"
debugfs -w -R "write $WORK/host.bin host.bin" "$img" >/dev/null 2>&1 || fail "debugfs write"
want_host=$(sha256sum <"$WORK/host.bin" | cut -d' ' -f1)

vm_start blk "$(doppel_cmd --disk "$img")"
vm_wait_ready
vm_send 'mkdir -p /mnt && mount -t ext4 /dev/vda /mnt && echo MOUNT-OK'
vm_wait_for 'MOUNT-OK'
vm_send 'echo "host-sum $(sha256sum /mnt/host.bin)"'
vm_send 'echo hello-from-guest > /mnt/hello.txt'
vm_send 'mkdir /mnt/dir && seq 1 20000 > /mnt/dir/seq.txt'
vm_send 'dd if=/dev/zero of=/mnt/zero.bin bs=1M count=4 2>/dev/null'
vm_send 'sync && umount /mnt && echo UMOUNT-OK'
vm_wait_for 'UMOUNT-OK'
vm_send 'poweroff -f'
vm_wait_exit 0

grep -aq "host-sum $want_host" "$VM_OUT" || fail "guest read host.bin with the wrong checksum"
[[ $(debugfs -R 'cat /hello.txt' "$img" 2>/dev/null) == hello-from-guest ]] || fail "hello.txt content"
[[ $(debugfs -R 'cat /dir/seq.txt' "$img" 2>/dev/null | sha256sum) == $(seq 1 20000 | sha256sum) ]] || fail "seq.txt content"
[[ $(debugfs -R 'cat /zero.bin' "$img" 2>/dev/null | wc -c) == 4194304 ]] || fail "zero.bin size"
e2fsck -fn "$img" >"$WORK/fsck.log" 2>&1 || { cat "$WORK/fsck.log" >&2; fail "e2fsck found errors"; }
echo "PASS: virtio-blk read/write"
