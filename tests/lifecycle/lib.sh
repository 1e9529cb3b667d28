# Helpers for the lifecycle tests (sourced): the riscv64 guest kit under doppel with a
# control socket, driven by `doppel ctl`. Builds on tests/virtio_guest/lib.sh (vm_start,
# vm_send, vm_wait_for, ...).
source "$(dirname "${BASH_SOURCE[0]}")/../virtio_guest/lib.sh"

# ctl SOCK ARGS...: doppel ctl, failing the test if it fails.
ctl() {
  local sock=$1; shift
  "$DOPPEL" ctl --sock "$sock" "$@" >"$WORK/ctl.out" 2>&1 || { cat "$WORK/ctl.out" >&2; fail "doppel ctl $*"; }
}

# metric SOCK PATH...: one value of GET /metrics, e.g. `metric S devices virtio-blk0
# virtio_requests` or `metric S vcpus 0 instructions_retired`.
metric() {
  local sock=$1; shift
  ctl "$sock" metrics
  python3 -c 'import json, sys
v = json.load(open(sys.argv[1]))
for k in sys.argv[2:]:
    v = v[int(k)] if isinstance(v, list) else v[k]
print(v)' "$WORK/ctl.out" "$@" || fail "GET /metrics has no $*"
}

# wait_sock SOCK: until the API answers.
wait_sock() {
  local i
  for ((i = 0; i < 300; i++)); do
    [[ -S $1 ]] && "$DOPPEL" ctl --sock "$1" info >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  fail "the API socket $1 never answered"
}

# cpumark_reference N: the checksum `cpumark N` must print, computed natively on the host
# (the checksum depends only on N: guest/programs/cpumark.c).
cpumark_reference() {
  need cc
  [[ -x $WORK/cpumark ]] || cc -O2 -ffp-contract=off -o "$WORK/cpumark" "$ROOT/guest/programs/cpumark.c" -lm ||
    fail "building cpumark for the host"
  "$WORK/cpumark" "$1" | grep -ao 'checksum 0x[0-9a-f]*'
}

# checksum_in FILE: the cpumark checksum printed in a console log, if any.
checksum_in() { grep -ao 'checksum 0x[0-9a-f]*' "$1" | tail -n 1 || true; }

# kill_vm: ends the current VM at once (SIGKILL), as a crash or an operator would.
kill_vm() {
  [[ -n $VM_PID ]] && kill -9 "$VM_PID" 2>/dev/null || true
  wait "$VM_PID" 2>/dev/null || true
  VM_PID=""
  { exec 7>&-; } 2>/dev/null || true
}

# start_cpumark NAME SOCK N [DOPPEL-RUN-ARGS...]: boots the guest kit with a control socket
# and starts `cpumark N` at its shell, ending with a CPUMARK-DONE line.
start_cpumark() {
  local name=$1 sock=$2 n=$3; shift 3
  vm_start "$name" "$(doppel_cmd "$@" --api-sock "$sock")"
  vm_wait_ready
  wait_sock "$sock"
  vm_send "echo START; cpumark $n; echo CPUMARK-\"\"DONE"
  vm_wait_for '^START'
}

# restored_checksum_is WANT WHAT: the current VM (a restore) finishes cpumark with WANT,
# then powers off with exit 0.
restored_checksum_is() {
  vm_wait_for 'CPUMARK-DONE'
  local got; got=$(checksum_in "$VM_OUT")
  [[ $got == "$1" ]] || fail "$2: '$got', an uninterrupted run prints '$1'"
  vm_send 'poweroff -f'
  vm_wait_exit 0
}

# The disk-writer workload (snapshot_disk.sh, tests/migration/disk.sh): on the current VM,
# mounts /dev/vda (ext4) and appends `seq` in CHUNKS chunks of 500 lines to /mnt/seq.txt,
# syncing after each chunk and printing chunk-N; then unmounts and prints WRITER-DONE.
# Returns once chunk 5 is written.
seq_writer_start() {
  vm_send 'mkdir -p /mnt && mount -t ext4 /dev/vda /mnt && echo MOUNT-OK'
  vm_wait_for 'MOUNT-OK'
  vm_send "for c in \$(seq 1 $1); do seq \$((c*500-499)) \$((c*500)) >> /mnt/seq.txt; sync; echo chunk-\$c; done; umount /mnt && echo WRITER-\"\"DONE"
  vm_wait_for 'chunk-5[^0-9]'
}

# seq_file_is_right IMG CHUNKS: on the host, /seq.txt in IMG is exactly `seq 1 CHUNKS*500`
# and e2fsck finds the filesystem clean.
seq_file_is_right() {
  [[ $(debugfs -R 'cat /seq.txt' "$1" 2>/dev/null | sha256sum) == $(seq 1 $(($2 * 500)) | sha256sum) ]] ||
    fail "seq.txt on the host is not seq 1 $(($2 * 500))"
  e2fsck -fn "$1" >"$WORK/fsck.log" 2>&1 || { cat "$WORK/fsck.log" >&2; fail "e2fsck found errors"; }
}

# vsock_host_connect UDS PORT DATA: through the VM's vsock socket UDS (Firecracker's
# convention), CONNECT to the guest's vsock PORT (retrying while nothing listens yet), send
# DATA, print the answer.
vsock_host_connect() {
  python3 - "$1" "$2" "$3" <<'PY'
import socket, sys, time
path, port, data = sys.argv[1], sys.argv[2], sys.argv[3].encode()
for _ in range(40):
    s = socket.socket(socket.AF_UNIX); s.settimeout(60); s.connect(path)
    s.sendall(b"CONNECT %s\n" % port.encode())
    line = b""
    while not line.endswith(b"\n"):
        b = s.recv(1)
        if not b: break
        line += b
    if line.startswith(b"OK "): break
    time.sleep(0.5)  # no listener yet
else:
    sys.exit("no OK from the guest")
s.sendall(data); s.shutdown(socket.SHUT_WR)
out = b""
while True:
    b = s.recv(4096)
    if not b: break
    out += b
print(out.decode().strip())
PY
}
