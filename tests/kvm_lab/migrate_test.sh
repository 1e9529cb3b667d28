#!/bin/bash
# ctest: in the KVM lab, a 2-vCPU x86_64 guest running `cpumark N` is migrated live from one
# doppel to another over TCP, then moved again by a local live update (shared RAM handed
# over a Unix socket). Each source must exit 0, and the last destination must finish the
# run with the checksum an uninterrupted run prints (computed here, natively) and power off
# with exit 0.
#   tests/kvm_lab/migrate_test.sh DOPPEL GUEST_DIR
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
doppel=$1 guest_dir=${2:-}
if [ -z "$guest_dir" ] || [ ! -f "$guest_dir/kernel" ]; then
  echo "SKIP: no x86_64 guest kit (guest/build.sh --arch x86_64)"; exit 77
fi
if ! command -v qemu-system-x86_64 >/dev/null; then echo "SKIP: no qemu-system-x86_64"; exit 77; fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
n=${CPUMARK_N:-40}
echo "$n" >"$tmp/cpumark_n"
gcc -O2 -ffp-contract=off -o "$tmp/cpumark" "$here/../../guest/programs/cpumark.c" -lm ||
  { echo "FAIL: cannot build cpumark"; exit 1; }
want=$("$tmp/cpumark" "$n" | grep -o 'checksum 0x[0-9a-f]*')
out=$tmp/lab.out
"$here/lab.sh" --doppel "$doppel" --guest-dir "$guest_dir" --script "$here/migrate_l1.sh" \
  --extra "$tmp/cpumark_n" --timeout 900 | tee "$out"
status=${PIPESTATUS[0]}
[ "$status" = 0 ] || { echo "FAIL: the lab did not run (status $status)"; exit 1; }
fail=0
expect() {  # pattern description
  if grep -q -- "$1" "$out"; then echo "ok: $2"; else echo "FAIL: $2 (no '$1' in the output)"; fail=1; fi
}
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
