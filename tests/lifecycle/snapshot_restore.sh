#!/usr/bin/env bash
# Snapshot mid-computation and restore: `cpumark N` runs in the guest; it is paused and
# snapshotted through the API, the original doppel is killed, and `doppel restore` must
# finish the run with exactly the checksum an uninterrupted run prints.
#   snapshot_restore.sh [HARTS]   (default 1)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
guest_dir >/dev/null
harts=${1:-1}
N=${CPUMARK_N:-40}  # long enough to be running at the snapshot under the JIT (0.13-0.3 s an iteration)
want=$(cpumark_reference "$N")
sock=$WORK/api.sock
snap=$WORK/snap

start_cpumark orig "$sock" "$N" --cpus "$harts"
sleep "${SNAP_AFTER:-2}"
ctl "$sock" pause
ctl "$sock" snapshot "$snap"
grep -aq 'CPUMARK-DONE' "$VM_OUT" && fail "cpumark finished before the snapshot: raise CPUMARK_N"
kill_vm
for f in state memory vm.json; do [[ -s $snap/$f ]] || fail "snapshot file $f missing"; done

vm_start restored "$DOPPEL restore $snap"
restored_checksum_is "$want" "the restored run printed"
echo "PASS: snapshot/restore on $harts hart(s): $want"
