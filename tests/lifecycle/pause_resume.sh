#!/usr/bin/env bash
# Pause and resume through the API: a guest prints a counter with its uptime every 100 ms.
# While paused nothing is printed and the guest's uptime does not advance by the paused
# time; after resume the counter goes on from where it stopped.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
guest_dir >/dev/null
sock=$WORK/api.sock

vm_start pr "$(doppel_cmd --api-sock "$sock")"
vm_wait_ready
wait_sock "$sock"
vm_send '(i=0; while [ $i -lt 100000 ]; do read up _ </proc/uptime; echo "tick $i $up"; i=$((i+1)); usleep 100000; done) &'
ticks() { grep -ao 'tick [0-9]* [0-9.]*' "$VM_OUT" || true; }
vm_wait_for 'tick 10 '

ctl "$sock" pause
ctl "$sock" info
grep -q '"state": "Paused"' "$WORK/ctl.out" || fail "info after pause: $(cat "$WORK/ctl.out")"
before=$(ticks | wc -l)
last_up=$(ticks | tail -n 1 | awk '{print $3}')
sleep 3
after=$(ticks | wc -l)
[[ $before == "$after" ]] || fail "the paused guest printed $((after - before)) lines"

ctl "$sock" resume
next=$((before + 5))
vm_wait_for "tick $next "
# The first line after the pause: its uptime is a tick or so after the last one before,
# not 3 s later.
first_up=$(ticks | sed -n "$((before + 1))p" | awk '{print $3}')
gap=$(awk -v a="$last_up" -v b="$first_up" 'BEGIN { printf "%.2f", b - a }')
awk -v g="$gap" 'BEGIN { exit !(g >= 0 && g < 1.5) }' ||
  fail "guest uptime moved ${gap}s across a 3 s pause (it must not count the paused time)"
# The counter went on without a gap.
ticks | grep -q "^tick $before " || fail "tick $before missing after resume"

ctl "$sock" metrics
grep -q '"pause_ms"' "$WORK/ctl.out" || fail "metrics without pause_ms"
vm_send 'poweroff -f'
vm_wait_exit 0
echo "PASS: pause/resume (uptime gap across a 3 s pause: ${gap}s)"
