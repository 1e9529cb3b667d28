#!/usr/bin/env bash
# gdb-multiarch against the riscv64 guest kit on the emulator, as an OS developer uses
# QEMU's -s -S: doppel --gdb unix:SOCK --gdb-wait holds the VM at its reset address; gdb
# (batch mode, the kit's vmlinux for symbols) breaks at start_kernel, continues, hits it,
# takes a backtrace, reads registers and memory, steps instructions, watches a write,
# asks the monitor, deletes its breakpoints and detaches; the guest then boots to its shell
# and powers off (exit 0). With 4 harts: 4 threads, switching between them, and a
# breakpoint that a secondary hart hits.
#   tests/gdb/boot.sh HARTS
# Exit 77 (ctest: skipped) without the guest kit, its vmlinux or gdb-multiarch.
set -euo pipefail
source "$(dirname "$0")/../virtio_guest/lib.sh"
HARTS=${1:-1}
need gdb-multiarch
KIT=$(guest_dir)
[[ -s $KIT/vmlinux ]] || skip "$KIT has no vmlinux (rebuild the kit: guest/build.sh --arch riscv64)"
SOCK=$WORK/gdb.sock
GDB_OUT=$WORK/gdb-multiarch.out

vm_start vm "$(doppel_cmd --cpus "$HARTS" --gdb "unix:$SOCK" --gdb-wait)"
for _ in $(seq 1 600); do [[ -S $SOCK ]] && break; kill -0 "$VM_PID" || fail "doppel exited"; sleep 0.1; done
[[ -S $SOCK ]] || fail "no gdb socket at $SOCK"
# Held before the first instruction: OpenSBI has printed nothing.
sleep 1
grep -aq 'OpenSBI' "$VM_OUT" && fail "the guest ran before gdb attached (--gdb-wait)"

common=(-batch -nx -ex 'set pagination off' -ex 'set confirm off' -ex "file $KIT/vmlinux"
        -ex "target remote $SOCK")
if [[ $HARTS == 1 ]]; then
  cmds=(-ex 'info threads'
        -ex 'break start_kernel' -ex 'continue'
        -ex 'bt'
        -ex 'info registers pc sp ra priv'
        -ex 'x/2i $pc' -ex 'x/4xw start_kernel'
        -ex 'p/x $sp' -ex 'stepi' -ex 'stepi' -ex 'stepi' -ex 'p/x $pc - (long)start_kernel'
        -ex 'p/x $sp'
        -ex 'watch *(unsigned long *)&jiffies_64' -ex 'continue'
        -ex 'delete'
        -ex 'monitor info status' -ex 'monitor info registers'
        -ex 'monitor xp /2xw 0x80200000'
        -ex 'detach')
else
  cmds=(-ex 'break start_kernel' -ex 'continue'
        -ex 'info threads')
  for t in 1 2 3 4; do cmds+=(-ex "thread $t" -ex 'p $priv'); done
  cmds+=(-ex 'delete'
         -ex 'break smp_callin' -ex 'continue'
         -ex 'info threads' -ex 'bt 1'
         -ex 'delete'
         -ex 'detach')
fi
timeout 300 gdb-multiarch "${common[@]}" "${cmds[@]}" >"$GDB_OUT" 2>&1 ||
  { cat "$GDB_OUT"; fail "gdb-multiarch exited $?"; }
cat "$GDB_OUT"
expect() { grep -aqE -- "$1" "$GDB_OUT" || fail "gdb's output lacks /$1/ ($2)"; }
if [[ $HARTS == 1 ]]; then
  expect '^\* 1 +Thread 1 .* 0x0*80000000 in' "attached at the reset address"
  expect '^Breakpoint 1, 0x[0-9a-f]+ in start_kernel \(\)' "the breakpoint at start_kernel is hit"
  expect '^#0 +0x[0-9a-f]+ in start_kernel \(\)' "backtrace frame 0"
  expect '^#1 +0x[0-9a-f]+ in _start_kernel \(\)' "backtrace frame 1 (the caller)"
  expect '^pc[[:space:]]+0xffffffff[0-9a-f]+[[:space:]]+0xffffffff[0-9a-f]+ <start_kernel>' "pc register"
  expect '^priv[[:space:]]+0x1[[:space:]]+prv:1 \[Supervisor\]' "the privilege level (S-mode)"
  expect '^=> 0x[0-9a-f]+ <start_kernel>:' "disassembly at pc"
  # Memory read through the page tables: the words at start_kernel are code, not zero.
  grep -aE '^0x[0-9a-f]+ <start_kernel>:' "$GDB_OUT" | grep -vq '0x00000000	0x00000000	0x00000000	0x00000000' ||
    fail "x/4xw start_kernel read nothing"
  expect '^\$2 = 0x(6|8|a|c)$' "three stepi moved pc 6 to 12 bytes into start_kernel"
  # start_kernel's first instruction moves sp down: the step executed it.
  sp1=$(grep -aE '^\$1 = ' "$GDB_OUT" | awk '{print $3}'); sp2=$(grep -aE '^\$3 = ' "$GDB_OUT" | awk '{print $3}')
  [[ -n $sp1 && -n $sp2 && $sp1 != "$sp2" ]] || fail "sp did not change across the steps ($sp1 -> $sp2)"
  expect '^Hardware watchpoint 2: \*\(unsigned long \*\)&jiffies_64' "a hardware watchpoint (Z2)"
  expect '^New value = ' "the watchpoint saw jiffies change"
  expect '^VM status: paused' "monitor info status"
  expect '^hart 0 +pc ffffffff[0-9a-f]+ +priv 1 \(S\)' "monitor info registers"
  expect ' satp 9000' "monitor info registers shows satp (Sv48 paging on)"
  expect '^0000000080200000: 0x[0-9a-f]{8} 0x[0-9a-f]{8}' "monitor xp reads physical memory"
  expect 'Inferior 1 \(Remote target\) detached' "detach"
else
  # OpenSBI's lottery picks the boot hart: any of the four.
  boot=$(sed -nE 's/^Thread ([1-4]) hit Breakpoint 1, 0x[0-9a-f]+ in start_kernel \(\)$/\1/p' "$GDB_OUT")
  [[ -n $boot ]] || fail "no thread hit the breakpoint at start_kernel"
  for t in 1 2 3 4; do
    expect "^[* ] $t +Thread $t \\(CPU#$((t - 1))" "thread $t of 4"
    expect "^\\[Switching to thread $t \\(Thread $t\\)\\]" "switching to thread $t"
  done
  expect "^\\* $boot +Thread $boot .* in start_kernel \\(\\)" "the boot hart's thread is current, in start_kernel"
  # The boot hart runs Linux in S-mode; the others wait in OpenSBI (M-mode).
  privs=$(grep -aE '^\$[1-4] = [0-9]+$' "$GDB_OUT" | awk '{print $3}' | sort | tr '\n' ' ')
  [[ $privs == "1 3 3 3 " ]] || fail "privilege levels of the 4 threads: '$privs', expected one S (1), three M (3)"
  other=$(sed -nE 's/^Thread ([1-4]) hit Breakpoint 2, 0x[0-9a-f]+ in smp_callin \(\)$/\1/p' "$GDB_OUT")
  [[ -n $other && $other != "$boot" ]] || fail "no secondary hart's thread hit smp_callin (boot $boot, hit '$other')"
  expect "^#0 +0x[0-9a-f]+ in smp_callin \\(\\)" "backtrace on the secondary hart"
  expect 'Inferior 1 \(Remote target\) detached' "detach"
fi
echo "ok: gdb-multiarch drove $HARTS hart(s) (see above)"
vm_wait_ready
vm_send 'echo hello-$((6*7))'
vm_wait_for 'hello-42'
vm_send 'poweroff -f'
vm_wait_exit 0
echo "ok: after detach the guest booted to its shell and powered off ($((SECONDS - VM_T0)) s)"
