#!/usr/bin/env bash
# virtio-blk read-only: the guest sees a read-only disk; writes are refused and the image
# is byte-for-byte unchanged afterwards.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need sha256sum
guest_dir >/dev/null

img=$WORK/ro.img
make_ext4 "$img" 16
before=$(sha256sum <"$img")

vm_start ro "$(doppel_cmd --disk "$img,ro")"
vm_wait_ready
vm_send 'echo "ro-flag $(cat /sys/block/vda/ro)"'
vm_send 'dd if=/dev/zero of=/dev/vda bs=4096 count=1 conv=fsync 2>/dev/null && echo RAW-WRITE-OK || echo RAW-WRITE-REFUSED'
vm_send 'mkdir -p /mnt && mount -t ext4 -o ro /dev/vda /mnt && ls /mnt && echo RO-MOUNT-OK'
vm_send 'touch /mnt/x 2>/dev/null && echo TOUCH-OK || echo TOUCH-REFUSED'
vm_send 'umount /mnt; echo DONE-RO'
vm_wait_for 'DONE-RO'
vm_send 'poweroff -f'
vm_wait_exit 0

grep -aq 'ro-flag 1' "$VM_OUT" || fail "guest does not see the disk as read-only"
grep -aq 'RAW-WRITE-REFUSED' "$VM_OUT" || fail "a raw write to the read-only disk succeeded"
grep -aq 'RO-MOUNT-OK' "$VM_OUT" || fail "could not mount the read-only disk"
grep -aq 'TOUCH-REFUSED' "$VM_OUT" || fail "a file write on the read-only disk succeeded"
[[ $(sha256sum <"$img") == "$before" ]] || fail "the read-only image changed"
echo "PASS: virtio-blk read-only"
