#!/usr/bin/env bash
# A hostile guest (issue 14, part 5): hostile_guest.c, bare metal on the riscv64 emulator,
# writes random values to every MMIO register and publishes random descriptors on every
# virtqueue for HOSTILE_SECONDS (guest time). doppel must not crash or hang: the API answers
# every second meanwhile, the console socket's client is served, the guest powers off at
# the end (exit 0) and the qcow2 disk the devices wrote passes `qemu-img check`.
#   hostile.sh DOPPEL [SOURCE_DIR]      HOSTILE_SECONDS (default 15)
# scripts/hostile-guest runs it long, before a release (with the ASan build if there is one).
set -uo pipefail
doppel=${1:?usage: hostile.sh DOPPEL [SOURCE_DIR]}
src=${2:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
seconds=${HOSTILE_SECONDS:-15}
command -v riscv64-linux-gnu-gcc >/dev/null || { echo "SKIP: needs gcc-riscv64-linux-gnu"; exit 77; }
tmp=$(mktemp -d)
vm="" client=""
cleanup() {
  for p in $vm $client; do kill -9 "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
  rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; tail -n 20 "$tmp/vm.out" | cut -c1-200; exit 1; }

riscv64-linux-gnu-gcc -O2 -Wall -ffreestanding -nostdlib -nostartfiles -static -no-pie \
  -march=rv64gc -mabi=lp64d -mcmodel=medany -DSECONDS="$seconds" \
  -Wl,-Ttext=0x80000000,-N,--build-id=none,--no-warn-rwx-segments \
  -o "$tmp/hostile.elf" "$src/tests/hostile/hostile_guest.c" || fail "hostile_guest.c did not build"
truncate -s 8M "$tmp/raw.img"
"$doppel" disk create "$tmp/disk.qcow2" --size 8M >/dev/null || fail "disk create"

"$doppel" run --firmware none --kernel "$tmp/hostile.elf" --memory 64M --cpus 2 \
  --disk "$tmp/raw.img" --disk "$tmp/disk.qcow2" --console2 "socket=$tmp/c.sock" \
  --api-sock "$tmp/api.sock" </dev/null >"$tmp/vm.out" 2>&1 &
vm=$!
# A console client that keeps talking: the device's receive side gets input throughout.
python3 - "$tmp/c.sock" >/dev/null 2>&1 <<'PY' &
import os, socket, sys, time
s = socket.socket(socket.AF_UNIX)
for _ in range(100):
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

answered=0 asked=0
while kill -0 "$vm" 2>/dev/null; do
  sleep 1
  kill -0 "$vm" 2>/dev/null || break
  [[ -S $tmp/api.sock ]] || continue
  asked=$((asked + 1))
  if timeout 5 "$doppel" ctl --sock "$tmp/api.sock" info >/dev/null 2>&1; then
    answered=$((answered + 1))
  elif kill -0 "$vm" 2>/dev/null; then
    fail "the API did not answer within 5 s while the guest ran (question $asked)"
  fi
  ((asked > seconds * 20 + 120)) && fail "the guest did not finish in ${seconds} s of guest time"
done
rc=0
wait "$vm" || rc=$?
vm=""
[[ $rc == 0 ]] || fail "doppel exited $rc (want 0: the guest powers off at the end)"
grep -aq 'hostile: done' "$tmp/vm.out" || fail "the guest did not finish"
((answered >= seconds / 2)) || fail "the API answered only $answered times in a ${seconds}s run"
if command -v qemu-img >/dev/null; then
  qemu-img check "$tmp/disk.qcow2" >"$tmp/check.out" 2>&1 || fail "qemu-img check: $(cat "$tmp/check.out")"
fi
echo "PASS: $(grep -a 'hostile: done' "$tmp/vm.out" | tr -d '\r'); the API answered $answered times"
