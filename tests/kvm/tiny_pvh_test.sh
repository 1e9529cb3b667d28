#!/bin/sh
# ctest kvm_tiny_pvh: a tiny PVH ELF (tests/guests/pio_loop_pvh.S: XEN_ELFNOTE_PHYS32_ENTRY,
# 32-bit entry, 1000 port-I/O exits, then the ACPI sleep register) boots through doppel's
# PVH loader on /dev/kvm and powers off with exit 0.   tests/kvm/tiny_pvh_test.sh DOPPEL
set -u
doppel=$1
here=$(cd "$(dirname "$0")" && pwd)
if [ ! -r /dev/kvm ] || [ ! -w /dev/kvm ]; then echo "SKIP: /dev/kvm is not available"; exit 77; fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
as --64 --defsym N=1000 -o "$tmp/g.o" "$here/../guests/pio_loop_pvh.S" &&
  ld -m elf_x86_64 -N -Ttext=0x100000 -o "$tmp/g.elf" "$tmp/g.o" 2>/dev/null ||
  { echo "FAIL: cannot assemble the PVH guest"; exit 1; }
timeout 30 "$doppel" run --arch x86_64 --engine kvm --kernel "$tmp/g.elf" --initrd none --memory 32 </dev/null
code=$?
if [ $code -ne 0 ]; then echo "FAIL: doppel exited $code, expected 0"; exit 1; fi
echo "ok: PVH entry, 1000 port exits, ACPI power off"
