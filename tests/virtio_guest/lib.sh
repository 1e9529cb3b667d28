# Shared helpers for the virtio in-guest tests and bench/virtio (sourced, not run).
#
# A VM is started with its console on a FIFO: vm_start NAME CMD...; vm_wait_ready;
# vm_send 'shell command'; vm_wait_exit. Output is in $WORK/NAME.out.
# Environment: DOPPEL (default <repo>/build/doppel), GUEST_DIR (default: guest/build.sh
# --print-dir), VM_TIMEOUT (seconds per boot, default 300: the emulator is slower than KVM).

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
DOPPEL=${DOPPEL:-$ROOT/build/doppel}
VM_TIMEOUT=${VM_TIMEOUT:-300}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/doppel-vguest.XXXXXX")
VM_PID=""
VM_OUT=""

fail() { echo "FAIL: $*" >&2; [[ -n $VM_OUT && -f $VM_OUT ]] && tail -n 30 "$VM_OUT" >&2; exit 1; }
skip() { echo "SKIP: $*"; exit 77; }

cleanup_vm() {
  if [[ -n $VM_PID ]]; then kill "$VM_PID" 2>/dev/null || true; wait "$VM_PID" 2>/dev/null || true; fi
  { exec 7>&-; } 2>/dev/null || true
  VM_PID=""
}
cleanup() { cleanup_vm; rm -rf "$WORK"; }
trap cleanup EXIT

need() { for t in "$@"; do command -v "$t" >/dev/null || skip "$t not installed"; done; }

guest_dir() {
  if [[ -z ${GUEST_DIR:-} ]]; then
    GUEST_DIR=$("$ROOT/guest/build.sh" --arch riscv64 --print-dir 2>/dev/null || true)
  fi
  [[ -n $GUEST_DIR && -f $GUEST_DIR/kernel ]] || skip "no riscv64 guest: run guest/build.sh --arch riscv64"
  echo "$GUEST_DIR"
}

# doppel_cmd ARGS...: the command line for doppel running the guest kit with ARGS.
doppel_cmd() {
  [[ -x $DOPPEL ]] || skip "$DOPPEL not built"
  echo "$DOPPEL" run --arch riscv64 "$@"
}

# qemu_cmd DISK-ARGS...: QEMU -M virt with the same guest (the reference machine).
qemu_cmd() {
  local d; d=$(guest_dir)
  echo qemu-system-riscv64 -M virt -smp 1 -m 256 -nographic -no-reboot \
    -bios "$d/fw_dynamic.bin" -kernel "$d/kernel" -initrd "$d/initrd.cpio.gz" \
    -append "'console=ttyS0 panic=-1'" "$@"
}

vm_start() {
  local name=$1; shift
  VM_OUT=$WORK/$name.out
  local in=$WORK/$name.in
  rm -f "$in"; mkfifo "$in"
  # exec: VM_PID is the VMM itself, not a subshell around it, so that killing it (a
  # test's SIGKILL of a VM it snapshotted) kills the VM and leaves nothing running.
  eval "exec $*" <"$in" >"$VM_OUT" 2>&1 &
  VM_PID=$!
  exec 7>"$in"
  VM_T0=$SECONDS
}

vm_wait_ready() {
  while (( SECONDS - VM_T0 < VM_TIMEOUT )); do
    grep -aq 'doppel-guest: ready' "$VM_OUT" && return 0
    kill -0 "$VM_PID" 2>/dev/null || fail "VM exited before the readiness line"
    sleep 0.2
  done
  fail "no readiness line within ${VM_TIMEOUT}s"
}

vm_send() { printf '%s\n' "$*" >&7; }

# vm_wait_for PATTERN: waits until the console output matches (grep -E).
vm_wait_for() {
  while (( SECONDS - VM_T0 < VM_TIMEOUT )); do
    grep -aqE "$1" "$VM_OUT" && return 0
    kill -0 "$VM_PID" 2>/dev/null || fail "VM exited while waiting for /$1/"
    sleep 0.2
  done
  fail "timed out waiting for /$1/"
}

# vm_wait_exit [EXPECTED_CODE]: waits for the VM process to end (after poweroff -f).
vm_wait_exit() {
  local want=${1:-0} i
  for ((i = 0; i < VM_TIMEOUT * 5; i++)); do
    kill -0 "$VM_PID" 2>/dev/null || break
    sleep 0.2
  done
  kill -0 "$VM_PID" 2>/dev/null && fail "VM did not exit after poweroff"
  local rc=0; wait "$VM_PID" || rc=$?
  VM_PID=""
  exec 7>&-
  [[ $rc == "$want" ]] || fail "VM exit code $rc, expected $want"
}

# make_ext4 PATH SIZE_MIB: an empty ext4 image, made without root.
make_ext4() {
  need mkfs.ext4
  truncate -s "${2}M" "$1"
  mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 "$1" >/dev/null || fail "mkfs.ext4 $1"
}
