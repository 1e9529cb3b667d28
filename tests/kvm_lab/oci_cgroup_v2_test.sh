#!/bin/bash
# ctest: `doppel oci` on a pure cgroup v2 host, which this machine (hybrid: v1 controllers,
# an empty v2 tree) cannot be. The lab's L1 (Debian's cloud kernel: cgroup v2, BPF) mounts
# only cgroup2 at /sys/fs/cgroup and enables its controllers as systemd would; there
# (oci_cgroup_v2_l1.sh) a busybox bundle runs with linux.resources, and this side checks:
# the limit files read back from the container's v2 cgroup (memory.max/swap.max/low, the
# unified map, pids.max, cpu.max, cpu.weight, cpuset, io.weight, io.max on L1's NVMe
# disk); pids.max stopping a fork; memory.max OOM-killing a hog (exit 137, memory.events
# oom_kill); the BPF device program (/dev/null allowed, the NVMe node denied with EPERM,
# allowed to read by a rule, still not to write); pause/resume through cgroup.freeze (a
# frozen counter does not move); exec and ps; delete --force of a paused container; delete
# removing each cgroup; the container's own view of its cgroup (cgroup namespace, cgroup2
# at /sys/fs/cgroup); a nested cgroupsPath. Debian's runc, if installed here, runs the same
# container in L1 and what each wrote is printed side by side (a difference is reported,
# not failed). No KVM is used: the lab is only a kernel with a pure v2 hierarchy.
#   tests/kvm_lab/oci_cgroup_v2_test.sh DOPPEL GUEST_DIR
set -uo pipefail
source "$(dirname "$0")/test_lib.sh"
doppel=$(cd "$(dirname "$doppel")" && pwd)/$(basename "$doppel")
command -v python3 >/dev/null || { echo "SKIP: no python3 (the configs are made with it)"; exit 77; }

# The configs: `doppel oci spec`'s default with the resources of each case.
(cd "$tmp" && "$doppel" oci spec) || { echo "FAIL: doppel oci spec"; exit 1; }
python3 - "$tmp" <<'PY' || { echo "FAIL: cannot write the configs"; exit 1; }
import copy, json, sys
d = sys.argv[1]
base = json.load(open(d + "/config.json"))
base["process"]["terminal"] = False
base["root"]["readonly"] = False
def make(name, args, resources, cgroups_path=None):
    c = copy.deepcopy(base)
    c["process"]["args"] = args
    c["linux"]["resources"] = resources
    if cgroups_path:
        c["linux"]["cgroupsPath"] = cgroups_path
    json.dump(c, open(f"{d}/cfg-{name}.json", "w"), indent=1)
deny_all = {"allow": False, "access": "rwm"}
nvme_read = {"allow": True, "type": "b", "major": 259, "minor": 0, "access": "r"}
limits = {
    "memory": {"limit": 67108864, "swap": 100663296, "reservation": 33554432},
    "pids": {"limit": 32},
    "unified": {"memory.high": "62914560"},
    "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0", "mems": "0"},
    "blockIO": {"weight": 500, "throttleReadBpsDevice": [{"major": 259, "minor": 0, "rate": 1048576}]},
    "devices": [deny_all, nvme_read],
}
# (renamed into place: a freeze between a truncate and a write would leave /count empty)
counter = ["sh", "-c", "i=0; while :; do i=$((i+1)); echo $i > /count.new; mv /count.new /count; sleep 0.2; done"]
make("limits", counter, limits, "/lim")
make("limits-runc", counter, limits, "/lim-runc")
make("pids", ["sh", "-c", "echo inside $(grep ^0:: /proc/self/cgroup) pids.max=$(cat /sys/fs/cgroup/pids.max); "
              "i=0; while [ $i -lt 10 ]; do sleep 60 & i=$((i+1)); echo started $i; done"],
     {"pids": {"limit": 5}}, "/outer/pids")
make("oom", ["dd", "if=/dev/zero", "of=/dev/null", "bs=48M", "count=1"], {"memory": {"limit": 33554432}})
dev = ["sh", "-c", "echo x > /dev/null && echo null ok; dd if=/nvme of=/dev/null bs=4k count=1 2>&1 && echo nvme read ok; "
       "(echo x > /nvme) 2>&1 || echo nvme write refused"]
make("devdeny", dev, {"devices": [deny_all]})
make("devallow", dev, {"devices": [deny_all, nvme_read]})
PY
extras=()
for f in "$tmp"/cfg-*.json; do extras+=(--extra "$f"); done
# Debian's runc and the library it links beyond libc (doppel brings libc and the loader).
runc=$(command -v runc || echo /usr/sbin/runc)
if [ -x "$runc" ]; then
  libs=$(ldd "$runc" 2>/dev/null | grep -o '/[^ ]*libseccomp[^ ]*' || true)
  tar -chf "$tmp/runc.tar" -C / "${runc#/}" $(echo "$libs" | sed 's|^/||') 2>/dev/null &&
    extras+=(--extra "$tmp/runc.tar") || echo "note: cannot pack runc; L1 runs doppel alone"
else
  echo "note: runc is not installed; L1 runs doppel alone"
fi
truncate -s 1M "$tmp/nvme.img"

lab_run --script "$here/oci_cgroup_v2_l1.sh" "${extras[@]}" --out-disk "$tmp/nvme.img" --timeout 900
sed -i 's/\r$//' "$out"  # L1's serial console ends lines with CR LF

line() { grep -m1 "^LAB: oci $1" "$out" | sed "s/^LAB: oci $1//"; }
is() {  # "tag file" expected description
  local got; got=$(line "$1=")
  if [ "$got" = "$2" ]; then echo "ok: $3 ($1=$got)"; else echo "FAIL: $3: $1='$got', want '$2'"; fail=1; fi
}
expect "LAB: oci mounts: /sys/fs/cgroup cgroup2; $" "L1 is pure cgroup v2: only cgroup2, at /sys/fs/cgroup"
for c in cpuset cpu io memory pids; do
  expect "LAB: oci subtree_control: .*\b$c\b" "the root delegates the $c controller"
done
nvme=$(sed -n 's/^LAB: oci nvme0n1 is \([0-9]*:[0-9]*\)$/\1/p' "$out" | head -1)
if [ -n "$nvme" ]; then echo "ok: L1's NVMe disk is $nvme (the configs' block device)"
else echo "FAIL: L1 has no NVMe disk"; fail=1; nvme=259:0; fi
expect "LAB: oci lim run exit=0" "run -d of the limits container"
pid=$(line "lim state=running pid=")
if [ -n "$pid" ]; then echo "ok: the container is running (pid $pid)"; else echo "FAIL: the container is not running"; fail=1; fi
expect "LAB: oci lim procs=.*\b$pid\b" "its v2 cgroup /lim holds its process"
expect "LAB: oci lim proc-cgroup=0::/lim$" "/proc/PID/cgroup: 0::/lim, and no v1 line"
expect "LAB: oci lim exec=67108864$" "exec: the process reads the limit through the container's cgroup mount"
ps=$(line "lim ps=")
if [[ $ps =~ ^\[[0-9,]+\]$ ]] && [[ ,${ps:1:-1}, == *",$pid,"* ]]; then
  echo "ok: ps --format json lists the v2 cgroup's processes, the init among them ($ps)"
else echo "FAIL: ps --format json: '$ps'"; fail=1; fi
is "lim memory.max" 67108864 "memory.limit"
is "lim memory.swap.max" 33554432 "memory.swap 96 MiB is memory+swap: 32 MiB of swap"
is "lim memory.low" 33554432 "memory.reservation"
is "lim memory.high" 62914560 "linux.resources.unified, written as given"
is "lim pids.max" 32 "pids.limit"
is "lim cpu.max" "50000 100000" "cpu quota/period"
is "lim cpu.weight" 20 "cpu.shares 512 as weight (runc's conversion)"
is "lim cpuset.cpus" 0 "cpuset cpus"
is "lim cpuset.mems" 0 "cpuset mems"
is "lim io.weight" "default 4950" "blockIO weight 500 (runc's conversion)"
is "lim io.max" "$nvme rbps=1048576 wbps=max riops=max wiops=max" "throttleReadBpsDevice on the NVMe disk"

expect "LAB: oci pause exit=0" "pause"
expect "LAB: oci paused state=paused freeze=1 frozen 1" "paused: the state, cgroup.freeze and cgroup.events"
frozen=$(line "paused counter ")
a=${frozen%% -> *} z=${frozen##* -> }
if [ -n "$a" ] && [ "$a" = "$z" ]; then echo "ok: the frozen container's counter stays at $a for 2 s"
else echo "FAIL: the counter moved while paused ('$frozen')"; fail=1; fi
expect "LAB: oci resume exit=0" "resume"
resumed=$(line "resumed ")
after=${resumed##* -> }
if [[ $resumed == "state=running freeze=0 counter "* ]] && [ -n "$after" ] && [ -n "$z" ] && [ "$after" -gt "$z" ]; then
  echo "ok: resumed: running, cgroup.freeze 0, the counter moves on ($resumed)"
else echo "FAIL: resume: '$resumed'"; fail=1; fi
expect "LAB: oci paused again state=paused" "paused again"
expect "LAB: oci delete exit=0" "delete --force of the paused container"
expect "LAB: oci lim pid $pid after delete: \(gone\|State:.*Z (zombie)\)" "... ends its process"
expect "LAB: oci lim cgroup removed" "... removes its cgroup"

expect "LAB: oci pids| inside 0::/ pids.max=5$" "in its cgroup namespace the container sees its own v2 cgroup as / (cgroup2 mounted at /sys/fs/cgroup)"
expect "LAB: oci outer subtree_control=.*\bpids\b" "a nested cgroupsPath (/outer/pids): the new parent delegates pids"
expect "LAB: oci outer/pids removed" "... the container's end removes its cgroup (the parent stays, as with runc)"
expect "LAB: oci pids| started 4$" "pids.limit 5: the shell and 4 children run"
if grep -q "LAB: oci pids| started 5$" "$out"; then echo "FAIL: a fifth child was started"; fail=1
else echo "ok: ... a fifth is not"; fi
expect "LAB: oci pids| .*can't fork: Resource temporarily unavailable" "the container sees the fork fail (EAGAIN)"

expect "LAB: oci oom run exit=137" "memory.limit 32 MiB: the 48 MiB dd is killed (exit 137 = SIGKILL)"
expect "LAB: oci oom2 state=stopped events: .*oom_kill 1\b" "memory.events counts the OOM kill (read from outside)"
expect "LAB: oci oom2 delete exit=0" "delete of the stopped container"
expect "LAB: oci oom2 cgroup removed" "... removes its cgroup"

expect "LAB: oci devdeny| null ok" "device rules: /dev/null is usable"
expect "LAB: oci devdeny| .*/nvme.*Operation not permitted" "device rules: opening the NVMe node not in the list: EPERM"
if grep -q "LAB: oci devdeny| nvme read ok" "$out"; then echo "FAIL: the denied device was read"; fail=1; fi
expect "LAB: oci devallow| nvme read ok" "a rule allowing b $nvme r: the node reads"
expect "LAB: oci devallow| nvme write refused" "... and still refuses a write"
expect "LAB: oci devallow cgroup removed" "run removes the cgroup when the container ends"
expect "LAB: oci left in the state dir: \[\]" "no container state left"
expect "LAB: oci left cgroups: \[\]" "no cgroup left"

# runc in the same L1, the same config: what each runtime wrote (reported only).
if grep -q "LAB: oci runc run exit=0" "$out"; then
  echo "runc 1.1.5 vs doppel, the same container on the same pure v2 L1:"
  for f in memory.max memory.swap.max memory.low memory.high pids.max cpu.max cpu.weight cpuset.cpus cpuset.mems io.weight io.bfq.weight io.max; do
    d=$(line "lim $f=") r=$(line "runc $f=")
    [ "$d" = "$r" ] && s=same || s=DIFFERS
    printf '  %-16s doppel: %-50s runc: %-50s %s\n' "$f" "$d" "$r" "$s"
  done
  grep -q "LAB: oci runc cgroup removed" "$out" && echo "  runc's delete removed its cgroup too"
else
  echo "note: runc did not run in L1: $(grep -m1 'LAB: oci runc run\|LAB: oci no runc' "$out")"
fi
exit $fail
