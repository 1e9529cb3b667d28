#!/usr/bin/env bash
# Debian's U-Boot (u-boot-qemu, qemu-riscv64_smode) on doppel, after OpenSBI fw_dynamic, as
# `qemu-system-riscv64 -M virt -bios fw_dynamic.bin -kernel u-boot.bin` runs it: the console
# stops autoboot and reaches the prompt, `virtio info` lists the disk, `bootefi hello` runs
# U-Boot's EFI hello world, and `poweroff` (the syscon-poweroff node) ends doppel with 0.
# Then U-Boot's M-mode build runs as the firmware itself (-bios uboot.elf).
# Exit 77 (ctest: skipped) without u-boot-qemu or opensbi.
set -euo pipefail
source "$(dirname "$0")/../virtio_guest/lib.sh"
VM_TIMEOUT=${VM_TIMEOUT:-120}
uboot=/usr/lib/u-boot/qemu-riscv64_smode/u-boot.bin
fw=/usr/lib/riscv64-linux-gnu/opensbi/generic/fw_dynamic.bin
[[ -f $uboot ]] || skip "needs u-boot-qemu (scripts/install-deps)"
[[ -f $fw ]] || skip "needs opensbi (scripts/install-deps)"

# since_cmd CMD PATTERN: waits until the output after the echoed command line `=> CMD`
# matches PATTERN (grep -E), so that what autoboot printed never counts.
since_cmd() {
  while (( SECONDS - VM_T0 < VM_TIMEOUT )); do
    awk -v c="=> $1" 'found { print } index($0, c) == 1 { found = 1 }' "$VM_OUT" | grep -aqE "$2" && return 0
    kill -0 "$VM_PID" 2>/dev/null || fail "VM exited while waiting for /$2/ after '$1'"
    sleep 0.2
  done
  fail "timed out waiting for /$2/ after '$1'"
}

truncate -s 8M "$WORK/blank.img"
vm_start uboot "$(doppel_cmd --firmware "$fw" --kernel "$uboot" --initrd none --disk "$WORK/blank.img")"
vm_wait_for 'Hit any key to stop autoboot'
vm_send ''
vm_wait_for '^=> '
grep -aq 'scanning bus' "$VM_OUT" && fail "autoboot ran: the key did not reach U-Boot"
# U-Boot binds virtio devices on `virtio scan` (its distro boot does the same).
vm_send 'virtio scan; virtio info'
since_cmd 'virtio scan; virtio info' 'Capacity: 8\.0 MB'
since_cmd 'virtio scan; virtio info' 'Device 0: .*VirtIO Block Device'
echo "ok: virtio info lists the disk"
vm_send 'bootefi hello'
since_cmd 'bootefi hello' 'Hello, world!'
echo "ok: bootefi hello"
vm_send 'poweroff'
vm_wait_exit 0
echo "ok: U-Boot prompt, virtio disk, bootefi hello, poweroff exit 0 in $((SECONDS - VM_T0)) s"

# U-Boot's M-mode build as the firmware itself (an ELF, no OpenSBI). The kernel slot holds
# the S-mode build at 0x80200000, which this U-Boot leaves alone.
mmode=/usr/lib/u-boot/qemu-riscv64/uboot.elf
[[ -f $mmode ]] || { echo "note: no $mmode, M-mode U-Boot not tried"; exit 0; }
vm_start mmode "$(doppel_cmd --firmware "$mmode" --kernel "$uboot" --initrd none)"
vm_wait_for 'Hit any key to stop autoboot'
vm_send ''
vm_wait_for '^=> '
grep -aq 'OpenSBI' "$VM_OUT" && fail "OpenSBI ran: the M-mode U-Boot was not the firmware"
vm_send 'poweroff'
vm_wait_exit 0
echo "ok: U-Boot as M-mode firmware (ELF): prompt, poweroff exit 0"
