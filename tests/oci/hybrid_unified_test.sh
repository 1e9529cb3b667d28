#!/bin/bash
# doppel oci on a hybrid host (cgroup v1 controllers, cgroup2 mounted below /sys/fs/cgroup,
# e.g. at unified/): like runc 1.1.5, the container also gets a cgroup on the v2 tree and
# its process is moved there, so /proc/PID/cgroup's "0::" line names the container's
# cgroup, not the runtime's. Checked: that line and the v2 cgroup's cgroup.procs, the same
# for runc when it is installed (printed side by side), blockIO's throttle lists as v1's
# blkio.throttle.* rules on a disk of this host, delete and the end of `run`
# removing the v2 directory with the v1 ones, and a create that fails after the cgroups
# were made (a cpuset the host does not have; a program that does not exist) leaving
# nothing behind on either tree. Skips on a pure v1 or a pure v2 host.
#   hybrid_unified_test.sh PATH/TO/doppel-runc
set -u
rt="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
[ "$(id -u)" = 0 ] || { echo "SKIP: containers need root"; exit 77; }
[ -x /bin/busybox ] || { echo "SKIP: no /bin/busybox (busybox-static)"; exit 77; }
command -v python3 >/dev/null || { echo "SKIP: no python3"; exit 77; }
[ "$(stat -f -c %T /sys/fs/cgroup)" = cgroup2fs ] && { echo "SKIP: a pure cgroup v2 host, not a hybrid one"; exit 77; }
v2=$(awk '$3 == "cgroup2" && $2 ~ "^/sys/fs/cgroup/" {print $2; exit}' /proc/self/mounts)
[ -n "$v2" ] || { echo "SKIP: no cgroup2 below /sys/fs/cgroup (a pure v1 host)"; exit 77; }
echo "hybrid host: v1 controllers and cgroup v2 at $v2"

work=$(mktemp -d /tmp/doppel-oci-hybrid.XXXXXX)
root=$work/state
tag=$(basename "$work" | cut -d. -f2)
id=hy-$tag
runc_id=hyr-$tag
fails=0
cleanup() {
  local d pid
  "$rt" --root "$root" delete --force "$id" >/dev/null 2>&1
  command -v runc >/dev/null && runc --root "$work/runc" delete --force "$runc_id" >/dev/null 2>&1
  for d in $(find /sys/fs/cgroup -mindepth 1 -maxdepth 2 -type d \( -name "$id" -o -name "$runc_id" \) 2>/dev/null); do
    [ -f "$d/freezer.state" ] && echo THAWED > "$d/freezer.state" 2>/dev/null
    for pid in $(cat "$d/cgroup.procs" 2>/dev/null); do kill -9 "$pid" 2>/dev/null; done
    for _ in $(seq 20); do rmdir "$d" 2>/dev/null && break; [ -d "$d" ] || break; sleep 0.1; done
  done
  grep -o " $work[^ ]*" /proc/self/mountinfo | sort -r | while read -r m; do umount -l "$m" 2>/dev/null; done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 143' TERM INT HUP
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
check() { if eval "$2"; then echo "ok: $1"; else fail "$1"; fi; }
# The cgroup directories named $1 in every hierarchy, v1 and v2.
dirs_named() { find /sys/fs/cgroup -mindepth 1 -maxdepth 2 -type d -name "$1" 2>/dev/null | sort | tr '\n' ' '; }
pid_of() { "$@" 2>/dev/null | sed -n 's/.*"pid": *\([0-9]*\).*/\1/p'; }

bundle=$work/bundle
mkdir -p "$bundle/rootfs/bin"
cp /bin/busybox "$bundle/rootfs/bin/busybox"
for c in sh echo cat sleep true; do ln -s busybox "$bundle/rootfs/bin/$c"; done
cd "$bundle" && "$rt" spec && cp config.json config.json.orig
config() {
  python3 - "$@" <<'PY'
import json, sys
c = json.load(open("config.json.orig"))
c["process"]["terminal"] = False
c["linux"]["resources"] = {"pids": {"limit": 20}}
for expr in sys.argv[1:]:
    exec(expr)
json.dump(c, open("config.json", "w"))
PY
}

# A disk of this host (not a loop, RAM or zram device) for blockIO's throttle lists, which
# v1 writes as blkio.throttle.* rules.
disk=$(for d in /sys/block/*; do case ${d##*/} in loop*|ram*|zram*) ;; *) cat "$d/dev"; break ;; esac; done 2>/dev/null)
throttle=""
[ -n "$disk" ] && throttle='c["linux"]["resources"]["blockIO"] = {"throttleReadBpsDevice": [{"major": '${disk%:*}', "minor": '${disk#*:}', "rate": 1048576}], "throttleWriteIOPSDevice": [{"major": '${disk%:*}', "minor": '${disk#*:}', "rate": 100}]}'
config 'c["process"]["args"] = ["sleep", "100"]' "$throttle"
"$rt" --root "$root" create "$id" && "$rt" --root "$root" start "$id"
pid=$(pid_of "$rt" --root "$root" state "$id")
line=$(grep '^0::' "/proc/$pid/cgroup" 2>/dev/null)
check "doppel: the process is on the v2 tree too: '$line'" '[ -n "$pid" ] && [ "$line" = "0::/$id" ]'
check "... $v2/$id/cgroup.procs holds it" '[ "$(cat "$v2/$id/cgroup.procs" 2>/dev/null)" = "$pid" ]'
check "... and its v1 cgroups still do (pids: $(grep ':pids:' "/proc/$pid/cgroup"))" \
  'grep -qx "[0-9]*:pids:/$id" "/proc/$pid/cgroup" && [ "$(cat /sys/fs/cgroup/pids/$id/pids.max)" = 20 ]'
if [ -n "$disk" ]; then
  b=/sys/fs/cgroup/blkio/$id
  check "blockIO throttle lists on $disk: blkio.throttle.read_bps_device '$(cat $b/blkio.throttle.read_bps_device)', write_iops_device '$(cat $b/blkio.throttle.write_iops_device)'" \
    '[ "$(cat $b/blkio.throttle.read_bps_device)" = "$disk 1048576" ] && [ "$(cat $b/blkio.throttle.write_iops_device)" = "$disk 100" ]'
else
  echo "note: no disk on this host for the blockIO throttle check"
fi
if command -v runc >/dev/null; then
  # runc, the same container: what its process's "0::" line says.
  runc --root "$work/runc" run -d "$runc_id" >/dev/null 2>&1
  rpid=$(pid_of runc --root "$work/runc" state "$runc_id")
  rline=$(grep '^0::' "/proc/$rpid/cgroup" 2>/dev/null)
  echo "runc $(runc --version | head -1 | cut -d' ' -f3): 0:: line '$rline'; doppel: '$line'"
  check "doppel's v2 placement is runc's (0::/ID)" '[ "$rline" = "0::/$runc_id" ] && [ "$line" = "0::/$id" ]'
  runc --root "$work/runc" delete --force "$runc_id" >/dev/null 2>&1
fi
"$rt" --root "$root" delete --force "$id"
check "delete removes the cgroup from both trees (left: [$(dirs_named "$id")])" '[ -z "$(dirs_named "$id")" ]'

config 'c["process"]["args"] = ["sh", "-c", "grep ^0:: /proc/self/cgroup"]' \
       'c["linux"]["namespaces"] = [n for n in c["linux"]["namespaces"] if n["type"] != "cgroup"]'
out=$("$rt" --root "$root" run "$id" 2>&1)
check "run: the container sees itself in the v2 cgroup ($out)" '[ "$out" = "0::/$id" ]'
check "... and its end removes the cgroup from both trees (left: [$(dirs_named "$id")])" '[ -z "$(dirs_named "$id")" ]'

# Failures after the cgroups were made leave nothing behind, on v1 or v2.
config 'c["linux"]["resources"]["cpu"] = {"cpus": "1023"}'
out=$("$rt" --root "$root" run "$id" 2>&1); rc=$?
check "a cpuset this host lacks: the run fails naming the file ($out)" '[ $rc -ne 0 ] && echo "$out" | grep -q "cpuset.cpus"'
check "... and leaves no cgroup (left: [$(dirs_named "$id")]) and no state" '[ -z "$(dirs_named "$id")" ] && [ -z "$(ls "$root")" ]'
config 'c["process"]["args"] = ["/no/such/program"]'
out=$("$rt" --root "$root" run "$id" 2>&1); rc=$?
check "a missing program: the run fails ($out)" '[ $rc -ne 0 ]'
check "... and leaves no cgroup (left: [$(dirs_named "$id")]) and no state" '[ -z "$(dirs_named "$id")" ] && [ -z "$(ls "$root")" ]'

[ $fails -eq 0 ] && echo "all passed" || echo "$fails failed"
[ $fails -eq 0 ]
