#!/usr/bin/env bash
# Diff snapshots: a Full snapshot, the guest runs on, then a Diff snapshot (only the pages
# written since); both directories then move elsewhere together. Restoring the Diff (on its
# base) finishes cpumark with the right checksum; so does the snapshot after
# `doppel snapshot merge` folded the diff into a full one.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
guest_dir >/dev/null
N=${CPUMARK_N:-40}  # long enough to be running at the snapshot under the JIT (0.13-0.3 s an iteration)
want=$(cpumark_reference "$N")
sock=$WORK/api.sock

start_cpumark orig "$sock" "$N"
sleep 1
ctl "$sock" pause
ctl "$sock" snapshot "$WORK/base"
ctl "$sock" resume
sleep 1
ctl "$sock" pause
ctl "$sock" snapshot "$WORK/diff" --diff
grep -aq 'CPUMARK-DONE' "$VM_OUT" && fail "cpumark finished before the snapshot: raise CPUMARK_N"
kill_vm
[[ -s $WORK/diff/memory.diff ]] || fail "no memory.diff"
base_size=$(du -k "$WORK/base/memory" | cut -f1)
diff_size=$(du -k "$WORK/diff/memory.diff" | cut -f1)
(( diff_size < base_size )) || fail "the diff ($diff_size KiB) is not smaller than the base ($base_size KiB)"

# The snapshot tree moves as a whole (to another directory, or another host): the diff
# finds its base by a relative name.
mkdir "$WORK/moved" && mv "$WORK/base" "$WORK/diff" "$WORK/moved/"
vm_start from_diff "$DOPPEL restore $WORK/moved/diff"
restored_checksum_is "$want" "restored from base+diff"

"$DOPPEL" snapshot merge "$WORK/moved/diff" || fail "snapshot merge"
[[ -s $WORK/moved/diff/memory && ! -e $WORK/moved/diff/memory.diff ]] || fail "merge left no full memory file"
rm -rf "$WORK/moved/base"  # the merged snapshot must not need its base any more
vm_start merged "$DOPPEL restore $WORK/moved/diff"
restored_checksum_is "$want" "restored from the merged snapshot"
echo "PASS: diff snapshot (base ${base_size} KiB, diff ${diff_size} KiB) and merge: $want"
