#!/bin/bash
# ctest: in the KVM lab, `doppel run --arch x86_64 --engine kvm` boots the guest kit's x86_64
# Linux on 1 and on 2 vCPUs, runs commands fed on stdin, and powers off with exit 0; also a
# reboot (exit 3), the PVH entry (vmlinux) and virtio-rng; virtio-blk: an ext4 image made
# here is mounted in L2 and written, and its bytes are checked here with debugfs and
# e2fsck, and a read-only disk refuses writes; CPU topology (CPUID, APIC IDs, XSAVE, TSC
# frequency) on 4 and 8 vCPUs, checked inside L2 by tests/kvm_lab/cpu_probe.c.
#   tests/kvm_lab/boot_test.sh DOPPEL GUEST_DIR
set -uo pipefail
source "$(dirname "$0")/test_lib.sh"
for t in mkfs.ext4 debugfs e2fsck gcc cpio; do
  command -v $t >/dev/null || PATH=$PATH:/sbin:/usr/sbin
  command -v $t >/dev/null || { echo "FAIL: $t is not installed (scripts/install-deps)"; exit 1; }
done

# virtio-blk inputs: a writable ext4 image, a read-only one with a marker file, and the
# NVMe disk L1 copies the written image to.
marker="ro-marker-$$"
truncate -s 16M "$tmp/disk.img" && mkfs.ext4 -q -F -L doppel-rw "$tmp/disk.img" &&
  mkdir "$tmp/rodir" && echo "$marker" >"$tmp/rodir/marker.txt" &&
  truncate -s 4M "$tmp/ro.img" && mkfs.ext4 -q -F -L doppel-ro -d "$tmp/rodir" "$tmp/ro.img" &&
  truncate -s 16M "$tmp/out.img" || { echo "FAIL: cannot make the ext4 images"; exit 1; }
ro_md5=$(md5sum <"$tmp/ro.img")
# The CPU probe, static, appended to the guest kit's initrd in L1 as /usr/bin/cpu_probe.
mkdir -p "$tmp/probe/usr/bin" &&
  gcc -static -O2 -ffp-contract=off -o "$tmp/probe/usr/bin/cpu_probe" "$here/cpu_probe.c" &&
  (cd "$tmp/probe" && find . | cpio -o -H newc --quiet | gzip -1) >"$tmp/probe.cpio.gz" ||
  { echo "FAIL: cannot build the CPU probe"; exit 1; }

lab_run --script "$here/boot_l1.sh" --extra "$tmp/disk.img" --extra "$tmp/ro.img" \
  --extra "$tmp/probe.cpio.gz" --out-disk "$tmp/out.img" --timeout 900
check() {  # condition-status description
  if [ "$1" = 0 ]; then echo "ok: $2"; else echo "FAIL: $2"; fail=1; fi
}
expect "LAB: /dev/kvm ready" "kvm_amd loaded in L1"
for n in 1 2; do
  expect "L2-$n| doppel-guest: ready" "$n vCPU(s): the guest's init reached its readiness line"
  expect "L2-$n| cpus=$n" "$n vCPU(s): the guest sees $n online CPU(s)"
  expect "L2-$n| sum=4950" "$n vCPU(s): the guest's shell ran a pipeline"
  expect "LAB: run $n exit=0" "$n vCPU(s): poweroff -f ends doppel with exit 0"
done
# KVM 6.1 leaves CPUID.1:ECX[24] to userspace; doppel sets it where KVM has the timer.
expect "L2-1| .*TSC deadline timer available" "the guest uses KVM's TSC-deadline timer"
expect "LAB: reboot exit=3" "reboot -f ends doppel with exit 3"
expect "LAB: triple fault exit=3" "a triple fault (reboot=t) ends doppel with exit 3"
expect "L2-triple| .*triple-faulted" "a triple fault is reported as such"
if grep -q "LAB: pvh" "$out"; then
  expect "L2-pvh| doppel-guest: ready" "PVH entry: vmlinux boots"
  expect "LAB: pvh exit=0" "PVH entry: poweroff exit 0"
fi
expect "L2-virtio| hwrng=virtio_rng" "virtio-rng found through virtio_mmio.device="
expect "L2-virtio| rngbytes=16" "virtio-rng answers reads (QueueNotify by ioeventfd, used-buffer IRQ)"

# virtio-blk: the guest's view, then the bytes on this side.
expect "L2-blk| blk-mounted-rw" "virtio-blk: the host-made ext4 image mounts read-write"
expect "L2-blk| blk-umounted" "virtio-blk: unmount (flush) succeeds"
expect "L2-blk| blk-ro-sysfs=1" "virtio-blk: the ,ro disk is read-only in the guest"
expect "L2-blk| blk-ro-marker=$marker" "virtio-blk: the read-only disk's file reads back"
expect "L2-blk| blk-ro-fs=refused" "virtio-blk: the read-only filesystem refuses a new file"
expect "L2-blk| blk-ro-dev=refused" "virtio-blk: the read-only device refuses a raw write"
expect "LAB: blk exit=0" "virtio-blk run: poweroff exit 0"
expect "LAB: blk ro image unchanged" "virtio-blk: the read-only image's bytes are unchanged"
expect "LAB: blk image copied out" "virtio-blk: L1 copied the written image out"
hello=$(debugfs -R "cat /hello.txt" "$tmp/out.img" 2>/dev/null)
[ "$hello" = "hello-from-l2" ]; check $? "virtio-blk: /hello.txt on the host reads '$hello'"
want=$(seq 1 30000 | md5sum)
got=$(debugfs -R "cat /dir/seq.txt" "$tmp/out.img" 2>/dev/null | md5sum)
[ "$got" = "$want" ]; check $? "virtio-blk: /dir/seq.txt (30000 lines) has the right bytes on the host"
expect "L2-blk| blk-seq-md5=${want%% *}" "virtio-blk: the guest read back the same bytes it wrote"
e2fsck -fn "$tmp/out.img" >"$tmp/fsck.out" 2>&1
rc=$?; check $rc "virtio-blk: e2fsck -fn is clean"
[ $rc = 0 ] || cat "$tmp/fsck.out"
[ "$(md5sum <"$tmp/ro.img")" = "$ro_md5" ]; check $? "virtio-blk: the host's read-only image is untouched"

# CPU topology, FPU state and TSC frequency on 4 and 8 vCPUs.
for n in 4 8; do
  expect "L2-cpus$n| probe: $n cpus, topology ok" "$n vCPUs: CPUID leaves 0x1/0x4/0xb/0x1f/AMD and APIC IDs (cpu_probe)"
  expect "L2-cpus$n| probe: fpu ok" "$n vCPUs: floating-point state survives context switches on every CPU"
  if grep -q "L2-cpus$n| probe: xsave ok" "$out"; then
    echo "ok: $n vCPUs: XCR0 and the XSAVE area size (CPUID 0xd) agree"
  elif grep -q "L2-cpus$n| probe: xsave not enabled" "$out" &&
       grep -q "L2-cpus$n| .*XSAVE consistency problem: size 832 != kernel_size 576" "$out"; then
    # Under QEMU's TCG, L1's KVM keeps reporting the XSAVE size for XCR0 = x87|SSE after
    # the guest enabled AVX, so Linux falls back to FXSAVE. QEMU microvm in the same lab
    # logs the same warning (bench/kvm/run.sh shows it): the lab's, not doppel's.
    echo "note: $n vCPUs: XSAVE off in the lab (its known CPUID 0xd.0 EBX artifact); FXSAVE checked above"
  else
    echo "FAIL: $n vCPUs: XSAVE: neither consistent nor the lab's known artifact"; fail=1
  fi
  expect "L2-cpus$n| topo-packages=1/0" "$n vCPUs: Linux sees one package (ID 0)"
  expect "L2-cpus$n| topo-cores=$n" "$n vCPUs: Linux sees $n distinct cores"
  expect "L2-cpus$n| topo-threads=$n" "$n vCPUs: one thread per core"
  expect "LAB: cpus$n exit=0" "$n vCPUs: poweroff exit 0"
  # The guest's TSC frequency (from kvmclock) is the one KVM runs its TSC at.
  host_khz=$(sed -n "s/^L2-cpus$n| .*guest TSC at \([0-9]*\) kHz.*/\1/p" "$out" | head -1)
  guest_khz=$(sed -n "s/^L2-cpus$n| .*tsc: Detected \([0-9]*\)\.\([0-9]\{3\}\) MHz.*/\1\2/p" "$out" | head -1)
  if [ -n "$host_khz" ] && [ -n "$guest_khz" ] &&
     [ $(( (guest_khz - host_khz) * 1000 / host_khz )) -eq 0 ]; then
    echo "ok: $n vCPUs: the guest's TSC frequency ($guest_khz kHz) is KVM's ($host_khz kHz)"
  else
    echo "FAIL: $n vCPUs: TSC frequency: guest '$guest_khz' kHz, KVM '$host_khz' kHz"; fail=1
  fi
done
grep "probe: FAIL" "$out" | head -20
exit $fail
