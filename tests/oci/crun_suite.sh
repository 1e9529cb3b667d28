#!/bin/bash
# Runs crun 1.8.1's own test suite (tests/test_*.py from Debian's crun source package,
# fetched at test time, never copied into doppel) against an OCI runtime.
#   crun_suite.sh RUNTIME [TEST_FILE...]
# Prints each TAP line prefixed with the test file, then "PASS n FAIL m SKIP k".
# Environment: CRUN_SUITE_CACHE (default ~/.cache/doppel/oci-src), CRUN_SUITE_TIMEOUT
# (seconds per test file, default 300).
set -u
runtime=$(readlink -f "$1"); shift
cache=${CRUN_SUITE_CACHE:-$HOME/.cache/doppel/oci-src}
per_file_timeout=${CRUN_SUITE_TIMEOUT:-300}

if [ "$(id -u)" != 0 ]; then echo "SKIP: crun's suite needs root"; exit 77; fi
src=$("$(dirname "$0")/fetch_crun.sh" "$cache") || exit 77
tests="$src/tests"

work=$(mktemp -d /tmp/doppel-crun-suite.XXXXXX)
trap 'rm -rf "$work"' EXIT
cp -a "$tests"/. "$work"/
cd "$work" || exit 1
export INIT="$cache/init" OCI_RUNTIME="$runtime" LANG=C

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
  if [ -n "${CRUN_SUITE_VERBOSE:-}" ]; then sed "s|^|$f stderr: |" "$work/$f.stderr" | head -50; fi
done
echo "PASS $pass FAIL $fail SKIP $skip"
