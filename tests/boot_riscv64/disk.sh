#!/usr/bin/env bash
# `doppel run --boot disk`: OpenSBI, then Debian's U-Boot, whose distro boot reads
# /extlinux/extlinux.conf from a disk written by `doppel guest disk` and boots the guest
# kit's kernel and initrd from it, to the guest's shell; `poweroff -f` exits 0.
# Exit 77 (ctest: skipped) without the guest kit, u-boot-qemu, sfdisk or mkfs.ext4.
set -euo pipefail
source "$(dirname "$0")/../virtio_guest/lib.sh"
[[ -f /usr/lib/u-boot/qemu-riscv64_smode/u-boot.bin ]] || skip "needs u-boot-qemu (scripts/install-deps)"
PATH=$PATH:/usr/sbin:/sbin
need sfdisk mkfs.ext4
guest_dir >/dev/null
[[ -x $DOPPEL ]] || skip "$DOPPEL not built"

"$DOPPEL" guest disk --arch riscv64 -o "$WORK/disk.img" >"$WORK/guest-disk.out" 2>&1 ||
  { cat "$WORK/guest-disk.out"; fail "doppel guest disk"; }
[[ $(tail -n 1 "$WORK/guest-disk.out") == "$WORK/disk.img" ]] || fail "doppel guest disk did not print the image's path"
sfdisk -d "$WORK/disk.img" | grep -q 'bootable' || fail "no bootable partition on the disk"

vm_start disk "$(doppel_cmd --boot disk --disk "$WORK/disk.img")"
vm_wait_for 'U-Boot 20'
vm_wait_for 'extlinux.conf'
vm_wait_ready
grep -aq 'Linux version' "$VM_OUT" || fail "no Linux banner"
echo "ok: U-Boot booted the guest kit from the disk to its shell"
vm_send 'echo hello-$((6*7))'
vm_wait_for 'hello-42'
vm_send 'poweroff -f'
vm_wait_exit 0
echo "ok: disk boot to the shell and poweroff exit 0 in $((SECONDS - VM_T0)) s"
