#!/usr/bin/env bash
# Disk rate limits: the guest writes to a disk limited to 10 MB/s (bw=2000000/200: 2 MB per
# 200 ms, a bucket larger than the guest's largest request, about 1 MiB) with dd (1 MiB
# blocks, O_DIRECT: the guest's page cache neither absorbs nor delays them), and does
# 4 KiB O_DIRECT writes, one request each, to a disk limited to 200 requests/s
# (ops=20/100). Each rate, measured by the guest's clock over ~15 s (the buckets' initial
# fill is 1.3% and 0.7% of it), must be the limit within 15%. Unlimited, the same guest
# writes at about 55 MB/s on the development machine. Then a PATCH /drives/0 (the API)
# lowers the bandwidth to 5 MB/s (a 1 MB bucket: the guest's requests are 512 KiB now), and
# the next dd must run at that rate, and again after a snapshot and a restore.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
guest_dir >/dev/null
bw_mib=${BW_MIB:-150}      # 157 MB: ~15.7 s at 10 MB/s
ops=${OPS_COUNT:-3000}     # ~15 s at 200/s
patch_mib=${PATCH_MIB:-50}  # ~10.5 s at 5 MB/s

# Filled with 0xff, so that the zeroes the guest writes show on the host.
head -c 200M /dev/zero | tr '\0' '\377' >"$WORK/bw.img"
head -c 64M /dev/zero | tr '\0' '\377' >"$WORK/ops.img"
sock=$WORK/api.sock
vm_start rate "$(doppel_cmd --disk "$WORK/bw.img,bw=2000000/200" --disk "$WORK/ops.img,ops=20/100" --api-sock "$sock")"
vm_wait_ready
# Which vdX is which: by size (200 MiB = 409600 sectors).
vm_send 'for d in vda vdb; do if [ $(cat /sys/block/$d/size) = 409600 ]; then BW=$d; else OPS=$d; fi; done; echo "DISKS bw=$BW ops=$OPS"'
vm_wait_for 'DISKS bw=vd[ab] ops=vd[ab]'
vm_send "read a _ </proc/uptime; dd if=/dev/zero of=/dev/\$BW bs=1M count=$bw_mib oflag=direct 2>/dev/null && echo BW-OK; read b _ </proc/uptime; echo \"BW-TIME \$a \$b\""
vm_wait_for 'BW-TIME [0-9]'
grep -aq BW-OK "$VM_OUT" || fail "dd to the bandwidth-limited disk failed"
vm_send "read a _ </proc/uptime; dd if=/dev/zero of=/dev/\$OPS bs=4096 count=$ops oflag=direct 2>/dev/null && echo OPS-OK; read b _ </proc/uptime; echo \"OPS-TIME \$a \$b\""
vm_wait_for 'OPS-TIME [0-9]'
grep -aq OPS-OK "$VM_OUT" || fail "dd oflag=direct to the ops-limited disk failed"
# PATCH on the running VM (Firecracker's API; the command line's first disk is "0"): the
# bandwidth bucket becomes 5 MB/s, and the next dd runs at that rate.
need curl
status=$(curl -s -o "$WORK/patch.out" -w '%{http_code}' --unix-socket "$sock" -X PATCH http://localhost/drives/0 \
  -d '{"drive_id": "0", "rate_limiter": {"bandwidth": {"size": 1000000, "refill_time": 200}}}')
[[ $status == 204 ]] || fail "PATCH /drives/0: HTTP $status $(cat "$WORK/patch.out")"
vm_send "read a _ </proc/uptime; dd if=/dev/zero of=/dev/\$BW bs=512k count=$((patch_mib * 2)) oflag=direct 2>/dev/null && echo PATCHED-OK; read b _ </proc/uptime; echo \"PATCHED-TIME \$a \$b\""
vm_wait_for 'PATCHED-TIME [0-9]'
grep -aq PATCHED-OK "$VM_OUT" || fail "dd after the PATCH failed"
check_rate "disk bandwidth" "$((bw_mib * 1048576))" "$(guest_elapsed BW-TIME)" 10000000 B
check_rate "disk ops" "$ops" "$(guest_elapsed OPS-TIME)" 200 requests
check_rate "disk bandwidth after PATCH" "$((patch_mib * 1048576))" "$(guest_elapsed PATCHED-TIME)" 5000000 B

# The PATCHed limit is part of the VM's state (rule 9): snapshot, kill, restore, and the
# restored VM's configuration and its next dd show 5 MB/s, not the 10 MB/s it booted with.
ctl "$sock" pause
ctl "$sock" snapshot "$WORK/snap"
kill_vm
rm -f "$sock"
vm_start restored "$DOPPEL restore $WORK/snap --api-sock $sock"
wait_sock "$sock"
status=$(curl -s -o "$WORK/config.out" -w '%{http_code}' --unix-socket "$sock" http://localhost/vm/config)
[[ $status == 200 ]] || fail "GET /vm/config after the restore: HTTP $status"
python3 - "$WORK/config.out" <<'PY' || fail "GET /vm/config after the restore: $(cat "$WORK/config.out")"
import json, sys
bw = json.load(open(sys.argv[1]))["disks"][0]["rate_limiter"]["bandwidth"]
assert (bw["size"], bw["refill_time"]) == (1000000, 200), bw
PY
vm_send "read a _ </proc/uptime; dd if=/dev/zero of=/dev/\$BW bs=512k count=$((patch_mib * 2)) oflag=direct 2>/dev/null && echo RESTORED-OK; read b _ </proc/uptime; echo \"RESTORED-TIME \$a \$b\""
vm_wait_for 'RESTORED-TIME [0-9]'
grep -aq RESTORED-OK "$VM_OUT" || fail "dd after the restore failed"
vm_send 'poweroff -f'
vm_wait_exit 0
check_rate "disk bandwidth after a snapshot and restore" "$((patch_mib * 1048576))" "$(guest_elapsed RESTORED-TIME)" 5000000 B

# Nothing dropped: the host files hold every byte written.
cmp -s -n "$((bw_mib * 1048576))" "$WORK/bw.img" /dev/zero || fail "bw.img: not every block the guest wrote is there"
cmp -s -n "$((ops * 4096))" "$WORK/ops.img" /dev/zero || fail "ops.img: not every block the guest wrote is there"
echo "PASS: disk bandwidth and ops limits, and a PATCHed bandwidth limit (kept across a snapshot and restore), hold within ${TOLERANCE_PCT}%"
