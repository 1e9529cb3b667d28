#!/usr/bin/env bash
# "Boot anything": a bare-metal program (baremetal.S, built here with Debian's riscv64
# cross compiler) as an ELF and as a raw binary, with --firmware none (the program starts in
# M-mode at its entry, a0 = hart id, a1 = device tree, as QEMU's -bios none) and behind
# OpenSBI fw_jump (ELF and .bin; the program runs in S-mode at fw_jump's 0x80200000). It
# prints through the UART and powers off through the finisher: exit 0; a failure code
# written to the finisher ends doppel with 4. A non-RISC-V ELF is refused with the reason.
#   baremetal.sh DOPPEL SOURCE_DIR WORKDIR
# Exit 77 (ctest: skipped) without the cross compiler or OpenSBI.
set -u
doppel=$1
src=$2
work=$3
fw=/usr/lib/riscv64-linux-gnu/opensbi/generic
if ! command -v riscv64-linux-gnu-gcc >/dev/null || [ ! -f "$fw/fw_jump.elf" ]; then
  echo "SKIP: needs gcc-riscv64-linux-gnu and opensbi (scripts/install-deps)"
  exit 77
fi
rm -rf "$work" && mkdir -p "$work"
build() {  # build NAME [CFLAGS...]
  local name=$1; shift
  riscv64-linux-gnu-gcc -nostdlib -nostartfiles -static -no-pie -march=rv64gc -mabi=lp64d "$@" \
    -Wl,-Ttext=0x80200000,-N,--build-id=none,--no-warn-rwx-segments \
    -o "$work/$name.elf" "$src/tests/boot_riscv64/baremetal.S" || exit 1
  riscv64-linux-gnu-objcopy -O binary "$work/$name.elf" "$work/$name.bin" || exit 1
}
build hello
build fail -DFINISHER=0x73333

fail=0
# run NAME EXPECTED_EXIT DOPPEL_ARGS... ; then `want TEXT` checks NAME's output.
run() {
  local name=$1 want_rc=$2; shift 2
  out=$work/$name.out
  timeout 120 "$doppel" run --arch riscv64 "$@" </dev/null >"$out" 2>&1
  local rc=$?
  if [ "$rc" -eq "$want_rc" ]; then echo "ok: $name: exit code $rc"
  else echo "FAIL: $name: exit code $rc, expected $want_rc"; fail=1; fi
}
want() {
  if grep -q -- "$1" "$out"; then echo "ok:   has '$1'"
  else echo "FAIL: $out has no '$1':"; sed 's/^/    | /' "$out" | tail -n 20; fail=1; fi
}
wont() {
  if grep -q -- "$1" "$out"; then echo "FAIL: $out has '$1'"; fail=1; else echo "ok:   no '$1'"; fi
}

run none-elf 0 --firmware none --kernel "$work/hello.elf"
want "baremetal: hello from hart 0"; want "a1 holds a device tree"; want "running in M-mode"
wont "OpenSBI"
run none-raw-2harts 0 --firmware none --kernel "$work/hello.bin" --cpus 2
want "a1 holds a device tree"; want "running in M-mode"
run fw_jump-elf 0 --firmware "$fw/fw_jump.elf" --kernel "$work/hello.elf"
want "OpenSBI"; want "a1 holds a device tree"; want "running in S-mode"
run fw_jump-bin 0 --firmware "$fw/fw_jump.bin" --kernel "$work/hello.bin"
want "OpenSBI"; want "running in S-mode"
run fw_dynamic-elf 0 --firmware "$fw/fw_dynamic.bin" --kernel "$work/hello.elf"
want "OpenSBI"; want "running in S-mode"
run fail-code 4 --firmware none --kernel "$work/fail.elf"
want "running in M-mode"; want "the guest reported a failure (code 7)"
# Refused before anything runs, naming the file and the reason.
run x86-elf 1 --firmware none --kernel /bin/true
want "kernel '/bin/true': an ELF for machine 62 (x86-64), not RISC-V"
exit $fail
