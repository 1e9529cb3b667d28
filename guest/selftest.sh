#!/usr/bin/env bash
# Fast checks of the guest kit that need no kernel build (a few seconds):
#   - build.sh argument errors name the problem and exit non-zero;
#   - --print-dir is stable, lands under $XDG_CACHE_HOME, and changes when any input changes;
#   - cpumark builds warning-free natively and prints the known checksum; rejects bad input.
# Usage: guest/selftest.sh     (exit 0 = all passed)
set -euo pipefail

GUEST_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CPUMARK_1=0xfdd3294ff868d216
CPUMARK_3=0x6725e36ebdd0cff1
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
fails=0
pass() { echo "selftest: ok: $*"; }
fail() { echo "selftest: FAIL: $*" >&2; fails=$((fails + 1)); }

# expect_error WANT-SUBSTRING CMD...: the command fails and its stderr names the problem.
expect_error() {
  local want=$1; shift
  local err rc=0
  err=$("$@" 2>&1 >/dev/null) || rc=$?
  if [[ $rc -ne 0 && $err == *"$want"* ]]; then pass "'$*' fails with '$want'"
  else fail "'$*': rc=$rc, stderr '$err' (want failure mentioning '$want')"; fi
}

expect_error "--arch is required" "$GUEST_DIR/build.sh"
expect_error "unsupported --arch 'arm64'" "$GUEST_DIR/build.sh" --arch arm64
expect_error "unknown argument '--bogus'" "$GUEST_DIR/build.sh" --arch x86_64 --bogus

# --print-dir: deterministic, under the cache root, one line.
export XDG_CACHE_HOME=$WORK/cache
for arch in riscv64 x86_64; do
  a=$("$GUEST_DIR/build.sh" --arch "$arch" --print-dir)
  b=$("$GUEST_DIR/build.sh" --arch "$arch" --print-dir)
  if [[ $a == "$b" && $a =~ ^$WORK/cache/doppel/guests/$arch-[0-9a-f]{16}$ ]]; then
    pass "--print-dir $arch is stable: ${a##*/}"
  else
    fail "--print-dir $arch: '$a' then '$b'"
  fi
  [[ ! -e $a ]] && pass "--print-dir $arch built nothing" || fail "--print-dir created $a"
done

# Each input changes the hash: copy the kit, touch one file at a time.
cp -r "$GUEST_DIR" "$WORK/kit"
base=$("$WORK/kit/build.sh" --arch riscv64 --print-dir)
for f in build.sh init riscv64/kernel.config riscv64/busybox.config programs/cpumark.c; do
  cp "$WORK/kit/$f" "$WORK/saved"
  echo "# selftest" >> "$WORK/kit/$f"
  changed=$("$WORK/kit/build.sh" --arch riscv64 --print-dir)
  cp "$WORK/saved" "$WORK/kit/$f"
  [[ $changed != "$base" ]] && pass "editing $f changes the output directory" ||
    fail "editing $f does not change the output directory"
done
echo 'int main(void) { return 0; }' > "$WORK/kit/programs/newprog.c"
[[ $("$WORK/kit/build.sh" --arch riscv64 --print-dir) != "$base" ]] &&
  pass "adding a program changes the output directory" || fail "adding a program does not change the hash"
rm "$WORK/kit/programs/newprog.c"
[[ $("$WORK/kit/build.sh" --arch x86_64 --print-dir) != "$base" ]] && pass "arches hash apart" ||
  fail "x86_64 and riscv64 share a directory"
[[ $("$WORK/kit/build.sh" --arch riscv64 --print-dir) == "$base" ]] &&
  pass "restoring the inputs restores the directory" || fail "hash not a function of the inputs"

# cpumark, natively, with the guest kit's flags.
if gcc -static -O2 -ffp-contract=off -Wall -Wextra -Werror -o "$WORK/cpumark" \
    "$GUEST_DIR/programs/cpumark.c" -lm; then
  out1=$("$WORK/cpumark" 1)
  out3=$("$WORK/cpumark" 3)
  [[ $out1 == *"checksum $CPUMARK_1,"* ]] && pass "cpumark 1: $out1" || fail "cpumark 1: $out1 (want $CPUMARK_1)"
  [[ $out3 == *"checksum $CPUMARK_3,"* ]] && pass "cpumark 3 checksum" || fail "cpumark 3: $out3 (want $CPUMARK_3)"
  expect_error "got 'abc'" "$WORK/cpumark" abc
  expect_error "got '0'" "$WORK/cpumark" 0
  expect_error "usage" "$WORK/cpumark" 1 2
else
  fail "cpumark does not compile natively"
fi
# The same checksum from the riscv64 build, when the cross compiler and qemu-user exist.
if command -v riscv64-linux-gnu-gcc >/dev/null && command -v qemu-riscv64 >/dev/null; then
  riscv64-linux-gnu-gcc -static -O2 -ffp-contract=off -Wall -Wextra -Werror -o "$WORK/cpumark-rv" \
    "$GUEST_DIR/programs/cpumark.c" -lm
  out=$(qemu-riscv64 "$WORK/cpumark-rv" 1)
  [[ $out == *"checksum $CPUMARK_1,"* ]] && pass "riscv64 cpumark 1 (qemu-user) matches" ||
    fail "riscv64 cpumark 1: $out (want $CPUMARK_1)"
fi

if [[ $fails -ne 0 ]]; then
  echo "selftest: $fails check(s) failed" >&2
  exit 1
fi
echo "selftest: all passed"
