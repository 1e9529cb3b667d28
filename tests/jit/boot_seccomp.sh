#!/usr/bin/env bash
# The JIT under the per-thread seccomp filters (on by default): the riscv64 guest kit boots
# with `--jit on`, runs a command and powers off (exit 0); while it runs, every thread of
# the VM, the vCPU threads that run translated code among them, is under a filter
# (/proc/PID/task/*/status: Seccomp 2). The code cache is mapped before any thread seals
# itself; no thread may map executable memory afterwards.
#   boot_seccomp.sh DOPPEL SOURCE_DIR CPUS
# Exit 77 (ctest: skipped) if the guest kit is not built.
set -uo pipefail
doppel=$1
src=$2
cpus=$3

kit=$("$src/guest/build.sh" --arch riscv64 --print-dir 2>/dev/null | tail -n 1)
if [[ -z $kit || ! -f $kit/kernel ]]; then
  echo "SKIP: the riscv64 guest kit is not built (run: $doppel guest build --arch riscv64)"
  exit 77
fi

tmp=$(mktemp -d)
pid=""
cleanup() {
  [[ -n $pid ]] && kill -9 "$pid" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT

mkfifo "$tmp/in"
timeout 600 "$doppel" run --arch riscv64 --cpus "$cpus" --jit on <"$tmp/in" >"$tmp/out" 2>&1 &
pid=$!
exec 3>"$tmp/in"

fail=0
# Wait for the shell, then look at the threads of the running VM.
for _ in $(seq 600); do
  grep -q "doppel-guest: ready" "$tmp/out" && break
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.5
done
vpid=$(pgrep -P "$pid" -x doppel | head -n 1)  # $pid is timeout's
vcpus=0
unfiltered=""
[[ -z $vpid ]] && unfiltered=" (no doppel process under timeout $pid)"
for s in /proc/"${vpid:-0}"/task/*/status; do
  name=$(awk '/^Name:/{print $2}' "$s" 2>/dev/null)
  sc=$(awk '/^Seccomp:/{print $2}' "$s" 2>/dev/null)
  [[ -z $name ]] && continue
  [[ $name == vcpu* ]] && vcpus=$((vcpus + 1))
  [[ $sc != 2 ]] && unfiltered+=" $name(Seccomp $sc)"
done
if [[ $vcpus -eq $cpus && -z $unfiltered ]]; then
  echo "ok: all threads filtered, $vcpus vCPU threads among them"
else
  echo "FAIL: $vcpus vCPU threads (want $cpus); threads without a filter:${unfiltered:- none}"
  fail=1
fi

# Single quotes: the guest's shell computes 6*7.
printf 'echo hello-$((6*7))\npoweroff -f\n' >&3
exec 3>&-
wait "$pid"
rc=$?
pid=""

check() {
  if grep -q -- "$1" "$tmp/out"; then echo "ok: output has '$1'"; else echo "FAIL: no '$1' in the output"; fail=1; fi
}
check "doppel-guest: ready"
check "hello-42"
if [[ $rc -eq 0 ]]; then echo "ok: exit code 0"; else echo "FAIL: exit code $rc, expected 0"; fail=1; fi
if [[ $fail -ne 0 ]]; then
  echo "---- output (last 40 lines) ----"
  tail -n 40 "$tmp/out"
fi
exit "$fail"
