# Runs in L1 (sourced by the lab's /init): doppel's KVM engine booting the x86_64 kit's
# vmlinux (PVH entry: the kernel is in place, uncompressed, from the start) on 2 vCPUs,
# held by --gdb-wait with its gdb stub on 127.0.0.1:1234, relayed to L1's /dev/ttyS1, which
# the lab puts on a host Unix socket where gdb-multiarch (on the host) connects.
# Two debugger sessions: the first from the entry (it ends with a detach, or with its relay
# being cut once the guest is up), the second attached to the running guest at its shell.
# Then the shell must still answer, and poweroff ends doppel.
ip link set lo up
mkfifo /tmp/gdb.in
timeout 900 /lab/doppel --log-level info run --arch x86_64 --engine kvm --kernel /lab/guest/vmlinux \
  --initrd /lab/guest/initrd.cpio.gz --memory 256 --cpus 2 --gdb tcp:127.0.0.1:1234 --gdb-wait \
  </tmp/gdb.in >/tmp/gdb.out 2>&1 &
pid=$!
exec 3>/tmp/gdb.in
relay() {
  stty -F /dev/ttyS1 raw -echo
  nc 127.0.0.1 1234 </dev/ttyS1 >/dev/ttyS1 &
  relay=$!
}
if wait_for /tmp/gdb.out 'gdb: waiting for a debugger' 120; then
  relay
  echo "LAB: gdb relay up"
  if wait_for /tmp/gdb.out 'doppel-guest: ready' 600; then
    echo "LAB: gdb guest ready"
    kill $relay 2>/dev/null
    wait_for /tmp/gdb.out 'gdb: the debugger disconnected' 30
    relay
    echo "LAB: gdb relay 2 up"
    if wait_for /tmp/gdb.out 'gdb: the debugger disconnected' 300 2; then
      echo 'echo after-gdb-$((6*7))' >&3
      wait_for /tmp/gdb.out 'after-gdb-42' 60 && echo "LAB: gdb shell answers"
    fi
    echo 'poweroff -f' >&3
  fi
  kill $relay 2>/dev/null
fi
wait $pid
echo "LAB: gdb exit=$?"
sed 's/^/L2-gdb| /' /tmp/gdb.out | grep -v '^L2-gdb| \[' | tail -n 30
