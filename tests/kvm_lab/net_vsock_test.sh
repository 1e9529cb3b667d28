#!/bin/bash
# ctest: in the KVM lab, the x86_64 guest on doppel's KVM engine with --net user and
# --vsock: DHCP offers 10.0.2.15, the guest fetches a file L1 serves on its 127.0.0.1
# through 10.0.2.2, and vsock carries data both ways (guest -> CID 2 port 5000 -> L1's
# Unix socket PATH_5000; L1's "CONNECT 6000" on PATH -> the guest's listener).
#   tests/kvm_lab/net_vsock_test.sh DOPPEL GUEST_DIR
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
doppel=$1 guest_dir=${2:-}
if [ -z "$guest_dir" ] || [ ! -f "$guest_dir/kernel" ]; then
  echo "SKIP: no x86_64 guest kit (guest/build.sh --arch x86_64)"; exit 77
fi
if ! command -v qemu-system-x86_64 >/dev/null; then echo "SKIP: no qemu-system-x86_64"; exit 77; fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
out=$tmp/lab.out
gcc -static -O2 -o "$tmp/uds_peer" "$here/uds_peer.c" || { echo "FAIL: cannot build uds_peer"; exit 1; }
"$here/lab.sh" --doppel "$doppel" --guest-dir "$guest_dir" --script "$here/net_vsock_l1.sh" \
  --extra "$tmp/uds_peer" --timeout 900 | tee "$out"
status=${PIPESTATUS[0]}
[ "$status" = 0 ] || { echo "FAIL: the lab did not run (status $status)"; exit 1; }
fail=0
expect() {  # pattern description
  if grep -q -- "$1" "$out"; then echo "ok: $2"; else echo "FAIL: $2 (no '$1' in the output)"; fail=1; fi
}
expect "L2-netvsock| .*lease of 10.0.2.15 obtained from 10.0.2.2" "DHCP offers 10.0.2.15 from 10.0.2.2"
expect "L2-netvsock| wget: served-from-l1" "the guest reaches L1's loopback HTTP server through 10.0.2.2"
expect "LAB: peer | uds_peer: got 11 bytes: guest-data" "guest -> host vsock: L1's PATH_5000 got the guest's data"
expect "L2-netvsock| host-reply" "guest -> host vsock: the guest read L1's answer"
expect "LAB: peer | uds_peer: handshake OK [0-9]" "host -> guest vsock: CONNECT 6000 answered OK <port>"
expect "L2-netvsock| from-host: host-data" "host -> guest vsock: the guest's listener got L1's data"
expect "LAB: peer | uds_peer: the guest sent: guest-reply" "host -> guest vsock: L1 read the guest's answer"
expect "LAB: netvsock exit=0" "poweroff -f ends doppel with exit 0"
[ $fail = 0 ] && echo "PASS: KVM user networking and vsock" || echo "FAIL: KVM user networking and vsock"
exit $fail
