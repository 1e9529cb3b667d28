#!/bin/bash
# Resource limits (issue 14 part 3): a VM's --cpu-quota, --memory-limit, --io-limit and
# --pids-limit read back from its cgroup while it runs; the cgroup is gone after it; a guest
# that allocates beyond --memory-limit is ended with a report (exit 6) while a second VM keeps
# running; a VM capped at 25% of a CPU gets 25% +-5% over 10 s while an uncapped one spins
# next to it, measured from the cgroup's own CPU accounting.
# A snapshot of a limited VM is restored under the same limits.
# Usage: limits_test.sh DOPPEL [readback|oom|restore|cpu]... (default: all)
set -u
DOPPEL=${1:-$(cd "$(dirname "$0")/../.." && pwd)/build/doppel}
shift
PARTS=" ${*:-readback oom restore cpu} "
part() { [[ $PARTS == *" $1 "* ]]; }
source "$(dirname "$0")/../virtio_guest/lib.sh"
source "$(dirname "$0")/cglib.sh"
trap 'vkill_all; cleanup' EXIT
[[ -x $DOPPEL ]] || skip "$DOPPEL not built"
guest_dir >/dev/null
cg_detect

run_vm() { local name=$1; shift; vstart "$name" "$DOPPEL" run --arch riscv64 --id "$name" "$@"; }
check() { # FILE EXPECTED
  local got; got=$(cat "$1" 2>&1)
  [[ $got == "$2" ]] || fail "$1: '$got', expected '$2'"
  echo "ok: $1 = $2"
}

# --- 1. values read back from the cgroup files while the VM runs -------------------------
if part readback; then
truncate -s 16M "$WORK/disk.img"
run_vm lim --cpu-quota 50% --memory-limit 512M --pids-limit 64 --io-limit bw=10M,iops=1000 \
  --disk "$WORK/disk.img"
vwait lim 'doppel-guest: ready'
sup=${VPID[lim]}
cg=/doppel/lim-$sup
vmm=$(pgrep -P "$sup" | head -1)
[[ -n $vmm ]] || fail "no VMM process under the supervisor $sup"
dev=$(stat -c '%Hd:%Ld' "$WORK/disk.img")
[[ -e /sys/dev/block/$dev/partition ]] && dev=$(cat "/sys/dev/block/$dev/../dev")
if [[ $CG_MODE == v1 ]]; then
  check "$(cg_dir cpu $cg)/cpu.cfs_period_us" 100000
  check "$(cg_dir cpu $cg)/cpu.cfs_quota_us" 50000
  check "$(cg_dir memory $cg)/memory.limit_in_bytes" 536870912
  check "$(cg_dir pids $cg)/pids.max" 64
  check "$(cg_dir blkio $cg)/blkio.throttle.read_bps_device" "$dev 10485760"
  check "$(cg_dir blkio $cg)/blkio.throttle.write_bps_device" "$dev 10485760"
  check "$(cg_dir blkio $cg)/blkio.throttle.read_iops_device" "$dev 1000"
  check "$(cg_dir blkio $cg)/blkio.throttle.write_iops_device" "$dev 1000"
  threads_file=$(cg_dir cpu $cg)/tasks
else
  check "$(cg_dir cpu $cg)/cpu.max" "50000 100000"
  check "$(cg_dir memory $cg)/memory.max" 536870912
  check "$(cg_dir pids $cg)/pids.max" 64
  check "$(cg_dir io $cg)/io.max" "$dev rbps=10485760 wbps=10485760 riops=1000 wiops=1000"
  threads_file=$(cg_dir cpu $cg)/cgroup.threads
fi
grep -qx "$vmm" "$(cg_dir cpu $cg)/cgroup.procs" || fail "the VMM $vmm is not in $cg"
grep -qx "$sup" "$(cg_dir cpu $cg)/cgroup.procs" && fail "the supervisor $sup is inside $cg"
# Every thread of the VMM (vCPU, devices, console) is in it.
for t in $(ls "/proc/$vmm/task"); do grep -qx "$t" "$threads_file" || fail "thread $t of $vmm is not in $cg"; done
echo "ok: the VMM and its $(ls /proc/$vmm/task | wc -l) threads are in $cg, its supervisor is not"
vsend lim 'poweroff -f'
vexit lim; rc=$VRC; [[ $rc == 0 ]] || fail "lim: exit code $rc, expected 0"
[[ ! -e $(cg_dir cpu $cg) && ! -e $(cg_dir memory $cg) ]] || fail "$cg left behind"
echo "ok: $cg removed after the VM's poweroff"
fi

# --- 2. beyond --memory-limit: this VM alone ends, with a report --------------------------
if part oom; then
run_vm hog --memory 512M --memory-limit 160M
run_vm calm --memory 128M
vwait hog 'doppel-guest: ready'
vwait calm 'doppel-guest: ready'
hog_cg=/doppel/hog-${VPID[hog]}
# The guest has the RAM; the host process may not have it: the initramfs grows until the
# kernel's OOM killer ends the VMM.
vsend hog 'dd if=/dev/zero of=/fill bs=1M count=400; echo dd-$((1+1))-finished'
vexit hog; rc=$VRC
[[ $rc == 6 ]] || { tail -5 "$WORK/hog.out" >&2; fail "hog: exit code $rc, expected 6 (OOM)"; }
grep -aq "VM 'hog' was ended by the kernel's OOM killer: it exceeded its memory limit of 160M" "$WORK/hog.out" ||
  { tail -5 "$WORK/hog.out" >&2; fail "hog: no OOM report"; }
grep -aq dd-2-finished "$WORK/hog.out" && fail "hog: the guest finished writing 400M within 160M"
echo "ok: hog ended (exit 6): $(grep -a "OOM killer" "$WORK/hog.out" | tr -d '\r')"
[[ ! -e $(cg_dir memory $hog_cg) ]] || fail "$hog_cg left behind"
vsend calm 'echo calm-alive-$((6*7))'
vwait calm 'calm-alive-42' 60
vsend calm 'poweroff -f'
vexit calm; rc=$VRC; [[ $rc == 0 ]] || fail "calm: exit code $rc, expected 0"
echo "ok: the other VM kept running and powered off (exit 0)"
fi

# --- 3. a restored VM keeps its limits -----------------------------------------------------
if part restore; then
need curl
run_vm orig --memory 128M --memory-limit 300M --pids-limit 100 --api-sock "$WORK/orig.sock"
vwait orig 'doppel-guest: ready'
r=$(curl -s --unix-socket "$WORK/orig.sock" -X PATCH http://localhost/vm -d '{"state": "Paused"}' -w '%{http_code}')
[[ $r == 204 ]] || fail "pause: $r"
"$DOPPEL" ctl --sock "$WORK/orig.sock" snapshot "$WORK/snap" >/dev/null || fail "snapshot"
kill "${VPID[orig]}"; vexit orig
vstart restored "$DOPPEL" restore "$WORK/snap" --id restored
rcg=/doppel/restored-${VPID[restored]}
# The restored guest says nothing until spoken to: wait for its cgroup.
for ((i = 0; i < 100; i++)); do [[ -e $(cg_dir pids $rcg)/pids.max ]] && break; sleep 0.1; done
if [[ $CG_MODE == v2 ]]; then check "$(cg_dir memory $rcg)/memory.max" 314572800
else check "$(cg_dir memory $rcg)/memory.limit_in_bytes" 314572800; fi
check "$(cg_dir pids $rcg)/pids.max" 100
vsend restored 'echo restored-$((40+2))'
vwait restored 'restored-42' 60
vsend restored 'poweroff -f'
vexit restored; [[ $VRC == 0 ]] || fail "restored: exit code $VRC, expected 0"
[[ ! -e $(cg_dir memory $rcg) ]] || fail "$rcg left behind"
echo "ok: the restored VM ran under the snapshot's limits, and its cgroup is gone"
fi

# --- 4. --cpu-quota 25%: 25% +-5% of a CPU over 10 s, next to an uncapped spinning VM -----
if part cpu; then
run_vm capped --cpu-quota 25%
run_vm free --pids-limit 512   # a cgroup of its own only to measure it; no CPU limit
vwait capped 'doppel-guest: ready'
vwait free 'doppel-guest: ready'
for n in capped free; do vsend "$n" 'while :; do :; done &'; done
sleep 2
ccg=/doppel/capped-${VPID[capped]} fcg=/doppel/free-${VPID[free]}
c0=$(cg_usage_usec "$ccg") f0=$(cg_usage_usec "$fcg") t0=$(date +%s%N)
sleep 10
c1=$(cg_usage_usec "$ccg") f1=$(cg_usage_usec "$fcg") t1=$(date +%s%N)
wall=$(( (t1 - t0) / 1000 ))
capped_pm=$(( (c1 - c0) * 1000 / wall ))  # per mille of one CPU
free_pm=$(( (f1 - f0) * 1000 / wall ))
echo "capped: $((capped_pm / 10)).$((capped_pm % 10))% of a CPU; uncapped: $((free_pm / 10)).$((free_pm % 10))% (over $((wall / 1000)) ms; load $(cut -d' ' -f1 /proc/loadavg))"
(( capped_pm <= 300 )) || fail "the VM capped at 25% got $((capped_pm / 10)).$((capped_pm % 10))% of a CPU (more than 30%)"
# Below 25% is only the cap's fault if the host had the time to give: when even the uncapped
# VM got less than 35%, the host is too busy for this rate check.
if (( capped_pm < 200 )); then
  (( free_pm < 350 )) && skip "the host is too busy to measure a 25% share (the uncapped VM got $((free_pm / 10))% of a CPU); the cap held (at most 30%)"
  fail "the VM capped at 25% got $((capped_pm / 10)).$((capped_pm % 10))% of a CPU"
fi
vkill_all
fi
echo "PASS"
