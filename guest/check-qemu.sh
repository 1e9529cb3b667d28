#!/usr/bin/env bash
# Boots the guest that guest/build.sh made under QEMU (the reference machine) and checks
# that it works: the readiness line, commands fed on the console, cpumark's checksum, and
# that `poweroff -f` ends QEMU.
#
#   guest/check-qemu.sh --arch riscv64|x86_64 [--dir DIR]
#
# riscv64: -M virt with OpenSBI fw_dynamic. x86_64 (TCG): -M pc booting vmlinux (PVH) and
# the bzImage. Exits non-zero naming the first check that failed.
set -euo pipefail

GUEST_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# cpumark 1's checksum on every correct machine (see guest/programs/cpumark.c).
CPUMARK_1=0xfdd3294ff868d216
TIMEOUT=${CHECK_TIMEOUT:-180}

die() { echo "check-qemu: FAIL: $*" >&2; exit 1; }
ARCH="" DIR=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --arch) ARCH=${2:-}; shift 2 ;;
    --dir) DIR=${2:-}; shift 2 ;;
    *) echo "usage: guest/check-qemu.sh --arch riscv64|x86_64 [--dir DIR]" >&2; exit 2 ;;
  esac
done
[[ $ARCH == riscv64 || $ARCH == x86_64 ]] || die "--arch must be riscv64 or x86_64, got '$ARCH'"
if [[ -z $DIR ]]; then
  DIR=$("$GUEST_DIR/build.sh" --arch "$ARCH" --print-dir)
  [[ -d $DIR ]] || die "$DIR does not exist: run guest/build.sh --arch $ARCH first"
fi

WORK=$(mktemp -d)
QPID=""
cleanup() {
  [[ -n $QPID ]] && kill "$QPID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# boot NAME QEMU-ARGS...: starts QEMU with the console on a FIFO, waits for the readiness
# line, types the commands, and waits for QEMU to exit by itself.
boot() {
  local name=$1; shift
  local out=$WORK/$name.out in=$WORK/$name.in t0=$SECONDS
  mkfifo "$in"
  "$@" <"$in" >"$out" 2>&1 &
  QPID=$!
  exec 7>"$in"
  local ready=""
  while [[ $((SECONDS - t0)) -lt $TIMEOUT ]]; do
    ready=$(grep -a -m1 -o 'doppel-guest: ready (uptime [0-9.]* s)' "$out" || true)
    [[ -n $ready ]] && break
    kill -0 "$QPID" 2>/dev/null || break
    sleep 0.2
  done
  if [[ -z $ready ]]; then
    tail -n 30 "$out" >&2
    die "$name: no readiness line within ${TIMEOUT}s"
  fi
  local t_ready=$((SECONDS - t0))
  sleep 0.5
  printf 'uname -a\ncpumark 1\necho check-$((6 * 7))\npoweroff -f\n' >&7
  local rc=0 exited=0
  while [[ $((SECONDS - t0)) -lt $TIMEOUT ]]; do
    if ! kill -0 "$QPID" 2>/dev/null; then exited=1; break; fi
    sleep 0.2
  done
  exec 7>&-
  if [[ $exited -eq 0 ]]; then
    tail -n 30 "$out" >&2
    die "$name: QEMU still running ${TIMEOUT}s after 'poweroff -f'"
  fi
  wait "$QPID" || rc=$?
  QPID=""
  local n
  n=$(grep -a -c 'doppel-guest: ready' "$out" || true)
  [[ $n -eq 1 ]] || die "$name: readiness line printed $n times (want 1)"
  local uname_arch=$ARCH
  grep -a -q "Linux doppel 6\.1.* $uname_arch" "$out" || { tail -n 30 "$out" >&2; die "$name: no 'uname -a' output"; }
  grep -a -q 'check-42' "$out" || die "$name: shell arithmetic output 'check-42' missing"
  local cm
  cm=$(grep -a -m1 -o 'cpumark: 1 iteration, checksum 0x[0-9a-f]*, [0-9.]* s' "$out" || true)
  [[ -n $cm ]] || { tail -n 30 "$out" >&2; die "$name: no cpumark output"; }
  [[ $cm == *"checksum $CPUMARK_1,"* ]] || die "$name: cpumark checksum wrong: $cm (want $CPUMARK_1)"
  grep -a -q 'reboot: Power down' "$out" || die "$name: kernel did not report 'reboot: Power down'"
  [[ $rc -eq 0 ]] || die "$name: QEMU exited with status $rc"
  echo "check-qemu: ok: $name: $ready after ${t_ready}s wall; $cm; powered off after $((SECONDS - t0))s" >&2
  cp "$out" "${CHECK_LOG_DIR:-$WORK}/$name.log" 2>/dev/null || true
}

if [[ $ARCH == riscv64 ]]; then
  for f in kernel initrd.cpio.gz fw_dynamic.bin; do [[ -s $DIR/$f ]] || die "$DIR/$f missing"; done
  boot riscv64-virt qemu-system-riscv64 -M virt -smp 2 -m 256 -nographic \
    -bios "$DIR/fw_dynamic.bin" -kernel "$DIR/kernel" -initrd "$DIR/initrd.cpio.gz" \
    -append "console=ttyS0 panic=-1"
else
  # TCG: QEMU's KVM path does not run in this (nested) host. Under TCG, -M microvm gives this
  # kernel no calibrated clock (no PIT port 0x61, HPET or kvm-clock) and it stalls before
  # init, so PVH is checked on -M pc (QEMU boots an ELF vmlinux through its PVH note there too).
  # Set CHECK_MICROVM_KVM=1 to also try microvm under KVM where that works.
  for f in kernel vmlinux initrd.cpio.gz; do [[ -s $DIR/$f ]] || die "$DIR/$f missing"; done
  boot x86_64-pc-pvh qemu-system-x86_64 -accel tcg -M pc -smp 2 -m 256 -nographic -no-reboot \
    -kernel "$DIR/vmlinux" -initrd "$DIR/initrd.cpio.gz" \
    -append "console=ttyS0 reboot=t panic=-1"
  boot x86_64-pc-bzimage qemu-system-x86_64 -accel tcg -M pc -smp 2 -m 256 -nographic -no-reboot \
    -kernel "$DIR/kernel" -initrd "$DIR/initrd.cpio.gz" \
    -append "console=ttyS0 reboot=t panic=-1"
  if [[ ${CHECK_MICROVM_KVM:-0} == 1 ]]; then
    boot x86_64-microvm-pvh-kvm qemu-system-x86_64 -accel kvm -M microvm,isa-serial=on -smp 2 -m 256 \
      -nographic -no-reboot -kernel "$DIR/vmlinux" -initrd "$DIR/initrd.cpio.gz" \
      -append "console=ttyS0 reboot=t panic=-1"
  fi
fi
echo "check-qemu: all checks passed for $DIR" >&2
