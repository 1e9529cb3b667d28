#!/usr/bin/env bash
# A backing chain of three, ext4 written in the guest at each level:
#   base.raw (ext4 made on the host) <- mid.qcow2 (`doppel disk create --backing base.raw`,
#   a relative name) <- top.qcow2 (`qemu-img create -b mid.qcow2 -F qcow2`).
# Guest 1 (from a VM file with "format": "qcow2") changes the file system through mid;
# guest 2 through top, including fstrim (discards that must hide, not expose, the layers
# below). Afterwards: qemu-img check is clean for both overlays, each lower image is
# byte-for-byte unchanged by the VM above it, the guest's view of the whole disk equals
# qemu-img's raw conversion of the top, which e2fsck finds clean with every file right.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need debugfs e2fsck sha256sum
guest_dir >/dev/null
[[ -x $DOPPEL ]] || skip "$DOPPEL not built"

base=$WORK/base.raw
make_ext4 "$base" 64
echo from-the-base >"$WORK/b.txt"
debugfs -w -R "write $WORK/b.txt base.txt" "$base" >/dev/null 2>&1 || fail "debugfs write"
base_sum=$(host_sum "$base")
"$DOPPEL" disk create "$WORK/mid.qcow2" --backing base.raw >/dev/null || fail "doppel disk create --backing"
cat >"$WORK/vm.json" <<JSON
{"disks": [{"path": "mid.qcow2", "format": "qcow2"}]}
JSON

vm_start mid "$(doppel_cmd --config "$WORK/vm.json")"
vm_wait_ready
vm_send 'mkdir -p /mnt && mount -t ext4 /dev/vda /mnt && echo MOUNT-OK'
vm_wait_for 'MOUNT-OK'
vm_send 'echo "base says $(cat /mnt/base.txt)"'
vm_send 'echo changed-in-mid > /mnt/base.txt; echo written-in-mid > /mnt/mid.txt'
vm_send 'seq 1 100000 > /mnt/seq.txt; dd if=/dev/urandom of=/mnt/rand.bin bs=64k count=64 2>/dev/null'
vm_send 'sync && umount /mnt && echo UMOUNT-OK'
vm_wait_for 'UMOUNT-OK'
vm_send 'poweroff -f'
vm_wait_exit 0
grep -aq 'base says from-the-base' "$VM_OUT" || fail "guest 1 did not read the base's file through mid.qcow2"
qcheck_clean "$WORK/mid.qcow2"
[[ $(host_sum "$base") == "$base_sum" ]] || fail "base.raw changed under mid.qcow2"
mid_sum=$(host_sum "$WORK/mid.qcow2")

qemu-img create -q -f qcow2 -b mid.qcow2 -F qcow2 "$WORK/top.qcow2" || fail "qemu-img create -b"
vm_start top "$(doppel_cmd --disk "$WORK/top.qcow2")"
vm_wait_ready
vm_send 'mkdir -p /mnt && mount -t ext4 /dev/vda /mnt && echo MOUNT-OK'
vm_wait_for 'MOUNT-OK'
vm_send 'echo "layers say $(cat /mnt/base.txt) $(cat /mnt/mid.txt)"'
# The kit has no RTC: the guest's clock starts at 0 at boot, and a file deleted within its
# first second gets dtime 0, which e2fsck reports ("Deleted inode has zero dtime"). Give it
# the host's time first.
vm_send "date -u -s '$(date -u '+%Y-%m-%d %H:%M:%S')' >/dev/null"
vm_send 'echo written-in-top > /mnt/top.txt; seq 100001 150000 >> /mnt/seq.txt; rm /mnt/rand.bin'
vm_send 'sync; fstrim -v /mnt; sync && umount /mnt && echo UMOUNT-OK'
vm_wait_for 'UMOUNT-OK'
vm_send 'echo "whole $(sha256sum < /dev/vda | cut -d" " -f1)"'
vm_send 'poweroff -f'
vm_wait_exit 0
grep -aq 'layers say changed-in-mid written-in-mid' "$VM_OUT" || fail "guest 2 did not read mid's files through top.qcow2"
grep -aqE '/mnt: [1-9][0-9]* bytes trimmed' "$VM_OUT" || fail "fstrim discarded nothing"

qcheck_clean "$WORK/top.qcow2"
[[ $(host_sum "$WORK/mid.qcow2") == "$mid_sum" ]] || fail "mid.qcow2 changed under top.qcow2"
[[ $(host_sum "$base") == "$base_sum" ]] || fail "base.raw changed"
qemu-img convert -q -O raw "$WORK/top.qcow2" "$WORK/flat.raw"
qcompare "$WORK/top.qcow2" "$WORK/flat.raw"
guest_view=$(grep -ao 'whole [0-9a-f]*' "$VM_OUT" | tail -n1 | cut -d' ' -f2)
[[ $guest_view == "$(host_sum "$WORK/flat.raw")" ]] || fail "the guest's disk differs from qemu-img's conversion of top.qcow2"
e2fsck -fn "$WORK/flat.raw" >"$WORK/fsck.log" 2>&1 || { cat "$WORK/fsck.log" >&2; fail "e2fsck found errors"; }
cat_file() { debugfs -R "cat /$1" "$WORK/flat.raw" 2>/dev/null; }
[[ $(cat_file base.txt) == changed-in-mid ]] || fail "base.txt"
[[ $(cat_file mid.txt) == written-in-mid ]] || fail "mid.txt"
[[ $(cat_file top.txt) == written-in-top ]] || fail "top.txt"
[[ $(cat_file seq.txt | sha256sum) == $(seq 1 150000 | sha256sum) ]] || fail "seq.txt"
debugfs -R 'stat /rand.bin' "$WORK/flat.raw" 2>&1 | grep -q 'File not found' || fail "rand.bin was not removed"

info=$("$DOPPEL" disk info "$WORK/top.qcow2") || fail "doppel disk info"
grep -q "backing file: $WORK/mid.qcow2" <<<"$info" && grep -q "backing file: $WORK/base.raw" <<<"$info" ||
  { echo "$info" >&2; fail "doppel disk info does not show the chain"; }
echo "PASS: raw <- qcow2 <- qcow2 chain: ext4 written at each level, qemu-img check clean, layers unchanged"
