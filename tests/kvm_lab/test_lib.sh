# What the lab tests' host sides share (sourced by tests/kvm_lab/*_test.sh, which ctest
# calls as `TEST.sh DOPPEL GUEST_DIR`): skips without the x86_64 guest kit or QEMU, a
# temporary directory removed on exit, the cpumark reference checksum, and `expect`, which
# checks the lab's output. Sets here, doppel, guest_dir, tmp, out and fail.
here=$(cd "$(dirname "$0")" && pwd)
doppel=$1 guest_dir=${2:-}
if [ -z "$guest_dir" ] || [ ! -f "$guest_dir/kernel" ]; then
  echo "SKIP: no x86_64 guest kit (guest/build.sh --arch x86_64)"; exit 77
fi
if ! command -v qemu-system-x86_64 >/dev/null; then echo "SKIP: no qemu-system-x86_64"; exit 77; fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
out=$tmp/lab.out
fail=0

# lab_cpumark N: builds cpumark here, leaves N in $tmp/cpumark_n for the L1 script (pass it
# with --extra) and sets want to the checksum an uninterrupted run prints (it depends on N
# only).
lab_cpumark() {
  echo "$1" >"$tmp/cpumark_n"
  gcc -O2 -ffp-contract=off -o "$tmp/cpumark" "$here/../../guest/programs/cpumark.c" -lm ||
    { echo "FAIL: cannot build cpumark"; exit 1; }
  want=$("$tmp/cpumark" "$1" | grep -o 'checksum 0x[0-9a-f]*')
}

# lab_run ARGS...: tests/kvm_lab/lab.sh with ARGS, its output teed to $out; a lab that did
# not run fails the test. One whose L1 stopped before its script ended (lab.sh's status 3:
# L1 reset or died under L0) runs once more, and says so.
lab_run() {
  local try status
  for try in 1 2; do
    "$here/lab.sh" --doppel "$doppel" --guest-dir "$guest_dir" "$@" | tee "$out"
    status=${PIPESTATUS[0]}
    [ "$status" = 3 ] && [ "$try" = 1 ] || break
    echo "NOTE: the lab's L1 stopped before its script ended (lab.sh status 3); running it again"
  done
  [ "$status" = 0 ] || { echo "FAIL: the lab did not run (status $status)"; exit 1; }
}

expect() {  # pattern description
  if grep -q -- "$1" "$out"; then echo "ok: $2"; else echo "FAIL: $2 (no '$1' in the output)"; fail=1; fi
}
