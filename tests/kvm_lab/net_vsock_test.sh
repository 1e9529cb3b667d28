#!/bin/bash
# ctest: in the KVM lab, the x86_64 guest on doppel's KVM engine with --net user and
# --vsock: DHCP offers 10.0.2.15, the guest fetches a file L1 serves on its 127.0.0.1
# through 10.0.2.2, and vsock carries data both ways (guest -> CID 2 port 5000 -> L1's
# Unix socket PATH_5000; L1's "CONNECT 6000" on PATH -> the guest's listener).
#   tests/kvm_lab/net_vsock_test.sh DOPPEL GUEST_DIR
set -uo pipefail
source "$(dirname "$0")/test_lib.sh"
gcc -static -O2 -o "$tmp/uds_peer" "$here/uds_peer.c" || { echo "FAIL: cannot build uds_peer"; exit 1; }
lab_run --script "$here/net_vsock_l1.sh" --extra "$tmp/uds_peer" --timeout 900
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
