#!/usr/bin/env bash
# Clones: 4 VMs restored at once from one snapshot (each maps the memory file privately,
# so they share its page cache) all finish cpumark with the right checksum. Each clone
# gets its own copy of the snapshot's disk (`doppel restore --disk`) and writes its name
# to it: every copy holds its own clone's name, and the original disk is untouched.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
guest_dir >/dev/null
N=${CPUMARK_N:-40}  # long enough to be running at the snapshot under the JIT (0.13-0.3 s an iteration)
clones=${CLONES:-4}
want=$(cpumark_reference "$N")
sock=$WORK/api.sock
snap=$WORK/snap
truncate -s 1M "$WORK/orig.img"

start_cpumark orig "$sock" "$N" --disk "$WORK/orig.img"
sleep 1
ctl "$sock" pause
ctl "$sock" snapshot "$snap"
grep -aq 'CPUMARK-DONE' "$VM_OUT" && fail "cpumark finished before the snapshot: raise CPUMARK_N"
kill_vm

pids=()
for i in $(seq 1 "$clones"); do
  cp "$WORK/orig.img" "$WORK/clone$i.img"
  mkfifo "$WORK/clone$i.in"
  "$DOPPEL" restore "$snap" --id "clone-$i" --disk "$WORK/clone$i.img" \
    <"$WORK/clone$i.in" >"$WORK/clone$i.out" 2>&1 &
  pids+=($!)
  exec {fd}>"$WORK/clone$i.in"
  # Queued behind cpumark at the clone's shell.
  printf '%s\n' "echo clone-$i-disk | dd of=/dev/vda conv=fsync 2>/dev/null; echo WROTE-\"\"$i; poweroff -f" >&$fd
done
stop_clones() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap 'stop_clones; cleanup' EXIT
for i in $(seq 1 "$clones"); do
  rc=0
  for ((t = 0; t < VM_TIMEOUT * 5; t++)); do kill -0 "${pids[i - 1]}" 2>/dev/null || break; sleep 0.2; done
  wait "${pids[i - 1]}" || rc=$?
  [[ $rc == 0 ]] || { tail -n 20 "$WORK/clone$i.out" >&2; fail "clone $i exited with $rc"; }
  got=$(checksum_in "$WORK/clone$i.out")
  [[ $got == "$want" ]] || { tail -n 20 "$WORK/clone$i.out" >&2; fail "clone $i printed '$got', want '$want'"; }
  grep -aq "WROTE-$i" "$WORK/clone$i.out" || fail "clone $i did not write its disk"
  [[ $(head -c 12 "$WORK/clone$i.img") == "clone-$i-disk" ]] || fail "clone$i.img does not hold clone $i's name"
done
cmp -s "$WORK/orig.img" <(head -c 1M /dev/zero) || fail "a clone wrote to the original disk"
echo "PASS: $clones clones from one snapshot, each: $want, each on its own disk"
