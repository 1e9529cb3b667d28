#!/usr/bin/env bash
# User-mode networking throughput, side by side: the same riscv64 guest (guest kit) under
# build/doppel --net user and under qemu-system-riscv64 -M virt with -netdev user (both
# libslirp) on a virtio-net-device, in one run, printing MB/s and the doppel/QEMU ratio
# (higher is better for doppel). No root needed.
#
#   bench/net/run.sh                      NET_MIB=16 (per direction), REPEAT=1
#   ONLY=doppel|qemu bench/net/run.sh     one side only
#
# Metrics:
#   guest->host  the guest (vbench tcpsend, timed in the guest) sends NET_MIB MiB to a host
#                listener on 127.0.0.1, reached through the gateway 10.0.2.2;
#   host->guest  a host program sends NET_MIB MiB through a hostfwd port to a guest
#                listener (vbench tcprecv, timed in the guest from the first byte to EOF).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../../tests/virtio_guest/lib.sh"
need riscv64-linux-gnu-gcc debugfs python3
gdir=$(guest_dir)
VM_TIMEOUT=${VM_TIMEOUT:-900}
NET_MIB=${NET_MIB:-16}
REPEAT=${REPEAT:-1}
sides=(doppel qemu); [[ -n ${ONLY:-} ]] && sides=("$ONLY")

riscv64-linux-gnu-gcc -static -O2 -Wall -Wextra -Werror -o "$WORK/vbench" \
  "$(dirname "${BASH_SOURCE[0]}")/../virtio/vbench.c" || fail "building vbench"
make_ext4 "$WORK/tools.img" 8
debugfs -w -R "write $WORK/vbench vbench" "$WORK/tools.img" >/dev/null 2>&1 || fail "debugfs write"

read -r sink_port fwd_port < <(python3 -c '
import socket
ss = [socket.socket() for _ in range(2)]
for s in ss: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in ss])')

# A host sink on 127.0.0.1: accepts connections and discards what they send.
python3 - "$sink_port" <<'PY' &
import socket, sys, threading
ls = socket.socket(); ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("127.0.0.1", int(sys.argv[1]))); ls.listen(4)
def drain(c):
    while c.recv(1 << 20): pass
    c.close()
while True:
    c, _ = ls.accept()
    threading.Thread(target=drain, args=(c,), daemon=True).start()
PY
sink=$!
trap 'kill $sink 2>/dev/null || true; cleanup' EXIT

declare -A result
DHCP="printf '#!/bin/sh\n[ \"\$1\" = bound ] && ip addr add \$ip/\$mask dev \$interface && ip route add default via \$router\nexit 0\n' >/tmp/dh && chmod +x /tmp/dh; ip link set eth0 up && udhcpc -i eth0 -n -q -s /tmp/dh >/dev/null 2>&1"

run_side() {
  local side=$1 cmd r
  if [[ $side == doppel ]]; then
    cmd=$(doppel_cmd --disk "$WORK/tools.img" --net "user,hostfwd=tcp:127.0.0.1:$fwd_port-:8000")
  else
    need qemu-system-riscv64
    cmd=$(qemu_cmd -drive "file=$WORK/tools.img,format=raw,if=none,id=d1" -device virtio-blk-device,drive=d1 \
      -netdev "user,id=n0,hostfwd=tcp:127.0.0.1:$fwd_port-:8000" -device virtio-net-device,netdev=n0)
  fi
  vm_start "net-$side" "$cmd"
  vm_wait_ready
  vm_send 'mkdir -p /t && mount -t ext4 -o ro /dev/vda /t'
  vm_send "$DHCP; echo \"UP-\$((6*7))\""
  vm_wait_for 'UP-42'
  for ((r = 1; r <= REPEAT; r++)); do
    vm_send "/t/vbench tcpsend 10.0.2.2 $sink_port $NET_MIB; echo \"SENT-\$((r*0+5))$r\""
    vm_wait_for "SENT-5$r"
    vm_send "/t/vbench tcprecv 8000 & echo \"LISTEN-\$((7*7))$r\""
    vm_wait_for "LISTEN-49$r"
    for _ in $(seq 1 300); do  # this repeat's listener is bound
      (( $(grep -ac 'vbench tcprecv: listening' "$VM_OUT") >= r )) && break
      sleep 0.2
    done
    python3 - "$fwd_port" "$NET_MIB" <<'PY' || fail "$side: host->guest transfer failed"
import socket, sys, time
port, mib = int(sys.argv[1]), int(sys.argv[2])
block = b"\xa5" * (1 << 20)
s = socket.create_connection(("127.0.0.1", port), timeout=300)
for _ in range(mib):
    s.sendall(block)
s.shutdown(socket.SHUT_WR)
while s.recv(65536):  # the guest closes once it has read everything
    pass
PY
    vm_send "wait; echo \"RECV-\$((3*3))$r\""
    vm_wait_for "RECV-9$r"
  done
  vm_send 'poweroff -f'
  vm_wait_exit 0 || true
  # The best of the repeats, each way.
  result[$side.g2h]=$(grep -ao 'vbench tcpsend: .* = [0-9.]* MB/s' "$VM_OUT" | sed 's/.*= \([0-9.]*\) MB\/s/\1/' | sort -g | tail -n1)
  result[$side.h2g]=$(grep -ao 'vbench tcprecv: [0-9]* bytes .* = [0-9.]* MB/s' "$VM_OUT" | sed 's/.*= \([0-9.]*\) MB\/s/\1/' | sort -g | tail -n1)
  grep -aq "vbench tcprecv: $((NET_MIB << 20)) bytes" "$VM_OUT" || fail "$side: the guest did not receive all $NET_MIB MiB"
}

for side in "${sides[@]}"; do run_side "$side"; done

echo "user networking, ${NET_MIB} MiB per transfer, best of $REPEAT (guest kit: $gdir)"
printf '%-12s %14s %14s %10s\n' metric doppel qemu ratio
for m in g2h h2g; do
  d=${result[doppel.$m]:-} q=${result[qemu.$m]:-}
  name=guest-\>host; [[ $m == h2g ]] && name=host-\>guest
  ratio=-
  [[ -n $d && -n $q ]] && ratio=$(awk -v d="$d" -v q="$q" 'BEGIN { if (q > 0) printf "%.2f", d / q; else print "-" }')
  printf '%-12s %14s %14s %10s\n' "$name" "${d:--} MB/s" "${q:--} MB/s" "$ratio"
done
