#!/usr/bin/env bash
# virtio-rng: /dev/hwrng yields data, and two reads differ.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
guest_dir >/dev/null

vm_start rng "$(doppel_cmd)"
vm_wait_ready
vm_send 'echo "rng-name $(cat /sys/class/misc/hw_random/rng_current)"'
vm_send 'echo "rng-a $(dd if=/dev/hwrng bs=64 count=1 2>/dev/null | hexdump -v -e "16/1 \"%02x\"")"'
vm_send 'echo "rng-b $(dd if=/dev/hwrng bs=64 count=1 2>/dev/null | hexdump -v -e "16/1 \"%02x\"")"'
vm_send 'echo DONE-RNG'
vm_wait_for 'DONE-RNG'
vm_send 'poweroff -f'
vm_wait_exit 0

grep -aq 'rng-name virtio_rng' "$VM_OUT" || fail "virtio_rng is not the current hw_random"
a=$(grep -ao 'rng-a [0-9a-f]*' "$VM_OUT" | tail -n1 | cut -d' ' -f2)
b=$(grep -ao 'rng-b [0-9a-f]*' "$VM_OUT" | tail -n1 | cut -d' ' -f2)
[[ ${#a} == 128 && ${#b} == 128 ]] || fail "expected 64 bytes of hex from /dev/hwrng, got '$a' / '$b'"
[[ $a != "$b" ]] || fail "two reads of /dev/hwrng were identical"
[[ $a != $(printf '0%.0s' {1..128}) ]] || fail "/dev/hwrng returned zeroes"
echo "PASS: virtio-rng"
