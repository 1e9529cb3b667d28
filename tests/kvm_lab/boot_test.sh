#!/bin/bash
# ctest: in the KVM lab, `doppel run --arch x86_64 --engine kvm` boots the guest kit's x86_64
# Linux on 1 and on 2 vCPUs, runs commands fed on stdin, and powers off with exit 0; also a
# reboot (exit 3) and the PVH entry (vmlinux).
#   tests/kvm_lab/boot_test.sh DOPPEL GUEST_DIR
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
doppel=$1 guest_dir=${2:-}
if [ -z "$guest_dir" ] || [ ! -f "$guest_dir/kernel" ]; then
  echo "SKIP: no x86_64 guest kit (guest/build.sh --arch x86_64)"; exit 77
fi
if ! command -v qemu-system-x86_64 >/dev/null; then echo "SKIP: no qemu-system-x86_64"; exit 77; fi
out=$(mktemp)
trap 'rm -f "$out"' EXIT
"$here/lab.sh" --doppel "$doppel" --guest-dir "$guest_dir" --script "$here/boot_l1.sh" \
  --timeout 900 | tee "$out"
status=${PIPESTATUS[0]}
[ "$status" = 0 ] || { echo "FAIL: the lab did not run (status $status)"; exit 1; }
fail=0
expect() {  # pattern description
  if grep -q -- "$1" "$out"; then echo "ok: $2"; else echo "FAIL: $2 (no '$1' in the output)"; fail=1; fi
}
expect "LAB: /dev/kvm ready" "kvm_amd loaded in L1"
for n in 1 2; do
  expect "L2-$n| doppel-guest: ready" "$n vCPU(s): the guest's init reached its readiness line"
  expect "L2-$n| cpus=$n" "$n vCPU(s): the guest sees $n online CPU(s)"
  expect "L2-$n| sum=4950" "$n vCPU(s): the guest's shell ran a pipeline"
  expect "LAB: run $n exit=0" "$n vCPU(s): poweroff -f ends doppel with exit 0"
done
expect "LAB: reboot exit=3" "reboot -f ends doppel with exit 3"
if grep -q "LAB: pvh" "$out"; then
  expect "L2-pvh| doppel-guest: ready" "PVH entry: vmlinux boots"
  expect "LAB: pvh exit=0" "PVH entry: poweroff exit 0"
fi
expect "L2-virtio| hwrng=virtio_rng" "virtio-rng found through virtio_mmio.device="
expect "L2-virtio| rngbytes=16" "virtio-rng answers reads (QueueNotify by ioeventfd, used-buffer IRQ)"
exit $fail
