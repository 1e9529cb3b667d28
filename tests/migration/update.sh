#!/usr/bin/env bash
# Local live update: a VM with shared guest RAM (--memory-shared) moves to another doppel
# binary on the same host over a Unix socket. Its RAM is handed over as a memory file, not
# copied: the report shows no pages sent and the RAM handed over, and `cpumark` started
# before the update prints an uninterrupted run's checksum on the new process. The VM's vsock
# socket path moves with it: the new process listens on the same path once the old one let
# go, and a host program reaches a guest listener through it.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
guest_dir >/dev/null
N=${CPUMARK_N:-40}  # long enough to be running at the switch-over under the JIT (0.13-0.3 s an iteration)
want=$(cpumark_reference "$N")
sock=$WORK/api.sock
DEST=unix:$WORK/update.sock
# "The new binary": a copy of this one, at another path.
cp "$DOPPEL" "$WORK/doppel-new"
OLD_DOPPEL=$DOPPEL
uds=$WORK/vsock.sock
DOPPEL=$WORK/doppel-new start_destination --vsock "cid=3,uds=$uds"
vm_start src "$OLD_DOPPEL --log-level info run --arch riscv64 --memory-shared --vsock cid=3,uds=$uds --api-sock $sock"
vm_wait_ready
wait_sock "$sock"
vm_send 'echo before > /tmp/kept'
vm_send "echo START; cpumark $N; echo CPUMARK-\"\"DONE"
vm_wait_for '^START'
sleep "${MIGRATE_AFTER:-2}"
ctl "$sock" migrate "$DEST"
cat "$WORK/ctl.out"
grep -ah 'migrat' "$VM_OUT" "$WORK/dest.out" || true
grep -q '"shared_memory": true' "$WORK/ctl.out" || fail "the RAM was not handed over: $(cat "$WORK/ctl.out")"
grep -q '"pages_sent": 0,' "$WORK/ctl.out" || fail "pages were copied: $(cat "$WORK/ctl.out")"
source_exited_and_destination_finished "$want"
printf '%s\n' 'cat /tmp/kept; echo KEPT-""DONE' >&9
dest_wait_for 'KEPT-DONE'
grep -aq '^before' "$WORK/dest.out" || fail "a file written before the update is gone"
printf '%s\n' 'echo guest-after-update | vsock listen 7000 >/dev/null & echo "VL-$((6*7))"' >&9
dest_wait_for 'VL-42'
got=$(vsock_host_connect "$uds" 7000 x) || fail "host -> guest vsock after the update"
[[ $got == guest-after-update ]] || fail "host -> guest vsock after the update: got '$got'"
destination_powers_off
echo "PASS: local live update with the RAM and the vsock socket handed over: $want"
