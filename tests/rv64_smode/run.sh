#!/bin/sh
# Boots OpenSBI (Debian's fw_dynamic.bin) with smode_payload.S as the "kernel" on doppel's
# riscv64 emulator and checks the console and the exit code.
#   run.sh DOPPEL SOURCE_DIR WORKDIR
# Exit 77 (ctest: skipped) when OpenSBI or the riscv64 cross tools are not installed.
set -u
doppel=$1
src=$2
work=$3
fw=/usr/lib/riscv64-linux-gnu/opensbi/generic/fw_dynamic.bin
if [ ! -f "$fw" ] || ! command -v riscv64-linux-gnu-gcc >/dev/null; then
  echo "SKIP: needs opensbi and gcc-riscv64-linux-gnu (scripts/install-deps)"
  exit 77
fi
mkdir -p "$work"
riscv64-linux-gnu-gcc -nostdlib -march=rv64gc -mabi=lp64d -Wl,-Ttext=0x80200000 \
  -o "$work/payload.elf" "$src/tests/rv64_smode/smode_payload.S" || exit 1
riscv64-linux-gnu-objcopy -O binary -j .text "$work/payload.elf" "$work/payload.bin" || exit 1
printf '' | gzip >"$work/empty.gz"
timeout 120 "$doppel" run --arch riscv64 --kernel "$work/payload.bin" --initrd "$work/empty.gz" \
  --firmware "$fw" >"$work/out.txt" 2>&1
rc=$?
cat "$work/out.txt"
fail=0
for want in "OpenSBI" "hello from S-mode" "paging on, still alive" "=F="; do
  if grep -q -- "$want" "$work/out.txt"; then echo "ok: '$want'"; else echo "FAIL: no '$want'"; fail=1; fi
done
if [ "$rc" -ne 0 ]; then echo "FAIL: doppel exited $rc (expected 0 after SBI shutdown)"; fail=1; fi
exit $fail
