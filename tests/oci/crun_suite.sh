#!/bin/bash
# Runs crun 1.8.1's own test suite (tests/test_*.py from Debian's crun source package,
# fetched at test time, never copied into doppel) against an OCI runtime.
#   crun_suite.sh [--adapt-runc] RUNTIME [TEST_FILE...]
# --adapt-runc runs RUNTIME through a wrapper that drops the two crun-only flags the suite
# passes on every run (--cgroup-manager cgroupfs, and --config config.json, which is
# runc's default anyway); without it runc refuses nearly every test on "flag provided
# but not defined".
# Prints each TAP line prefixed with the test file, then "PASS n FAIL m SKIP k".
# Environment: CRUN_SUITE_CACHE (default ~/.cache/doppel/oci-src), CRUN_SUITE_TIMEOUT
# (seconds per test file, default 300).
set -u
adapt=
if [ "${1:-}" = --adapt-runc ]; then adapt=1; shift; fi
runtime="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"; shift  # not readlink -f: doppel-runc is a link whose name matters
cache=${CRUN_SUITE_CACHE:-$HOME/.cache/doppel/oci-src}
per_file_timeout=${CRUN_SUITE_TIMEOUT:-300}

if [ "$(id -u)" != 0 ]; then echo "SKIP: crun's suite needs root"; exit 77; fi
src=$("$(dirname "$0")/fetch_crun.sh" "$cache") || exit 77
tests="$src/tests"

work=$(mktemp -d /tmp/doppel-crun-suite.XXXXXX)
cleanup() {
  reap_leftovers
  # test_delete.py freezes a container in a v1 freezer cgroup of its own ("frozen") and
  # cannot remove it while the killed process waits there: thaw it and remove it.
  local f=/sys/fs/cgroup/freezer/frozen
  if [ -d "$f" ]; then
    echo THAWED > "$f/freezer.state" 2>/dev/null
    for _ in $(seq 50); do rmdir "$f" 2>/dev/null && break; sleep 0.1; done
  fi
  rm -rf "$work"
}
# After each test file: a test that fails half-way (or uses a crun-only flag) can leave a
# container running. The ids this run created (noted by $work/id-logger, which runs the
# runtime) name its cgroups: kill what is left there and remove them. Only this run's: the
# suite may run in another worktree at the same time, with containers named alike.
reap_leftovers() {
  local id d pid
  for id in $(sort -u "$work/.ids" 2>/dev/null); do
    for d in $(find /sys/fs/cgroup -mindepth 1 -maxdepth 2 -type d -name "$id" 2>/dev/null); do
      [ -f "$d/freezer.state" ] && echo THAWED > "$d/freezer.state" 2>/dev/null
      [ -f "$d/cgroup.freeze" ] && echo 0 > "$d/cgroup.freeze" 2>/dev/null
      for pid in $(cat "$d/cgroup.procs" 2>/dev/null); do kill -9 "$pid" 2>/dev/null; done
    done
    for d in $(find /sys/fs/cgroup -mindepth 1 -maxdepth 2 -type d -name "$id" 2>/dev/null); do
      for _ in $(seq 20); do rmdir "$d" 2>/dev/null && break; [ -d "$d" ] || break; sleep 0.1; done
    done
  done
}
trap cleanup EXIT
trap 'exit 143' TERM INT HUP  # a killed run cleans up too (bash skips the EXIT trap otherwise)
cp -a "$tests"/. "$work"/
cd "$work" || exit 1
touch "$work/.start"
# The tests that run as another user (chown_rootfs_to) make their bundles with mkdtemp() and
# never remove them: keep those in $work too (its path must be searchable by that user).
chmod 755 "$work"
mkdir -m 1777 "$work/tmp"
export TMPDIR=$work/tmp
if [ -n "$adapt" ]; then
  cat > "$work/runc-adapter" <<ADAPTER
#!/bin/bash
args=()
while [ \$# -gt 0 ]; do
  case "\$1" in
    --cgroup-manager) shift 2; continue ;;
    --config) if [ "\$2" = config.json ]; then shift 2; continue; fi ;;
  esac
  args+=("\$1"); shift
done
exec "$runtime" "\${args[@]}"
ADAPTER
  chmod +x "$work/runc-adapter"
  runtime="$work/runc-adapter"
fi
# The runtime the suite calls: notes the id of each container made (run/create's last
# argument, the names crun's tests give: test-*, container-*), then runs the runtime.
cat > "$work/id-logger" <<LOGGER
#!/bin/bash
cmd=
for a; do
  case "\$a" in --root|--log|--log-format|--cgroup-manager) skip=1; continue ;; -*) continue ;; esac
  [ -n "\${skip:-}" ] && { skip=; continue; }
  cmd=\$a; break
done
if [ "\$cmd" = run ] || [ "\$cmd" = create ]; then
  case "\${@: -1}" in test-*|container-*) echo "\${@: -1}" >> "$work/.ids" ;; esac
fi
exec "$runtime" "\$@"
LOGGER
chmod +x "$work/id-logger"
export INIT="$cache/init" OCI_RUNTIME="$work/id-logger" LANG=C
# test_exec.py's exec_write_pid_file accepts only a pid of five digits or more: on a host
# whose pids are still below 10000 it fails for any runtime, and the runtime that runs
# second (once pids reach 10000) passes it. Start every run at 10000, as pids on a busy
# host are, and far enough from pid_max (a run takes about 8000 pids) not to wrap.
last_pid=$(cat /proc/sys/kernel/ns_last_pid 2>/dev/null || echo 0)
pid_max=$(cat /proc/sys/kernel/pid_max)
if [ "$pid_max" -gt 30000 ] && { [ "$last_pid" -lt 10000 ] || [ "$last_pid" -gt $((pid_max - 12000)) ]; }; then
  echo 10000 >/proc/sys/kernel/ns_last_pid 2>/dev/null ||
    echo "crun_suite: cannot move the pid counter past 10000; exec_write_pid_file may fail" >&2
fi

files=("$@")
[ ${#files[@]} -eq 0 ] && files=(test_*.py)
pass=0 fail=0 skip=0
for f in "${files[@]}"; do
  out=$(timeout -k 5 "$per_file_timeout" python3 "$f" 2>"$work/$f.stderr")
  rc=$?
  while IFS= read -r line; do
    case "$line" in
      "ok "*"#SKIP"*) skip=$((skip + 1)); echo "$f: $line" ;;
      "ok "*) pass=$((pass + 1)); echo "$f: $line" ;;
      "not ok "*) fail=$((fail + 1)); echo "$f: $line" ;;
    esac
  done <<< "$out"
  if [ $rc -ne 0 ]; then
    echo "$f: exited $rc (timeout is 124)"; fail=$((fail + 1))
  fi
  reap_leftovers
  if [ -n "${CRUN_SUITE_VERBOSE:-}" ]; then sed "s|^|$f stderr: |" "$work/$f.stderr" | head -50; fi
done
echo "PASS $pass FAIL $fail SKIP $skip"
