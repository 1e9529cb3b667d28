#!/usr/bin/env bash
# No VM destroys data by accident (issue 14, part 6), with tiny bare-metal riscv64 guests on
# the emulator (no guest kit needed): image locks between VMs and against QEMU's own tools,
# one image twice in one VM, --console2 never overwriting a disk image or taking over a
# live socket, a closed stdout (`| head`) not killing the VM, a trap loop ending in exit 4.
#   safety.sh DOPPEL
set -uo pipefail
doppel=${1:?usage: safety.sh path/to/doppel}
tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
  rm -rf "$tmp"
}
trap cleanup EXIT
failures=0 passes=0
pass() { passes=$((passes + 1)); }
failed() { echo "FAIL: $*"; failures=$((failures + 1)); }

# check CODE PATTERN ARGS...: doppel ARGS exits with CODE and prints a line matching PATTERN.
check() {
  local code=$1 pattern=$2 out rc
  shift 2
  out=$(timeout 60 "$doppel" "$@" 2>&1 </dev/null)
  rc=$?
  if [[ $rc -ne $code ]] || ! grep -qE -- "$pattern" <<<"$out"; then
    failed "doppel $* -> exit $rc (want $code), output:"
    sed 's/^/    /' <<<"$out"
    echo "    (want a line matching: $pattern)"
  else
    pass
  fi
}

# A guest that spins forever (jal x0, 0): a VM that runs until killed.
printf '\x6f\x00\x00\x00' >"$tmp/spin.bin"
vm=(run --firmware none --kernel "$tmp/spin.bin" --memory 64M)

# start_vm NAME ARGS...: a background VM; its pid in $VM_PID, output in $tmp/NAME.out.
start_vm() {
  local name=$1
  shift
  "$doppel" "$@" >"$tmp/$name.out" 2>&1 </dev/null &
  VM_PID=$!
  pids+=("$VM_PID")
}
# wait_locked FILE: until some process holds an OFD lock on FILE.
wait_locked() {
  local ino
  ino=$(stat -c %i "$1")
  for _ in $(seq 100); do
    grep -qE "OFDLCK .*:$ino " /proc/locks && return 0
    sleep 0.1
  done
  return 1
}
# still_running PID: the VM did not exit within a second.
still_running() { sleep 1; kill -0 "$1" 2>/dev/null; }
stop_vm() { kill -9 "$1" 2>/dev/null; wait "$1" 2>/dev/null; }

# ---- Image locks ----
truncate -s 1M "$tmp/d.img" "$tmp/d2.img"
start_vm a "${vm[@]}" --disk "$tmp/d.img"
a=$VM_PID
if wait_locked "$tmp/d.img"; then pass; else failed "VM a holds no lock on its disk"; fi
check 1 "^doppel: --disk #1: disk $tmp/d.img: in use by another VM or program \(pid $a \(doppel\)\): cannot open it for writing" \
  "${vm[@]}" --disk "$tmp/d.img"
check 1 "disk $tmp/d.img: in use by .*pid $a.*: cannot open it read-only" "${vm[@]}" --disk "$tmp/d.img,ro"
# QEMU's tools see doppel's lock too (its byte locks conflict with a whole-file lock).
if command -v qemu-io >/dev/null; then
  out=$(qemu-io -f raw -c 'write 0 512' "$tmp/d.img" 2>&1)
  if grep -q 'Failed to get .* lock' <<<"$out"; then pass; else failed "qemu-io wrote to the image doppel writes: $out"; fi
  out=$(qemu-img convert -f raw -O raw "$tmp/d.img" "$tmp/copy.img" 2>&1)
  if grep -q 'Failed to get shared "write" lock' <<<"$out"; then pass; else failed "qemu-img convert read it: $out"; fi
  # ... and the other way round: an image QEMU writes is refused to doppel.
  mkfifo "$tmp/qio.in"
  qemu-io -f raw "$tmp/d2.img" <"$tmp/qio.in" >/dev/null 2>&1 &
  qio=$!
  pids+=("$qio")
  exec 8>"$tmp/qio.in"
fi
if [[ -n ${qio:-} ]]; then
  wait_locked "$tmp/d2.img"
  check 1 "disk $tmp/d2.img: in use by another VM or program \(pid $qio \(qemu-io\)\): cannot open it read-only" \
    "${vm[@]}" --disk "$tmp/d2.img,ro"
  exec 8>&-
  stop_vm "$qio"
fi
# locking=off: the user's word that sharing is fine.
start_vm shared "${vm[@]}" --disk "$tmp/d.img,locking=off"
if still_running "$VM_PID"; then pass; else failed "--disk ,locking=off did not start: $(cat "$tmp/shared.out")"; fi
stop_vm "$VM_PID"
# Another VM's disk is not console output either.
cp "$tmp/d.img" "$tmp/d.before"
printf 'precious' | dd of="$tmp/d.img" conv=notrunc status=none
sum_before=$(sha256sum <"$tmp/d.img")
check 1 "console file $tmp/d.img: is a disk image in use \(pid $a \(doppel\)\); refusing to overwrite it" \
  "${vm[@]}" --console2 "file=$tmp/d.img"
[[ $(sha256sum <"$tmp/d.img") == "$sum_before" ]] && pass || failed "--console2 file= changed another VM's disk"
# The lock dies with its process: a killed VM leaves nothing behind.
stop_vm "$a"
start_vm b "${vm[@]}" --disk "$tmp/d.img"
if still_running "$VM_PID"; then pass; else failed "the disk stayed locked after its VM died: $(cat "$tmp/b.out")"; fi
stop_vm "$VM_PID"

# Read-only users share; a writer is refused while they read.
start_vm r1 "${vm[@]}" --disk "$tmp/d.img,ro"
r1=$VM_PID
wait_locked "$tmp/d.img"
start_vm r2 "${vm[@]}" --disk "$tmp/d.img,ro"
if still_running "$VM_PID"; then pass; else failed "a second read-only user was refused: $(cat "$tmp/r2.out")"; fi
check 1 "disk $tmp/d.img: in use by .*pid $r1.*cannot open it for writing" "${vm[@]}" --disk "$tmp/d.img"
stop_vm "$VM_PID"
stop_vm "$r1"

# Clones: overlays over one base share it read-only and run side by side.
"$doppel" disk create "$tmp/c1.qcow2" --backing d.img >/dev/null
"$doppel" disk create "$tmp/c2.qcow2" --backing d.img >/dev/null
start_vm c1 "${vm[@]}" --disk "$tmp/c1.qcow2"
c1=$VM_PID
wait_locked "$tmp/c1.qcow2"
start_vm c2 "${vm[@]}" --disk "$tmp/c2.qcow2"
if still_running "$VM_PID"; then pass; else failed "two clones of one base: $(cat "$tmp/c2.out")"; fi
# ... but the base cannot be written under them.
check 1 "disk $tmp/d.img: in use by .*cannot open it for writing" "${vm[@]}" --disk "$tmp/d.img"
stop_vm "$VM_PID"
stop_vm "$c1"

# One image twice in one VM.
check 1 "^doppel: --disk $tmp/d.img: the same image as --disk #1 \($tmp/d.img\)" \
  "${vm[@]}" --disk "$tmp/d.img" --disk "$tmp/d.img"
ln -f "$tmp/d.img" "$tmp/d-link.img"
check 1 "the same image as --disk #1" "${vm[@]}" --disk "$tmp/d.img,ro" --disk "$tmp/d-link.img"
check 0 '"read_only": true' "${vm[@]}" --disk "$tmp/d.img,ro" --disk "$tmp/d-link.img,ro" --print-config
# A writable disk and an overlay of it: the overlay's backing lock conflicts.
check 1 "disk $tmp/d.img: in use" "${vm[@]}" --disk "$tmp/d.img" --disk "$tmp/c1.qcow2"

# A live migration on one host hands the locks over: the destination waits without them,
# takes them at the switch-over (re-reading the qcow2 metadata), and the source lets go.
"$doppel" disk create "$tmp/m.qcow2" --size 8M >/dev/null
start_vm msrc "${vm[@]}" --disk "$tmp/m.qcow2" --api-sock "$tmp/m-api.sock"
msrc=$VM_PID
wait_locked "$tmp/m.qcow2"
start_vm mdst "${vm[@]}" --disk "$tmp/m.qcow2" --migrate-from "unix:$tmp/m.sock"
mdst=$VM_PID
for _ in $(seq 50); do [[ -S $tmp/m.sock && -S $tmp/m-api.sock ]] && break; sleep 0.1; done
check 1 "disk $tmp/m.qcow2: in use by .*pid $msrc " "${vm[@]}" --disk "$tmp/m.qcow2,ro"
if timeout 60 "$doppel" ctl --sock "$tmp/m-api.sock" migrate "unix:$tmp/m.sock" >"$tmp/m.out" 2>&1; then
  rc=0; wait "$msrc" || rc=$?
  [[ $rc == 0 ]] && pass || failed "the migration's source exited $rc"
  check 1 "disk $tmp/m.qcow2: in use by .*pid $mdst " "${vm[@]}" --disk "$tmp/m.qcow2,ro"
else
  failed "migrate: $(cat "$tmp/m.out")"
fi
stop_vm "$mdst"
command -v qemu-img >/dev/null && { qemu-img check -q "$tmp/m.qcow2" && pass || failed "qemu-img check after the migration"; }

# ---- --console2 ----
check 1 "^doppel: --console2 file=$tmp/d.img: is the VM's --disk #1; refusing to overwrite it" \
  "${vm[@]}" --disk "$tmp/d.img" --console2 "file=$tmp/d.img"
[[ $(sha256sum <"$tmp/d.img") == "$sum_before" ]] && pass || failed "--console2 file= changed the VM's own disk"
# A live console socket is not taken over; a stale one (its VM killed) is replaced.
start_vm s1 "${vm[@]}" --console2 "socket=$tmp/c.sock"
s1=$VM_PID
for _ in $(seq 50); do [[ -S $tmp/c.sock ]] && break; sleep 0.1; done
check 1 "console socket $tmp/c.sock: another process is listening on it" "${vm[@]}" --console2 "socket=$tmp/c.sock"
kill -0 "$s1" 2>/dev/null && [[ -S $tmp/c.sock ]] && pass || failed "the first VM lost its console socket"
stop_vm "$s1"
[[ -S $tmp/c.sock ]] || failed "(test) a killed VM's socket file should stay behind"
start_vm s2 "${vm[@]}" --console2 "socket=$tmp/c.sock"
if still_running "$VM_PID"; then pass; else failed "a stale console socket was not replaced: $(cat "$tmp/s2.out")"; fi
stop_vm "$VM_PID"

# ---- A busy TAP: the holder named, not a capability hint ----
if [[ $(id -u) == 0 && -c /dev/net/tun ]] && unshare --net true 2>/dev/null; then
  out=$(unshare --net bash -c '
    "$1" "${@:2}" --net tap=dtap0 </dev/null >/dev/null 2>&1 &
    holder=$!
    for _ in $(seq 50); do ip link show dtap0 >/dev/null 2>&1 && break; sleep 0.1; done
    sleep 0.5
    echo "holder=$holder"
    timeout 60 "$1" "${@:2}" --net tap=dtap0 </dev/null 2>&1
    echo "rc=$?"
    kill -9 $holder; wait $holder 2>/dev/null' _ "$doppel" "${vm[@]}")
  holder=$(sed -n 's/^holder=//p' <<<"$out")
  if grep -q "^rc=1$" <<<"$out" &&
     grep -q "tap 'dtap0': TUNSETIFF: Device or resource busy (another process has it open (pid $holder (doppel)); each VM needs its own TAP)" <<<"$out"; then
    pass
  else
    failed "a busy TAP: $out"
  fi
else
  echo "SKIP (part): a busy TAP needs root and network namespaces"
fi

# ---- A trap loop: garbage at the trap vector ----
head -c 4096 /dev/zero >"$tmp/zeros.bin"
check 4 "trap loop: the trap handler at 0x0 itself traps \(instruction access fault, tval 0x0\) .* the last trap's cause 1, pc 0x0 " \
  run --firmware none --kernel "$tmp/zeros.bin" --memory 64M
# Behind OpenSBI, which hands each fault back to the garbage kernel's own trap vector.
sbi=/usr/lib/riscv64-linux-gnu/opensbi/generic/fw_dynamic.bin
if [[ -f $sbi ]]; then
  check 4 "trap loop: the trap handler at 0x[0-9a-f]+ itself traps .* the last trap's cause [0-9]+, pc 0x[0-9a-f]+" \
    run --firmware "$sbi" --kernel "$tmp/zeros.bin" --initrd none --memory 64M
fi

# ---- A closed stdout does not kill the VM ----
if command -v riscv64-linux-gnu-gcc >/dev/null; then
  cat >"$tmp/chatty.S" <<'ASM'
/* Prints 256 KiB of 'x' on the 16550 UART, then powers off through the test finisher. */
.globl _start
_start:
  bnez a0, park
  li t0, 0x10000000
  li t3, 262144
  li t1, 'x'
1:
  lbu t2, 5(t0)
  andi t2, t2, 0x20
  beqz t2, 1b
  sb t1, 0(t0)
  addi t3, t3, -1
  bnez t3, 1b
  li t0, 0x100000
  li t1, 0x5555
  sw t1, 0(t0)
park:
  wfi
  j park
ASM
  riscv64-linux-gnu-gcc -nostdlib -nostartfiles -static -no-pie -march=rv64gc -mabi=lp64d \
    -Wl,-Ttext=0x80000000,-N,--build-id=none,--no-warn-rwx-segments -o "$tmp/chatty.elf" "$tmp/chatty.S" &&
    riscv64-linux-gnu-objcopy -O binary "$tmp/chatty.elf" "$tmp/chatty.bin"
  timeout 120 "$doppel" run --firmware none --kernel "$tmp/chatty.bin" --memory 64M 2>"$tmp/pipe.err" </dev/null |
    head -c 100 >/dev/null
  rc=${PIPESTATUS[0]}
  if [[ $rc -eq 0 ]] && [[ $(grep -c 'console: the output is closed' "$tmp/pipe.err") -eq 1 ]]; then pass; else
    failed "doppel run | head -c100 -> exit $rc (want 0 and one warning), stderr:"
    sed 's/^/    /' "$tmp/pipe.err" | head -20
  fi
else
  echo "SKIP (part): riscv64-linux-gnu-gcc not installed: the closed-stdout check"
fi

echo "$passes passed, $failures failed"
[[ $failures -eq 0 ]]
