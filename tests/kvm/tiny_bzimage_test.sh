#!/bin/sh
# ctest kvm_tiny_bzimage: tests/kvm/tiny_bzimage_test.sh DOPPEL
set -u
doppel=$1
here=$(cd "$(dirname "$0")" && pwd)
if [ ! -r /dev/kvm ] || [ ! -w /dev/kvm ]; then echo "SKIP: /dev/kvm is not available"; exit 77; fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$here/../guests/make_bzimage.sh" "$tmp/bzImage" || { echo "FAIL: cannot assemble the tiny bzImage"; exit 1; }
timeout 30 "$doppel" run --arch x86_64 --engine kvm --kernel "$tmp/bzImage" --initrd none --memory 32 \
  --cmdline "console=ttyS0" </dev/null >"$tmp/out" 2>"$tmp/err"
code=$?
cat "$tmp/out"
fail=0
if [ $code -ne 0 ]; then
  echo "FAIL: doppel exited $code, expected 0 (the guest powers off through ACPI)"; cat "$tmp/err"; fail=1
fi
grep -q "long mode ok" "$tmp/out" || { echo "FAIL: no 'long mode ok' from the guest on COM1"; fail=1; }
[ $fail = 0 ] && echo "ok: tiny bzImage entered 64-bit mode, printed on COM1 and powered off"
exit $fail
