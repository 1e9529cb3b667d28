# Helpers for the qcow2 tests (sourced): the riscv64 guest kit under doppel with qcow2
# disks, checked on the host with qemu-img (Debian's qemu-utils). Builds on
# tests/virtio_guest/lib.sh (vm_start, vm_send, vm_wait_for, ...), whose vm_start execs
# the VMM: VM_PID is doppel itself, so a kill (the crash test's SIGKILL, or cleanup after a
# failure) reaches doppel.
source "$(dirname "${BASH_SOURCE[0]}")/../virtio_guest/lib.sh"
need qemu-img

# qcheck IMG: `qemu-img check` finds no corruption (exit 0; 3 = leaked clusters only, which
# a crash may leave and which is allowed). Prints the report on failure.
qcheck() {
  local rc=0
  qemu-img check "$1" >"$WORK/check.log" 2>&1 || rc=$?
  if [[ $rc != 0 && $rc != 3 ]] || grep -q 'ERROR' "$WORK/check.log"; then
    cat "$WORK/check.log" >&2
    fail "qemu-img check $1: exit $rc"
  fi
}

# qcheck_clean IMG: no corruption and no leaks either (a cleanly shut down image).
qcheck_clean() {
  qemu-img check "$1" >"$WORK/check.log" 2>&1 || { cat "$WORK/check.log" >&2; fail "qemu-img check $1 is not clean"; }
}

# qcompare IMG RAW: the image reads exactly as the raw file.
qcompare() {
  qemu-img compare -f qcow2 -F raw "$1" "$2" >"$WORK/compare.log" 2>&1 ||
    { cat "$WORK/compare.log" >&2; fail "qemu-img compare $1 $2: they differ"; }
}

# guest_sum DEV: the guest's sha256 of a whole device, as printed on the console.
# host_sum FILE: the same for a host file.
host_sum() { sha256sum <"$1" | cut -d' ' -f1; }
