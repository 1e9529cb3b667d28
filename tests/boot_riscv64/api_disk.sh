#!/usr/bin/env bash
# The API builds what `doppel run --boot disk` does: a doppel started with only
# --api-sock gets PUT /boot-source {"boot_from": "disk", "firmware_path": OpenSBI} (no
# kernel: U-Boot is it) and a root drive made by `doppel guest disk`, then InstanceStart;
# U-Boot boots the guest kit from the disk to its shell; `poweroff -f` exits 0.
# Exit 77 (ctest: skipped) without the guest kit, u-boot-qemu, sfdisk, mkfs.ext4 or curl.
set -euo pipefail
source "$(dirname "$0")/../virtio_guest/lib.sh"
[[ -f /usr/lib/u-boot/qemu-riscv64_smode/u-boot.bin ]] || skip "needs u-boot-qemu (scripts/install-deps)"
PATH=$PATH:/usr/sbin:/sbin
need sfdisk mkfs.ext4 curl
KIT=$(guest_dir)
[[ -x $DOPPEL ]] || skip "$DOPPEL not built"
"$DOPPEL" guest disk --arch riscv64 -o "$WORK/disk.img" >"$WORK/guest-disk.out" 2>&1 ||
  { cat "$WORK/guest-disk.out"; fail "doppel guest disk"; }

sock=$WORK/api.sock
req() {
  local args=(-s -o "$WORK/body" -w '%{http_code}' --unix-socket "$sock" -X "$1" "http://localhost$2")
  [[ $# -ge 3 ]] && args+=(-H 'Content-Type: application/json' --data-binary "$3")
  status=$(curl "${args[@]}") || true
  body=$(cat "$WORK/body" 2>/dev/null || true)
}
vm_start api "$DOPPEL --api-sock $sock"
for _ in $(seq 1 300); do [[ -S $sock ]] && break; sleep 0.1; done
req PUT /boot-source '{"boot_from": "disk", "firmware_path": "none"}'
[[ $status == 204 ]] || fail "boot-source: $status $body"
req PUT /drives/root "{\"drive_id\": \"root\", \"path_on_host\": \"$WORK/disk.img\", \"is_root_device\": true, \"is_read_only\": false}"
[[ $status == 204 ]] || fail "drives/root: $status $body"
# U-Boot runs in S-mode: firmware "none" is refused at the start, naming why.
req PUT /actions '{"action_type": "InstanceStart"}'
[[ $status == 400 && $body == *"needs firmware (OpenSBI), not 'none'"* ]] ||
  fail "InstanceStart with firmware none and boot_from disk: $status $body"
req PUT /boot-source "{\"boot_from\": \"disk\", \"firmware_path\": \"$KIT/fw_dynamic.bin\"}"
[[ $status == 204 ]] || fail "boot-source: $status $body"
req PUT /actions '{"action_type": "InstanceStart"}'
[[ $status == 204 ]] || fail "InstanceStart: $status $body"
vm_wait_for 'U-Boot 20'
vm_wait_for 'extlinux.conf'
vm_wait_ready
vm_send 'echo hello-$((6*7))'
vm_wait_for 'hello-42'
vm_send 'poweroff -f'
vm_wait_exit 0
echo "ok: through the API, U-Boot booted the guest kit from the disk to its shell ($((SECONDS - VM_T0)) s)"
