#!/usr/bin/env bash
# A hostile guest from user space (issue 14, part 5): the riscv64 guest kit on the emulator,
# 2 harts, every virtio device doppel offers (a raw and a qcow2 disk, user networking, rng,
# a console socket with a client talking to it, vsock), runs guest/programs/hostile.c, which
# writes random values to every MMIO register through /dev/mem and publishes random
# virtqueues for HOSTILE_SECONDS of guest time. Then the guest powers off. doppel must:
# exit 0 (not a signal, not a crash code), log no sanitizer or assertion failure, answer
# GET / on its API within 5 s every second of the run, finish within a bounded wall time,
# and show the program's final line; the qcow2 image the devices wrote passes qemu-img check.
#   devmem.sh        environment: DOPPEL, HOSTILE_SECONDS (default 25), HOSTILE_SEED (default
#                    0x5eed: fixed in make test; "random" for a new one, printed), KEEP_WORK=DIR
#                    (a copy of the work directory, console log and disks, kept there),
#                    HOSTILE_RUN_ARGS (more `doppel run` options, e.g. --seccomp off)
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../virtio_guest/lib.sh"
need curl python3
seconds=${HOSTILE_SECONDS:-25}
seed=${HOSTILE_SEED:-0x5eed}
[[ $seed == random ]] && seed=$(printf '%#x' $(( (RANDOM << 30) ^ (RANDOM << 15) ^ RANDOM )))
gdir=$(guest_dir) || exit 77
grep -q '^CONFIG_DEVMEM=y' "$gdir/config" || skip "the guest kit in $gdir has no /dev/mem (rebuild it)"
[[ -x $DOPPEL ]] || skip "$DOPPEL not built"

client=""
finish() {
  [[ -n $client ]] && { kill "$client" 2>/dev/null; wait "$client" 2>/dev/null; }
  [[ -n ${KEEP_WORK:-} ]] && { cp -r "$WORK" "$KEEP_WORK"; }
  cleanup
}
trap finish EXIT

truncate -s 16M "$WORK/raw.img"
"$DOPPEL" disk create "$WORK/disk.qcow2" --size 16M >/dev/null || fail "doppel disk create"
vm_start hostile "$DOPPEL run ${HOSTILE_RUN_ARGS:-} --arch riscv64 --cpus 2 --memory 256M --kernel $gdir/kernel \
  --initrd $gdir/initrd.cpio.gz --firmware $gdir/fw_dynamic.bin \
  --disk $WORK/raw.img --disk $WORK/disk.qcow2 --net user --vsock cid=3,uds=$WORK/vsock \
  --console2 socket=$WORK/c2.sock --api-sock $WORK/api.sock"

# A console client that keeps talking: the device's receive side gets input throughout.
python3 - "$WORK/c2.sock" >/dev/null 2>&1 <<'PY' &
import os, socket, sys, time
s = socket.socket(socket.AF_UNIX)
for _ in range(3000):
    try:
        s.connect(sys.argv[1]); break
    except OSError:
        time.sleep(0.1)
s.setblocking(False)
while True:
    try:
        s.send(os.urandom(256))
        s.recv(65536)
    except BlockingIOError:
        pass
    except OSError:
        break
    time.sleep(0.05)
PY
client=$!

vm_wait_ready
t0=$SECONDS
# dmesg -n 1: kernel messages (new disk sizes, after its random config writes) would
# otherwise land in the middle of the program's final line.
vm_send "dmesg -n 1; hostile $seconds $seed; poweroff -f"
vm_wait_for 'hostile: seed '
# While the program runs: the API answers GET / within 5 s, every second.
asked=0 answered=0 limit=$((seconds * 10 + 120))
while kill -0 "$VM_PID" 2>/dev/null; do
  sleep 1
  kill -0 "$VM_PID" 2>/dev/null || break
  asked=$((asked + 1))
  code=$(curl -s -m 5 -o "$WORK/get.json" -w '%{http_code}' --unix-socket "$WORK/api.sock" http://localhost/)
  if [[ $code == 200 ]]; then
    answered=$((answered + 1))
  elif kill -0 "$VM_PID" 2>/dev/null; then
    fail "the API did not answer GET / within 5 s (HTTP '$code', question $asked) while the guest ran"
  fi
  (( SECONDS - t0 > limit )) && fail "the guest did not finish ${seconds} s of hostile writes in ${limit} s of wall time"
done
rc=0
wait "$VM_PID" || rc=$?
VM_PID=""
exec 7>&-
wall=$((SECONDS - t0))
if grep -aE 'AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|runtime error:|Assertion .* failed|terminate called' "$VM_OUT" >"$WORK/san.txt"; then
  fail "doppel's log reports: $(head -n 5 "$WORK/san.txt")"
fi
((rc < 128)) || fail "doppel died by signal $((rc - 128))"
[[ $rc == 0 ]] || fail "doppel exited $rc (want 0: the guest powers off after the program)"
done_line=$(grep -a 'hostile: done' "$VM_OUT" | tr -d '\r' | tail -n 1)
if [[ -z $done_line ]]; then
  died=$(grep -a 'hostile: SIG' "$VM_OUT" | tr -d '\r' | tail -n 1)
  fail "the program's final line 'hostile: done ...' did not appear${died:+ (the program died: $died)}"
fi
((answered >= seconds / 2)) || fail "the API answered only $answered times during a ${seconds} s run"
if command -v qemu-img >/dev/null; then
  qemu-img check "$WORK/disk.qcow2" >"$WORK/check.out" 2>&1 || fail "qemu-img check of the qcow2 disk: $(cat "$WORK/check.out")"
fi
grep -a '^hostile: ' "$VM_OUT" | tr -d '\r' | grep -v 'hostile: done' | sed 's/^/  /'
echo "PASS: seed $seed, $done_line; the API answered $answered times; ${wall} s wall"
