# Runs in L1 (sourced by the lab's /init): user networking and vsock under doppel's KVM
# engine. L1's loopback serves a file (busybox httpd) that the guest fetches through
# 10.0.2.2; /lab/uds_peer is the host side of vsock, both directions.
ip link set lo up 2>/dev/null || ifconfig lo 127.0.0.1 up
mkdir -p /tmp/www && echo "served-from-l1" >/tmp/www/hello.txt
busybox httpd -p 127.0.0.1:8080 -h /tmp/www && echo "LAB: httpd up"
/lab/uds_peer listen /tmp/v.sock_5000 >/tmp/peer-listen.out 2>&1 &
/lab/uds_peer connect /tmp/v.sock 6000 >/tmp/peer-connect.out 2>&1 &
connector=$!
printf '%s\n' \
  'ip link set eth0 up; udhcpc -i eth0 -n -q -s /bin/true 2>&1 | grep lease' \
  'ip addr add 10.0.2.15/24 dev eth0; ip route add default via 10.0.2.2' \
  'echo "wget: $(wget -q -O - http://10.0.2.2:8080/hello.txt)"' \
  'echo guest-data | vsock connect 2 5000' \
  'echo guest-reply | vsock listen 6000 >/tmp/from-host.txt; echo "from-host: $(cat /tmp/from-host.txt)"' \
  'poweroff -f' |
  timeout 240 /lab/doppel run --arch x86_64 --engine kvm --kernel /lab/guest/kernel \
    --initrd /lab/guest/initrd.cpio.gz --memory 256 --net user --vsock cid=3,uds=/tmp/v.sock >/tmp/l2.out 2>&1
code=$?
sed 's/^/L2-netvsock| /' /tmp/l2.out
echo "LAB: netvsock exit=$code"
wait $connector
sed 's/^/LAB: peer | /' /tmp/peer-listen.out /tmp/peer-connect.out
