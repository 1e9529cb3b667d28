#!/bin/sh
# Boots the guest kit's default riscv64 guest on the emulator, types commands on the
# console through a pipe, and checks what a user would see.
#   boot.sh DOPPEL SOURCE_DIR CPUS
# Exit 77 (ctest: skipped) if the guest kit is not built.
set -u
doppel=$1
src=$2
cpus=$3

kit=$("$src/guest/build.sh" --arch riscv64 --print-dir 2>/dev/null | tail -n 1)
if [ -z "$kit" ] || [ ! -f "$kit/kernel" ]; then
  echo "SKIP: the riscv64 guest kit is not built (run: $doppel guest build --arch riscv64)"
  exit 77
fi

out=$(mktemp)
trap 'rm -f "$out"' EXIT
start=$(date +%s)
# Single quotes: the guest's shell, not this one, must compute 6*7.
printf 'uname -a\necho hello-$((6*7))\npoweroff -f\n' |
  timeout 600 "$doppel" run --arch riscv64 --cpus "$cpus" >"$out" 2>&1
rc=$?
end=$(date +%s)

fail=0
check() {
  if grep -q -- "$1" "$out"; then echo "ok: output has '$1'"; else echo "FAIL: no '$1' in the output"; fail=1; fi
}
check "doppel-guest: ready"
check "Linux doppel .* riscv64"
check "hello-42"
if [ "$rc" -eq 0 ]; then echo "ok: exit code 0"; else echo "FAIL: exit code $rc, expected 0"; fail=1; fi
echo "boot + commands + poweroff on $cpus hart(s): $((end - start)) s"
if [ "$fail" -ne 0 ]; then
  echo "---- output (last 60 lines) ----"
  tail -n 60 "$out"
fi
exit "$fail"
