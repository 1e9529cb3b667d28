#!/bin/bash
# ctest: in the KVM lab, the hostile guest program (guest/programs/hostile.c) on doppel's
# KVM engine: the x86_64 kit with 2 vCPUs and every virtio device writes random values to
# every virtio-mmio register and the 16550 and i8042 ports, and publishes random virtqueues,
# for HOSTILE_SECONDS (default 20, seed HOSTILE_SEED, default 0x5eed; HOSTILE_RUN_ARGS: more
# `doppel run` options); doppel must keep
# answering its API, log no sanitizer or assertion failure, and exit 0 when the guest powers
# off after the program's final line.
#   tests/kvm_lab/hostile_test.sh DOPPEL GUEST_DIR
set -uo pipefail
source "$(dirname "$0")/test_lib.sh"
secs=${HOSTILE_SECONDS:-20} seed=${HOSTILE_SEED:-0x5eed}
[ "$seed" = random ] && seed=$(printf '%#x' $(( (RANDOM << 30) ^ (RANDOM << 15) ^ RANDOM )))
grep -q '^CONFIG_DEVMEM=y' "$guest_dir/config" ||
  { echo "SKIP: the x86_64 guest kit in $guest_dir has no /dev/mem (rebuild it)"; exit 77; }
echo "$secs $seed ${HOSTILE_RUN_ARGS:-}" >"$tmp/hostile_args"
lab_run --script "$here/hostile_l1.sh" --extra "$tmp/hostile_args" --smp 2 --timeout $((secs * 20 + 900))
expect "LAB: /dev/kvm ready" "kvm_amd loaded in L1"
expect "L2-hostile| hostile: seed $seed" "the program started with seed $seed"
expect "L2-hostile| hostile: virtio at 0xd0000000" "it found the virtio-mmio devices on the command line"
expect "L2-hostile| hostile: done [0-9]* writes [0-9]* notifies" "it ran ${secs} s and printed its final line"
expect "LAB: hostile exit=0" "doppel exited 0 when the guest powered off"
expect "LAB: hostile api asked=[0-9]* answered=[1-9][0-9]* unanswered=0" "the API answered every question during the run"
if grep -E "AddressSanitizer|runtime error:|Assertion .* failed|terminate called" "$out"; then
  echo "FAIL: doppel's log reports a sanitizer or assertion failure"; fail=1
fi
[ $fail = 0 ] && echo "PASS: hostile guest on KVM (seed $seed)" || echo "FAIL: hostile guest on KVM (seed $seed)"
exit $fail
