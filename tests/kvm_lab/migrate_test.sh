#!/bin/bash
# ctest: in the KVM lab, a 2-vCPU x86_64 guest running `cpumark N` is migrated live from one
# doppel to another over TCP, then moved again by a local live update (shared RAM handed
# over a Unix socket). Each source must exit 0, and the last destination must finish the
# run with the checksum an uninterrupted run prints (computed here, natively) and power off
# with exit 0.
#   tests/kvm_lab/migrate_test.sh DOPPEL GUEST_DIR
set -uo pipefail
source "$(dirname "$0")/test_lib.sh"
lab_cpumark "${CPUMARK_N:-40}"
lab_run --script "$here/migrate_l1.sh" --extra "$tmp/cpumark_n" --timeout 900
expect "LAB: mig source ready" "the source guest booted on 2 vCPUs"
expect "LAB: mig tcp migrated" "doppel ctl migrate tcp: succeeded"
expect "LAB: mig source exit=0" "the source exited 0 once the destination ran"
expect 'ctl-tcp|   "rounds": [1-9]' "the TCP migration copied RAM in rounds"
expect "LAB: mig local migrated" "doppel ctl migrate unix: (local live update) succeeded"
expect 'ctl-local|   "shared_memory": true' "the local update handed the RAM over"
expect 'ctl-local|   "pages_sent": 0,' "the local update copied no pages"
expect "LAB: mig tcp exit=0" "the first destination exited 0 after the update"
for late in "migrated after cpumark ended" "updated after cpumark ended"; do
  if grep -q "LAB: mig $late" "$out"; then echo "FAIL: cpumark ended before it was $late (raise CPUMARK_N)"; fail=1; fi
done
expect "LAB: mig run finished" "the last destination finished cpumark"
expect "L2-local| .*$want" "its checksum is an uninterrupted run's ($want)"
expect "LAB: mig shell answers" "its shell runs commands"
expect "LAB: mig local exit=0" "it powers off with exit 0"
grep 'ctl-\(tcp\|local\)|   "\(downtime_ms\|total_ms\|bytes_sent\)"' "$out" || true
[ $fail = 0 ] && echo "PASS: KVM live migration" || echo "FAIL: KVM live migration"
exit $fail
