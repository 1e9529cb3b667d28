#!/bin/bash
# ctest: in the KVM lab, `doppel jail` runs an x86_64 guest on doppel's KVM engine: /dev/kvm
# made in the jail, uid/gid 65534, no capabilities, no_new_privs, its own namespaces, and
# the cgroup /doppel/lab1 on a pure cgroup v2 hierarchy with memory.max, pids.max and cpu.max
# as given (tests/jail and tests/limits cover the riscv64 emulator on this host's hybrid
# hierarchy). L1 runs the jail from a tmpfs root (its initramfs cannot be pivoted away
# from). The guest answers, powers off with exit 0, and the jail and cgroup are gone.
#   tests/kvm_lab/jail_test.sh DOPPEL GUEST_DIR
set -uo pipefail
source "$(dirname "$0")/test_lib.sh"
lab_run --script "$here/jail_l1.sh" --timeout 900
expect "LAB: cgroup2 mounted" "L1 runs a pure cgroup v2 hierarchy"
expect "LAB: jail ready" "the jailed guest booted to its shell"
expect "LAB: jail uid=65534 gid=65534 capeff=0000000000000000 nnp=1" "the VMM runs as 65534/65534, no capabilities, no_new_privs"
expect "LAB: jail kvm=a:e8" "/dev/kvm (10:232) made in the jail"
expect "LAB: jail cgroup=0::/doppel/lab1" "the VMM is in the v2 cgroup /doppel/lab1"
expect "LAB: jail memory.max=536870912 pids.max=64 cpu.max=50000 100000" "memory.max, pids.max and cpu.max as given"
for ns in mnt pid ipc uts; do expect "LAB: jail own $ns namespace" "its own $ns namespace"; done
expect "LAB: jail shell answers" "the guest's shell answers through the jail"
expect "LAB: jail exit=0" "poweroff ends the jailed doppel with exit 0"
expect "LAB: jail checked leftovers" "the lab checked for leftovers"
if grep -q "LAB: jail .* left behind" "$out"; then echo "FAIL: $(grep 'left behind' "$out")"; fail=1; fi
[ $fail = 0 ] && echo "PASS: doppel jail on KVM" || echo "FAIL: doppel jail on KVM"
exit $fail
