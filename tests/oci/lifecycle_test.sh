#!/bin/bash
# doppel oci with a busybox bundle: what a user of runc's command line sees (output, exit
# codes, state JSON, files on the host, the cgroup's limit files), errors that name the
# problem and leave nothing behind, a pty through --console-socket, hooks.
#   lifecycle_test.sh PATH/TO/doppel-runc
set -u
rt="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"  # absolute; the link name matters
[ "$(id -u)" = 0 ] || { echo "SKIP: containers need root"; exit 77; }
busybox=$(command -v busybox || true)
[ -n "$busybox" ] && file -L "$busybox" 2>/dev/null | grep -q "statically linked" ||
  busybox=/bin/busybox
[ -x "$busybox" ] || { echo "SKIP: no busybox (busybox-static)"; exit 77; }

work=$(mktemp -d /tmp/doppel-oci-test.XXXXXX)
touch "$work/.start"  # cgroups newer than this are this run's
root=$work/state
ids=()
fails=0
cleanup() {
  # Every container still known (a check that failed half-way may leave any of them), then
  # whatever outlived the runtime: processes in their cgroups, the cgroups, mounts.
  local id d pid
  for id in "${ids[@]}" $("$rt" --root "$root" list -q 2>/dev/null); do
    "$rt" --root "$root" delete --force "$id" >/dev/null 2>&1
  done
  [ -n "${console_pid:-}" ] && kill "$console_pid" 2>/dev/null
  for d in $(find /sys/fs/cgroup -mindepth 1 -maxdepth 2 -type d -name 't[1-]*' -newer "$work/.start" 2>/dev/null); do
    [ -f "$d/freezer.state" ] && echo THAWED > "$d/freezer.state" 2>/dev/null
    for pid in $(cat "$d/cgroup.procs" 2>/dev/null); do kill -9 "$pid" 2>/dev/null; done
    for _ in $(seq 20); do rmdir "$d" 2>/dev/null && break; [ -d "$d" ] || break; sleep 0.1; done
  done
  grep -o " $work[^ ]*" /proc/self/mountinfo | sort -r | while read -r m; do umount -l "$m" 2>/dev/null; done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 143' TERM INT HUP  # a killed test cleans up too (bash skips the EXIT trap otherwise)
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
check() { if eval "$2"; then echo "ok: $1"; else fail "$1"; fi; }

bundle=$work/bundle
mkdir -p "$bundle/rootfs/bin" "$work/shared"
cp "$busybox" "$bundle/rootfs/bin/busybox"
for c in sh echo cat sleep id hostname test ls true false stat; do ln -s busybox "$bundle/rootfs/bin/$c"; done

cd "$bundle"
"$rt" spec && check "spec writes config.json" '[ -s config.json ]'
out=$("$rt" spec 2>&1); rc=$?
check "spec refuses to overwrite" '[ $rc -ne 0 ] && echo "$out" | grep -q "already exists"'

# config.json edits: python3 is what the crun suite uses too.
config() {  # config EXPR... : applied to the default spec in order
  python3 - "$@" <<'PY'
import json, sys
c = json.load(open("config.json.orig"))
c["process"]["terminal"] = False
for expr in sys.argv[1:]:
    exec(expr)
json.dump(c, open("config.json", "w"))
PY
}
cp config.json config.json.orig
cgroup_v2=0; [ -f /sys/fs/cgroup/cgroup.controllers ] && cgroup_v2=1

# run: the program's output and exit code.
config 'c["process"]["args"] = ["sh", "-c", "echo hello from $(hostname); exit 3"]'
out=$("$rt" --root "$root" run t-run 2>&1); rc=$?
check "run prints the container's output" '[ "$out" = "hello from doppel" ]'
check "run returns the container's exit code" '[ $rc -eq 3 ]'
check "run leaves no state" '[ -z "$(ls "$root")" ]'

# create / start / state / kill / delete, with a bind mount and a memory limit.
config 'c["process"]["args"] = ["sh", "-c", "echo started > /shared/out; exec sleep 100"]' \
       'c["mounts"].append({"destination": "/shared", "type": "bind", "source": "'"$work/shared"'", "options": ["rbind", "rw"]})' \
       'c["linux"]["resources"]["memory"] = {"limit": 67108864}' \
       'c["linux"]["cgroupsPath"] = "/doppel-oci-test-'$$'"'
ids+=(t1)
"$rt" --root "$root" create --pid-file "$work/t1.pid" t1; rc=$?
check "create succeeds" '[ $rc -eq 0 ]'
status=$("$rt" --root "$root" state t1 | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"])')
check "state says created" '[ "$status" = created ]'
check "the pid file holds the init's pid" '[ -d /proc/$(cat "$work/t1.pid") ]'
check "the program has not run before start" '[ ! -e "$work/shared/out" ]'
if [ $cgroup_v2 = 1 ]; then limit=$(cat /sys/fs/cgroup/doppel-oci-test-$$/memory.max)
else limit=$(cat /sys/fs/cgroup/memory/doppel-oci-test-$$/memory.limit_in_bytes); fi
check "the memory limit is in the container's cgroup ($limit)" '[ "$limit" = 67108864 ]'
"$rt" --root "$root" start t1
for _ in $(seq 50); do [ -s "$work/shared/out" ] && break; sleep 0.1; done
check "after start the program writes through the bind mount" '[ "$(cat "$work/shared/out" 2>/dev/null)" = started ]'
status=$("$rt" --root "$root" state t1 | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"])')
check "state says running" '[ "$status" = running ]'
out=$("$rt" --root "$root" exec t1 sh -c 'echo exec in $(hostname) as $(id -u)')
check "exec runs in the container" '[ "$out" = "exec in doppel as 0" ]'
"$rt" --root "$root" pause t1
status=$("$rt" --root "$root" state t1 | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"])')
check "pause freezes it" '[ "$status" = paused ]'
"$rt" --root "$root" resume t1
out=$("$rt" --root "$root" list)
check "list shows it running" 'echo "$out" | grep -q "^t1 .*running"'
out=$("$rt" --root "$root" delete t1 2>&1); rc=$?
check "delete refuses a running container" '[ $rc -ne 0 ] && echo "$out" | grep -q "not stopped: running"'
"$rt" --root "$root" kill t1 KILL
for _ in $(seq 50); do
  status=$("$rt" --root "$root" state t1 | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"])')
  [ "$status" = stopped ] && break; sleep 0.1
done
check "kill stops it" '[ "$status" = stopped ]'
"$rt" --root "$root" delete t1
check "delete removes the state" '[ ! -e "$root/t1" ]'
check "delete removes the cgroup" '[ -z "$(find /sys/fs/cgroup -maxdepth 2 -name "doppel-oci-test-$$")" ]'

# Errors name what failed and leave nothing behind.
config 'c["process"]["args"] = "sh"'
out=$("$rt" --root "$root" run t-bad 2>&1); rc=$?
check "a malformed config.json is refused, naming the field" \
  '[ $rc -ne 0 ] && echo "$out" | grep -q "process.args: expected an array of strings"'
config 'c["process"]["args"] = ["true"]' 'c["mounts"].append({"destination": "/x", "type": "nosuchfs", "source": "none"})' \
       'c["linux"]["cgroupsPath"] = "/doppel-oci-test-'$$'"'
out=$("$rt" --root "$root" create t-mnt 2>&1); rc=$?
check "a failing mount is reported runc-style" \
  '[ $rc -ne 0 ] && echo "$out" | grep -q "^doppel oci: create: mount /x: mount none to .*: No such device"'
check "... and leaves no state or cgroup" \
  '[ ! -e "$root/t-mnt" ] && [ -z "$(find /sys/fs/cgroup -maxdepth 2 -name "doppel-oci-test-$$")" ]'
config 'c["process"]["args"] = ["/no/such/program"]'
out=$("$rt" --root "$root" create t-noexec 2>&1); rc=$?
check "a missing program fails create" '[ $rc -ne 0 ] && echo "$out" | grep -q "/no/such/program"'
out=$("$rt" --root "$root" state nosuch 2>&1); rc=$?
check "state of an unknown container" '[ $rc -ne 0 ] && [ "$out" = "doppel oci: state: container nosuch does not exist" ]'
out=$("$rt" --root "$root" create 'bad/id' 2>&1); rc=$?
check "an id with a slash is refused" '[ $rc -ne 0 ] && echo "$out" | grep -q "invalid container id"'
out=$("$rt" --systemd-cgroup --root "$root" list 2>&1); rc=$?
check "--systemd-cgroup is refused with a reason" '[ $rc -ne 0 ] && echo "$out" | grep -q "systemd"'

# A terminal through --console-socket: the pty master arrives by SCM_RIGHTS.
cat > "$work/console.py" <<'PY'
import array, os, socket, sys
srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
srv.bind(sys.argv[1]); srv.listen(1)
conn, _ = srv.accept()
msg, anc, flags, addr = conn.recvmsg(1024, socket.CMSG_SPACE(4))
fd = array.array("i", anc[0][2][:4])[0]
out = b""
while True:
    try:
        chunk = os.read(fd, 1024)
    except OSError:
        break
    if not chunk:
        break
    out += chunk
open(sys.argv[2], "wb").write(out)
PY
timeout 30 python3 "$work/console.py" "$work/console.sock" "$work/console.out" & console_pid=$!
for _ in $(seq 50); do [ -S "$work/console.sock" ] && break; sleep 0.1; done
config 'c["process"]["terminal"] = True' 'c["process"]["args"] = ["sh", "-c", "test -t 0 && test -t 1 && echo on-a-tty"]'
ids+=(t-tty)
"$rt" --root "$root" run --detach --console-socket "$work/console.sock" t-tty
wait "$console_pid"; console_pid=
check "a terminal process writes to the pty sent to --console-socket" 'grep -q on-a-tty "$work/console.out"'
"$rt" --root "$root" delete --force t-tty
config 'c["process"]["terminal"] = True'
out=$("$rt" --root "$root" create t-notty 2>&1); rc=$?
check "a terminal without --console-socket is refused" '[ $rc -ne 0 ] && echo "$out" | grep -q "use --console-socket"'

# Hooks get the state on stdin; a failing prestart hook fails the run.
config 'c["process"]["args"] = ["true"]' \
       'c["hooks"] = {"prestart": [{"path": "/bin/sh", "args": ["sh", "-c", "cat > '"$work"'/hook.json"]}]}'
"$rt" --root "$root" run t-hook
check "a prestart hook reads the state JSON" 'grep -q "\"id\":\"t-hook\"" "$work/hook.json"'
config 'c["process"]["args"] = ["true"]' \
       'c["mounts"].append({"destination": "/shared", "type": "bind", "source": "'"$work/shared"'", "options": ["rbind", "rw"]})' \
       'c["hooks"] = {"startContainer": [{"path": "/bin/sh", "args": ["sh", "-c", "cat > /shared/start.json"]}]}'
"$rt" --root "$root" run t-start-hook
check "a startContainer hook runs in the container with the state JSON" \
  'grep -q "\"id\":\"t-start-hook\"" "$work/shared/start.json"'
config 'c["process"]["args"] = ["true"]' 'c["hooks"] = {"prestart": [{"path": "/bin/false"}]}'
out=$("$rt" --root "$root" run t-hookfail 2>&1); rc=$?
check "a failing prestart hook fails run" '[ $rc -ne 0 ] && echo "$out" | grep -q "prestart hook /bin/false: exit status 1"'
check "nothing is left in the state directory" '[ -z "$(ls "$root")" ]'
check "no mount of the bundle is left" '! grep -q "$work" /proc/self/mountinfo'

# The host's /dev bound as the container's /dev (crun's test_devices.py does this): it is
# used as it is, as runc does; nothing is made in it, not even the config's devices.
fake_dev=/dev/doppel-oci-test-$$
rm -f "$fake_dev"
host_null=$(stat -c '%i %t:%T %F' /dev/null)
config 'c["process"]["args"] = ["sh", "-c", "stat -c \"%i %t:%T %F\" /dev/null; if test -e '"$fake_dev"'; then echo made; fi"]' \
       'c["mounts"].append({"destination": "/dev", "type": "bind", "source": "/dev", "options": ["rbind", "rw"]})' \
       'c["linux"]["devices"] = [{"path": "'"$fake_dev"'", "type": "c", "major": 1, "minor": 3}]'
out=$("$rt" --root "$root" run t-hostdev 2>&1); rc=$?
check "with the host's /dev bound, the container sees the host's /dev/null ($out)" \
  '[ $rc -eq 0 ] && [ "$out" = "$host_null" ]'
check "... and nothing is created in the host's /dev" '[ ! -e "$fake_dev" ]'
check "... and the host's /dev/null is untouched" '[ "$(stat -c "%i %t:%T %F" /dev/null)" = "$host_null" ]'
rm -f "$fake_dev"

[ $fails -eq 0 ] && echo "all passed" || echo "$fails failed"
[ $fails -eq 0 ]
