#!/bin/bash
# podman drives doppel oci (`podman --runtime build/doppel-runc`), and runc the same way
# beside it, so that a failure both share points at the machine rather than at doppel:
# `run --rm --rootfs DIR` (output, exit code), an interactive `run -it` through a pty (the
# container's tty, its window size, what was typed, the exit code), `run --memory 64m` (the
# limit read back inside the container and on the host), `run -d` + `exec` + `rm -f`.
# podman keeps everything of its own under a temporary directory (--root, --runroot,
# --tmpdir, vfs storage, a containers.conf of ours, a cgroup parent of ours), which the
# trap removes even when a check fails.
#   podman_test.sh PATH/TO/doppel-runc
set -u
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
rt="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"  # absolute; the link name matters
[ "$(id -u)" = 0 ] || { echo "SKIP: podman as root is what this test drives"; exit 77; }
command -v podman >/dev/null || { echo "SKIP: podman is not installed (scripts/install-deps)"; exit 77; }
runc=$(command -v runc || true)
[ -x /bin/busybox ] || { echo "SKIP: no /bin/busybox (busybox-static)"; exit 77; }
[ -d /sys/fs/cgroup ] || { echo "SKIP: no /sys/fs/cgroup"; exit 77; }

work=$(mktemp -d /tmp/doppel-podman.XXXXXX)
parent=doppel-podman-$(basename "$work" | cut -d. -f2)
podman=(podman --root "$work/root" --runroot "$work/runroot" --tmpdir "$work/tmp" --storage-driver vfs
        --cgroup-manager cgroupfs --events-backend file)
# Root cannot raise the hard nofile limit past the host's (podman's default asks for more).
limits=(--ulimit nofile=1024:1024 --ulimit nproc=1024:1024)
fails=0
cleanup() {
  local names
  names=$("${podman[@]}" ps -aq 2>/dev/null)
  [ -n "$names" ] && "${podman[@]}" rm -f -t 0 $names >/dev/null 2>&1
  # Whatever podman left mounted under our directory (none expected), deepest first.
  grep -o " $work[^ ]*" /proc/self/mountinfo | sort -r | while read -r m; do umount -l "$m" 2>/dev/null; done
  # Our cgroup parent in every hierarchy (conmon's and the containers' cgroups below it).
  remove_cgroup_parent "$parent"
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 143' TERM INT HUP  # a killed test cleans up too (bash skips the EXIT trap otherwise)
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

export CONTAINERS_CONF=$work/containers.conf
mkdir -p "$work/tmp"
printf '[engine]\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n' > "$CONTAINERS_CONF"

rootfs=$work/rootfs
mkdir -p "$rootfs"/{bin,etc,proc,sys,dev,tmp}
cp /bin/busybox "$rootfs/bin/busybox"
for a in sh echo cat sleep id true tty stty; do ln -s busybox "$rootfs/bin/$a"; done

# check NAME RUNTIME EXPR: EXPR evaluated for the runtime; only doppel's failure fails the
# test, runc's result is printed beside it.
declare -A result
check() {
  local name=$1 who=$2
  if eval "$3"; then result["$who $name"]=ok; else result["$who $name"]=FAIL; fi
}
runtimes=(doppel "$rt")
[ -n "$runc" ] && runtimes+=(runc "$runc") || echo "note: runc is not installed; doppel alone"
names=()
add() { local n; for n; do [[ " ${names[*]} " == *" $n "* ]] || names+=("$n"); done; }

pty_run() {  # pty_run TEXT CMD...: CMD on a 33x101 pty, TEXT typed at its prompt; prints the
            # output (without CRs), exits with CMD's code
  python3 - "$@" <<'PY'
import fcntl, os, pty, select, struct, sys, termios, time
text, cmd = sys.argv[1].encode(), sys.argv[2:]
pid, fd = pty.fork()
if pid == 0:
    os.execvp(cmd[0], cmd)
fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 33, 101, 0, 0))
out, sent, deadline = b"", False, time.time() + 60
while time.time() < deadline:
    r, _, _ = select.select([fd], [], [], 0.2)
    if r:
        try:
            data = os.read(fd, 4096)
        except OSError:
            break
        if not data:
            break
        out += data
    if not sent and b"# " in out:  # the shell's prompt: type the commands
        os.write(fd, text); sent = True
sys.stdout.write(out.decode(errors="replace").replace("\r", ""))
_, status = os.waitpid(pid, 0)
sys.exit(os.waitstatus_to_exitcode(status))
PY
}

set -- "${runtimes[@]}"
while [ $# -gt 0 ]; do
  who=$1 bin=$2; shift 2
  run=("${podman[@]}" --runtime "$bin" run --network none --cgroup-parent "/$parent" "${limits[@]}")

  out=$(timeout 120 "${run[@]}" --rm --rootfs "$rootfs" /bin/echo hi 2>&1); rc=$?
  [ "$who" = doppel ] && echo "podman run --rm echo hi: rc $rc, '$out'"
  check "run --rm --rootfs DIR /bin/echo hi" $who '[ $rc -eq 0 ] && [ "$out" = hi ]'
  timeout 120 "${run[@]}" --rm --rootfs "$rootfs" /bin/sh -c 'exit 7' >/dev/null 2>&1; rc=$?
  check "run returns the container's exit code (7)" $who '[ $rc -eq 7 ]'

  out=$(pty_run $'tty; stty size; echo typed=$((6*7)); exit 3\n' \
        timeout 120 "${run[@]}" --rm -it --rootfs "$rootfs" /bin/sh 2>&1); rc=$?
  [ "$who" = doppel ] && { echo "podman run -it (rc $rc):"; echo "$out" | sed 's/^/  | /'; }
  check "run -it: the shell's stdin is a pty (/dev/pts/0)" $who 'echo "$out" | grep -qx "/dev/pts/0"'
  check "run -it: the pty has the caller's size (33 101)" $who 'echo "$out" | grep -qx "33 101"'
  check "run -it: typed input reaches the shell (typed=42)" $who 'echo "$out" | grep -qx "typed=42"'
  check "run -it: exit code (3)" $who '[ $rc -eq 3 ]'

  # The limit inside (the container's cgroup mount: v1's memory hierarchy or v2) and on
  # the host, in the cgroup below our parent.
  out=$(timeout 120 "${run[@]}" --rm --memory 64m --rootfs "$rootfs" /bin/sh -c \
        'cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max;
         sed -n "s/^[0-9]*:memory://p; s/^0:://p" /proc/self/cgroup | head -1' 2>&1); rc=$?
  limit=$(echo "$out" | head -1)
  [ "$who" = doppel ] && echo "podman run --memory 64m: rc $rc, $(echo $out)"
  check "run --memory 64m: the container reads 67108864" $who '[ $rc -eq 0 ] && [ "$limit" = 67108864 ]'
  timeout 120 "${run[@]}" -d --name "mem-$who" --memory 64m --rootfs "$rootfs" /bin/sleep 300 >/dev/null 2>&1
  cid=$("${podman[@]}" inspect -f '{{.Id}}' "mem-$who" 2>/dev/null)
  if [ -f /sys/fs/cgroup/cgroup.controllers ]; then f=/sys/fs/cgroup/$parent/libpod-$cid/memory.max
  else f=/sys/fs/cgroup/memory/$parent/libpod-$cid/memory.limit_in_bytes; fi
  host=$(cat "$f" 2>&1)
  [ "$who" = doppel ] && echo "host's $f: $host"
  check "run -d --memory 64m: the host's cgroup has the limit" $who '[ "$host" = 67108864 ]'
  out=$(timeout 60 "${podman[@]}" exec "mem-$who" /bin/sh -c 'echo exec says $((1+1))' 2>&1)
  check "exec runs in the container" $who '[ "$out" = "exec says 2" ]'
  timeout 60 "${podman[@]}" rm -f -t 0 "mem-$who" >/dev/null 2>&1
  check "rm -f removes the container's cgroup" $who '[ "$host" = 67108864 ] && [ ! -e "$f" ]'
  add "run --rm --rootfs DIR /bin/echo hi" "run returns the container's exit code (7)" \
      "run -it: the shell's stdin is a pty (/dev/pts/0)" "run -it: the pty has the caller's size (33 101)" \
      "run -it: typed input reaches the shell (typed=42)" "run -it: exit code (3)" \
      "run --memory 64m: the container reads 67108864" "run -d --memory 64m: the host's cgroup has the limit" \
      "exec runs in the container" "rm -f removes the container's cgroup"
done

printf '%-58s %-7s %s\n' check doppel runc
for n in "${names[@]}"; do
  printf '%-58s %-7s %s\n' "$n" "${result[doppel $n]}" "${result[runc $n]:--}"
  if [ "${result[doppel $n]}" != ok ]; then
    if [ "${result[runc $n]:-}" = FAIL ]; then fail "$n (runc fails it too: the machine?)"; else fail "$n"; fi
  fi
done
[ $fails -eq 0 ] && echo "all passed" || echo "$fails failed"
[ $fails -eq 0 ]
