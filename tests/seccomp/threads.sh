#!/usr/bin/env bash
# Per-thread seccomp (issue 14 part 2), judged from outside:
#  1. every thread of a running VM is under a filter (/proc/PID/task/*/status: Seccomp 2),
#     and `--seccomp off` leaves them without;
#  2. each kind of thread, made to attempt a forbidden system call right after installing
#     its filter (seccomp_trigger.c, an LD_PRELOAD library built only for the tests), kills
#     the process with exit 159 and a report naming the thread and the call.
# Threads that start at once use a bare-metal guest that spins; the virtio devices' threads
# start when the guest kit's kernel drives them.
#   threads.sh DOPPEL TRIGGER.so
set -uo pipefail
doppel=${1:?usage: threads.sh DOPPEL TRIGGER.so}
trigger=${2:?usage: threads.sh DOPPEL TRIGGER.so}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
if ! ldd "$doppel" 2>/dev/null | grep -q libseccomp; then
  echo "SKIP: $doppel is not linked dynamically to libseccomp (a static build): the trigger cannot reach it"
  exit 77
fi
tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
  rm -rf "$tmp"
}
trap cleanup EXIT
failures=0 passes=0
pass() { passes=$((passes + 1)); }
failed() { echo "FAIL: $*"; failures=$((failures + 1)); }

printf '\x6f\x00\x00\x00' >"$tmp/spin.bin"  # jal x0, 0
truncate -s 1M "$tmp/disk.img"
spin=(run --firmware none --kernel "$tmp/spin.bin" --memory 64M)

kit=$("$ROOT/guest/build.sh" --arch riscv64 --print-dir 2>/dev/null || true)
[[ -n $kit && -f $kit/kernel ]] || kit=""

# expect_death THREAD[=REPORTED] CALL TIMEOUT DOPPEL-ARGS... [-- ACTION]: the thread named
# THREAD (its comm) makes CALL, and doppel dies by seccomp with the report for it (as
# REPORTED, if the report's name differs: the main thread keeps the process's comm) and
# CALL. ACTION (a shell command) runs once doppel is up.
expect_death() {
  local thread=${1%%=*} reported=${1#*=} call=$2 limit=$3 out="$tmp/${1%%=*}-$2.out" rc action="" args=()
  shift 3
  while (($#)); do
    if [[ $1 == -- ]]; then action=$2; break; fi
    args+=("$1"); shift
  done
  rm -f "$tmp/api.sock" "$tmp/gdb.sock"
  LD_PRELOAD=$trigger ASAN_OPTIONS=verify_asan_link_order=0 DOPPEL_SECCOMP_TEST_THREAD=$thread \
    DOPPEL_SECCOMP_TEST_CALL=$call timeout "$limit" "$doppel" "${args[@]}" </dev/null >"$out" 2>&1 &
  local pid=$!
  pids+=("$pid")
  if [[ -n $action ]]; then
    for _ in $(seq 100); do [[ -S $tmp/api.sock ]] && break; sleep 0.1; done
    eval "$action" >/dev/null 2>&1
  fi
  wait "$pid"
  rc=$?
  local want="doppel: seccomp: thread '$reported' made a forbidden system call: $call \\([0-9]+\\)"
  if [[ $rc -ne 159 ]] || ! grep -qE "$want" "$out"; then
    failed "thread $thread, $call: exit $rc (want 159), output:"
    tail -n 15 "$out" | sed 's/^/    /'
    echo "    (want a line matching: $want)"
  else
    pass
    echo "ok: $(grep -aE "$want" "$out" | tr -d '\r')"
  fi
}

# --- 1. every thread is filtered ---
"$doppel" "${spin[@]}" --disk "$tmp/disk.img,bw=1000000/100" --net user --api-sock "$tmp/api.sock" \
  --gdb "unix:$tmp/gdb.sock" </dev/null >"$tmp/all.out" 2>&1 &
all=$!
pids+=("$all")
sleep 3
if ! kill -0 "$all" 2>/dev/null; then
  failed "the VM with every thread kind did not keep running:"; sed 's/^/    /' "$tmp/all.out"
else
  unfiltered=$(for s in /proc/$all/task/*/status; do
                 awk '/^Name:/{n=$2} /^Seccomp:/{if ($2 != 2) print n" (Seccomp "$2")"}' "$s"; done)
  names=$(cat /proc/$all/task/*/comm | sort | uniq -c | tr -s ' ' | tr '\n' ',')
  if [[ -n $unfiltered ]]; then failed "threads without a filter: $unfiltered (threads: $names)"
  else pass; echo "ok: every thread filtered:$names"; fi
fi
kill -9 "$all" 2>/dev/null; wait "$all" 2>/dev/null
"$doppel" "${spin[@]}" --seccomp off </dev/null >"$tmp/off.out" 2>&1 &
off=$!
pids+=("$off")
sleep 2
if grep -q "Seccomp:[[:space:]]*2" /proc/$off/task/*/status 2>/dev/null; then failed "--seccomp off: a thread has a filter"
else pass; echo "ok: --seccomp off: no filters"; fi
kill -9 "$off" 2>/dev/null; wait "$off" 2>/dev/null

# --- 2. each kind dies on a forbidden call ---
expect_death vcpu0 execve 60 "${spin[@]}"
expect_death vcpu0 openat 60 "${spin[@]}"
expect_death vcpu0 socket 60 "${spin[@]}"
expect_death doppel=main execve 60 "${spin[@]}"
expect_death doppel=main openat 60 "${spin[@]}"
expect_death clint-timer execve 60 "${spin[@]}"
expect_death stdin ptrace 60 "${spin[@]}"
expect_death virtio-blk openat 60 "${spin[@]}" --disk "$tmp/disk.img"
expect_death virtio-blk0-rl execve 60 "${spin[@]}" --disk "$tmp/disk.img,bw=1000000/100"
expect_death slirp execve 60 "${spin[@]}" --net user
expect_death api execve 60 "${spin[@]}" --api-sock "$tmp/api.sock"
expect_death gdb openat 60 "${spin[@]}" --gdb "unix:$tmp/gdb.sock"
expect_death api-job execve 60 "${spin[@]}" --api-sock "$tmp/api.sock" -- \
  "curl -s --unix-socket $tmp/api.sock -X PUT http://localhost/migrate -d '{\"destination\": \"unix:$tmp/nobody.sock\"}'"

# The virtio devices' threads start when the guest's driver sets DRIVER_OK.
if [[ -z $kit ]]; then
  echo "SKIP (part): no riscv64 guest kit (guest/build.sh --arch riscv64): net-rx, console-rx, vsock not tried"
else
  expect_death net-rx execve 400 run --arch riscv64 --memory 128M --net user
  expect_death console-rx openat 400 run --arch riscv64 --memory 128M --console2 "socket=$tmp/c2.sock"
  expect_death vsock execve 400 run --arch riscv64 --memory 128M --vsock "cid=3,uds=$tmp/v.sock"
fi

echo "seccomp threads: $passes passed, $failures failed"
((failures == 0))
