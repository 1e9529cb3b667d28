#!/bin/bash
# ctest: in the KVM lab, a 2-vCPU x86_64 guest is paused for 3 s through the API (its
# uptime must not count them), then paused again and snapshotted mid-computation, killed,
# and restored with `doppel restore`; so is a diff snapshot taken 2 s later (restored on top
# of the full one). Each restored guest must finish `cpumark N` with the checksum an
# uninterrupted run prints (computed here, natively: it depends only on N) and
# power off with exit 0.
#   tests/kvm_lab/snapshot_test.sh DOPPEL GUEST_DIR
set -uo pipefail
source "$(dirname "$0")/test_lib.sh"
lab_cpumark "${CPUMARK_N:-40}"
lab_run --script "$here/snapshot_l1.sh" --extra "$tmp/cpumark_n" --timeout 900
expect "LAB: snap original ready" "the original guest booted on 2 vCPUs"
expect "LAB: paused 3 s and resumed" "pause and resume through doppel ctl"
gap=$(grep -o 'uptime across the pause: [0-9.]*' "$out" | awk '{print $5}')
if [ -n "$gap" ] && awk -v g="$gap" 'BEGIN { exit !(g >= 0 && g < 2.5) }'; then
  echo "ok: the guest's uptime moved ${gap} s across a 3 s pause"
else
  echo "FAIL: the guest's uptime moved '${gap}' s across a 3 s pause (it must not count it)"; fail=1
fi
expect "LAB: snap paused" "PATCH /vm Paused through doppel ctl"
expect "LAB: snap info says Paused" "GET / reports the state Paused"
expect "LAB: snap created" "PUT /snapshot/create through doppel ctl"
if grep -q "LAB: snap taken after cpumark ended" "$out"; then
  echo "FAIL: cpumark ended before the snapshot (raise CPUMARK_N)"; fail=1
fi
expect "LAB: snap restored run finished" "the restored guest finished cpumark"
expect "LAB: snap restored shell answers" "the restored guest's shell runs commands"
expect "L2-restored| .*$want" "the restored run's checksum is an uninterrupted run's ($want)"
expect "LAB: snap restore exit=0" "the restored guest powers off with exit 0"
expect "LAB: snap diff created" "PUT /snapshot/create Diff 2 s after the full one"
diff_kib=$(tr -d '\r' <"$out" | grep 'LAB: diff file .*memory.diff' | awk '{print $4}')
full_kib=$(tr -d '\r' <"$out" | grep 'LAB: snap file .*memory$' | awk '{print $4}')
if [ -n "$diff_kib" ] && [ -n "$full_kib" ] && [ "$diff_kib" -lt "$full_kib" ]; then
  echo "ok: the diff holds ${diff_kib} KiB, the full snapshot ${full_kib} KiB"
else
  echo "FAIL: diff '${diff_kib}' KiB is not smaller than the full snapshot's '${full_kib}' KiB"; fail=1
fi
expect "LAB: diff restored run finished" "the guest restored from base + diff finished cpumark"
expect "L2-diff| .*$want" "the base + diff run's checksum is an uninterrupted run's ($want)"
expect "LAB: diff restore exit=0" "the guest restored from base + diff powers off with exit 0"
[ $fail = 0 ] && echo "PASS: KVM snapshot/restore" || echo "FAIL: KVM snapshot/restore"
exit $fail
