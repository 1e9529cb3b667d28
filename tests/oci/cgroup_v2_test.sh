#!/bin/bash
# doppel oci on cgroup v2: on a pure v2 host its own /sys/fs/cgroup; on a hybrid host (v1
# controllers + an empty v2 tree) the v2 tree, through DOPPEL_OCI_CGROUP_ROOT. What needs
# no v2 controller is checked everywhere: the device rules as a BPF device program (a
# denied open fails with EPERM in the container, an allowed one works), pause/resume
# through cgroup.freeze, ps, delete removing the cgroup. Limits are checked where the
# hierarchy has their controllers (pids.max, memory.max); where it has not, create must
# fail naming the file and leave nothing behind.
#   cgroup_v2_test.sh PATH/TO/doppel-runc
set -u
rt="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
[ "$(id -u)" = 0 ] || { echo "SKIP: containers need root"; exit 77; }
[ -x /bin/busybox ] || { echo "SKIP: no /bin/busybox (busybox-static)"; exit 77; }
v2=$(awk '$3 == "cgroup2" {print $2; exit}' /proc/self/mounts)
[ -n "$v2" ] || { echo "SKIP: no cgroup2 hierarchy is mounted"; exit 77; }
[ -c /dev/fuse ] || { echo "SKIP: no /dev/fuse (the device the rules restrict)"; exit 77; }
[ "$v2" != /sys/fs/cgroup ] && export DOPPEL_OCI_CGROUP_ROOT=$v2
echo "cgroup v2 at $v2 (controllers: $(cat "$v2/cgroup.controllers"))"

work=$(mktemp -d /tmp/doppel-oci-v2.XXXXXX)
root=$work/state
id=v2-$(basename "$work" | cut -d. -f2)
fails=0
cleanup() {
  "$rt" --root "$root" delete --force "$id" >/dev/null 2>&1
  [ -f "$v2/$id/cgroup.freeze" ] && echo 0 > "$v2/$id/cgroup.freeze"
  for pid in $(cat "$v2/$id/cgroup.procs" 2>/dev/null); do kill -9 "$pid" 2>/dev/null; done
  for _ in $(seq 20); do rmdir "$v2/$id" 2>/dev/null; [ -d "$v2/$id" ] || break; sleep 0.1; done
  grep -o " $work[^ ]*" /proc/self/mountinfo | sort -r | while read -r m; do umount -l "$m" 2>/dev/null; done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 143' TERM INT HUP
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
check() { if eval "$2"; then echo "ok: $1"; else fail "$1"; fi; }

bundle=$work/bundle
mkdir -p "$bundle/rootfs/bin"
cp /bin/busybox "$bundle/rootfs/bin/busybox"
for c in sh echo cat sleep dd true; do ln -s busybox "$bundle/rootfs/bin/$c"; done
cd "$bundle" && "$rt" spec && cp config.json config.json.orig
config() {
  python3 - "$@" <<'PY'
import json, sys
c = json.load(open("config.json.orig"))
c["process"]["terminal"] = False
for expr in sys.argv[1:]:
    exec(expr)
json.dump(c, open("config.json", "w"))
PY
}
# /dev/fuse (opening it needs no capability) is the host's node bound in (linux.devices
# would also allow it): the rules deny every device, then allow reading fuse; the default
# devices stay usable.
rules='c["linux"]["resources"] = {"devices": [{"allow": False, "access": "rwm"}, {"allow": True, "type": "c", "major": 10, "minor": 229, "access": "r"}]}'
fuse_mount='c["mounts"].append({"destination": "/dev/fuse", "type": "bind", "source": "/dev/fuse", "options": ["bind"]})'

config "$rules" "$fuse_mount" 'c["process"]["args"] = ["sh", "-c", "echo x > /dev/null && echo null ok; (exec 3</dev/fuse) && echo fuse read ok; (exec 3>/dev/fuse) 2>&1 || echo fuse write refused"]'
out=$("$rt" --root "$root" run "$id" 2>&1); rc=$?
echo "$out" | sed 's/^/  | /'
check "run on v2 with device rules" '[ $rc -eq 0 ]'
check "... /dev/null is usable (every container's)" 'echo "$out" | grep -qx "null ok"'
check "... opening /dev/fuse to read is allowed by its rule" 'echo "$out" | grep -qx "fuse read ok"'
check "... opening it to write is refused: Operation not permitted" \
  'echo "$out" | grep -q "/dev/fuse: Operation not permitted" && echo "$out" | grep -qx "fuse write refused"'
check "... and its cgroup is gone" '[ ! -e "$v2/$id" ]'

# Control: without the rules the same container opens it to write.
config "$fuse_mount" 'c["linux"].pop("resources", None)' 'c["process"]["args"] = ["sh", "-c", "(exec 3>/dev/fuse) && echo fuse write ok"]'
out=$("$rt" --root "$root" run "$id" 2>&1)
check "without device rules, /dev/fuse opens to write ($out)" '[ "$out" = "fuse write ok" ]'

config "$rules" 'c["process"]["args"] = ["sleep", "100"]'
"$rt" --root "$root" create "$id" && "$rt" --root "$root" start "$id"
check "create + start on v2: the container's cgroup holds its process" \
  '[ "$(cat "$v2/$id/cgroup.procs" 2>/dev/null)" = "$(sed -n "s/.*\"pid\": *\([0-9]*\).*/\1/p" <("$rt" --root "$root" state "$id"))" ]'
"$rt" --root "$root" pause "$id"
status=$("$rt" --root "$root" state "$id" | sed -n 's/.*"status": *"\([a-z]*\)".*/\1/p')
check "pause: cgroup.freeze ($status, frozen $(grep frozen "$v2/$id/cgroup.events" 2>/dev/null))" \
  '[ "$status" = paused ] && grep -qx "frozen 1" "$v2/$id/cgroup.events"'
"$rt" --root "$root" resume "$id"
status=$("$rt" --root "$root" state "$id" | sed -n 's/.*"status": *"\([a-z]*\)".*/\1/p')
check "resume ($status)" '[ "$status" = running ]'
check "ps lists the process" '[ "$("$rt" --root "$root" ps --format json "$id")" = "[$(cat "$v2/$id/cgroup.procs")]" ]'
"$rt" --root "$root" delete --force "$id"
check "delete --force removes the cgroup" '[ ! -e "$v2/$id" ]'

controllers=" $(cat "$v2/cgroup.controllers") "
for limit in "pids pids.max 10 c['linux']['resources']['pids'] = {'limit': 10}" \
             "memory memory.max 67108864 c['linux']['resources']['memory'] = {'limit': 67108864}"; do
  read -r ctl file want expr <<< "$limit"
  config "$expr" 'c["process"]["args"] = ["cat", "/sys/fs/cgroup/'"$file"'"]' \
         'c["mounts"] = [m for m in c["mounts"] if m["destination"] != "/sys/fs/cgroup"] + [{"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["ro"]}]'
  out=$("$rt" --root "$root" run "$id" 2>&1); rc=$?
  if [[ $controllers == *" $ctl "* ]]; then
    check "$ctl limit: the container reads $file = $want ($out)" '[ $rc -eq 0 ] && [ "$out" = "$want" ]'
  else
    check "no $ctl controller on this v2 tree: create fails naming $file ($out)" \
      '[ $rc -ne 0 ] && echo "$out" | grep -q "$file: No such file or directory"'
    check "... and leaves no state or cgroup" '[ -z "$(ls "$root")" ] && [ ! -e "$v2/$id" ]'
  fi
done

[ $fails -eq 0 ] && echo "all passed" || echo "$fails failed"
[ $fails -eq 0 ]
