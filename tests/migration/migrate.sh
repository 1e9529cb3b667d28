#!/usr/bin/env bash
# Live migration between two network-namespace "hosts": `cpumark N` runs in the guest on
# host A; it is migrated over TCP to a doppel waiting on host B (`doppel ctl migrate`);
# the source exits 0, and the destination finishes the run with exactly the checksum of an
# uninterrupted run, then powers off with exit 0.
#   migrate.sh [HARTS] [MODE]    (default 1 hart; MODE dirty: a loop in the guest also
#                                 rewrites a 64 MiB file in tmpfs, its RAM, as fast as it can;
#                                 zstd: pages go compressed; progress: at 40 MB/s, GET /migrate
#                                 is polled during the migration and ctl's progress lines
#                                 are checked)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
guest_dir >/dev/null
harts=${1:-1}
mode=${2:-}
N=${CPUMARK_N:-40}  # long enough to be running at the switch-over under the JIT (0.13-0.3 s an iteration)
want=$(cpumark_reference "$N")
sock=$WORK/api.sock

start_destination --cpus "$harts"
vm_start src "ip netns exec $HOST_A $DOPPEL --log-level info run --arch riscv64 --cpus $harts --api-sock $sock"
vm_wait_ready
wait_sock "$sock"
if [[ $mode == dirty ]]; then
  vm_send 'mkdir -p /tmp/d; (while :; do i=0; while [ $i -lt 40 ]; do cat /bin/busybox; i=$((i+1)); done > /tmp/d/x; done) &'
fi
vm_send "echo START; cpumark $N; echo CPUMARK-\"\"DONE"
vm_wait_for '^START'
sleep "${MIGRATE_AFTER:-2}"
case $mode in
  zstd) ctl "$sock" migrate "$DEST" --compress ;;
  progress)
    ctl "$sock" migrate "$DEST" --max-bandwidth 40000000 &
    ctl_pid=$!
    active=""
    for ((i = 0; i < 100; i++)); do
      status=$(curl -s --unix-socket "$sock" http://localhost/migrate || true)
      if [[ $status == *'"status":"active"'* && $status != *'"bytes_sent":0,'* ]]; then active=$status; break; fi
      sleep 0.05
    done
    wait "$ctl_pid" || fail "doppel ctl migrate failed: $(cat "$WORK/ctl.out")"
    [[ -n $active ]] || fail "GET /migrate never showed the migration under way"
    echo "GET /migrate during the migration: $active"
    grep -q '^round 1: [0-9]*/65536 pages' "$WORK/ctl.out" || fail "no progress line for round 1 in: $(cat "$WORK/ctl.out")"
    ;;
  *) ctl "$sock" migrate "$DEST" ;;
esac
cat "$WORK/ctl.out"
grep -ah 'migrat' "$VM_OUT" "$WORK/dest.out" || true
grep -q '"downtime_ms"' "$WORK/ctl.out" || fail "doppel ctl migrate printed no report"
source_exited_and_destination_finished "$want"
destination_powers_off
echo "PASS: live migration on $harts hart(s)${mode:+ ($mode)}: $want"
