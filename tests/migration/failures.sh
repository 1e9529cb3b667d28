#!/usr/bin/env bash
# Live migration that fails: the VM must run on at the source, with nothing lost.
#  1. the destination is killed mid-transfer (the source is held to 4 MB/s so that there
#     is a middle): `doppel ctl migrate` fails and says why, the guest answers at the
#     source;
#  2. a destination with less RAM refuses the stream with the reason and exits non-zero;
#     the source's guest still answers;
#  3. the source is killed mid-transfer: the destination says the stream ended, exits 1.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
guest_dir >/dev/null
sock=$WORK/api.sock

vm_start src "ip netns exec $HOST_A $DOPPEL --log-level info run --arch riscv64 --api-sock $sock"
vm_wait_ready
wait_sock "$sock"

# 1. The destination dies in the middle.
start_destination
"$DOPPEL" ctl --sock "$sock" migrate "$DEST" --max-bandwidth 4000000 >"$WORK/m1.out" 2>&1 &
ctl_pid=$!
sleep 1.5
kill -9 "$DEST_PID"; wait "$DEST_PID" 2>/dev/null || true; DEST_PID=""
rc=0; wait "$ctl_pid" || rc=$?
cat "$WORK/m1.out"
[[ $rc != 0 ]] || fail "doppel ctl migrate succeeded although the destination was killed"
grep -q 'migrate' "$WORK/m1.out" || fail "the failure does not say it was the migration"
vm_send 'echo ALIVE-""ONE'
vm_wait_for 'ALIVE-ONE'
[[ $("$DOPPEL" ctl --sock "$sock" info) == *'"Running"'* ]] || fail "the source is not Running after a failed migration"

# 2. A destination with half the RAM refuses the VM.
exec 9>&-; rm -f "$WORK/dest.in"
start_destination --memory 128M
rc=0; "$DOPPEL" ctl --sock "$sock" migrate "$DEST" >"$WORK/m2.out" 2>&1 || rc=$?
cat "$WORK/m2.out"
[[ $rc != 0 ]] || fail "a destination with 128 MiB took a 256 MiB VM"
grep -q 'refused the VM.*RAM' "$WORK/m2.out" || fail "the source does not report the destination's reason"
rc=0; wait "$DEST_PID" || rc=$?; DEST_PID=""
[[ $rc != 0 ]] || fail "the destination that refused the VM exited 0"
grep -aq 'RAM' "$WORK/dest.out" || fail "the destination does not say the RAM size differs: $(tail -n 3 "$WORK/dest.out")"
vm_send 'echo ALIVE-""TWO'
vm_wait_for 'ALIVE-TWO'

# 3. The source dies in the middle: the destination says the stream ended and exits 1.
exec 9>&-; rm -f "$WORK/dest.in"
start_destination
"$DOPPEL" ctl --sock "$sock" migrate "$DEST" --max-bandwidth 4000000 >/dev/null 2>&1 &
sleep 1.5
kill -9 "$VM_PID"; wait "$VM_PID" 2>/dev/null || true; VM_PID=""
rc=0; wait "$DEST_PID" || rc=$?; DEST_PID=""
[[ $rc == 1 ]] || fail "the destination exited with $rc when its source died (want 1)"
grep -aq 'migration stream: the connection closed' "$WORK/dest.out" ||
  fail "the destination does not say the stream ended: $(tail -n 3 "$WORK/dest.out")"
echo "PASS: failed migrations leave the VM running at the source; a dead source is reported"
