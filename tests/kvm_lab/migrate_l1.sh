# Runs in L1 (sourced by the lab's /init): live migration between two doppel processes on
# the KVM engine. A 2-vCPU L2 runs `cpumark N` (N in /lab/cpumark_n); it is migrated over
# TCP (loopback) to a doppel waiting with --migrate-from, then, with its RAM shared
# (--memory-shared), moved again over a Unix socket (a local live update: the RAM is handed
# over, not copied). The last process must finish the run; migrate_test.sh compares the
# checksum with an uninterrupted run's.
N=$(cat /lab/cpumark_n 2>/dev/null || echo 2)
ip link set lo up 2>/dev/null || ifconfig lo 127.0.0.1 up
RUN="/lab/doppel --log-level info run --arch x86_64 --engine kvm --kernel /lab/guest/kernel --initrd /lab/guest/initrd.cpio.gz --cpus 2 --memory 256 --memory-shared"
# The two destinations wait first; their consoles take input through fifos.
mkfifo /tmp/tcp.in /tmp/local.in /tmp/src.in
$RUN --api-sock /tmp/tcp.sock --migrate-from tcp:127.0.0.1:4444 </tmp/tcp.in >/tmp/tcp.out 2>&1 &
tcp=$!
$RUN --migrate-from unix:/tmp/local.mig </tmp/local.in >/tmp/local.out 2>&1 &
local=$!
exec 5>/tmp/tcp.in 6>/tmp/local.in
$RUN --api-sock /tmp/src.sock </tmp/src.in >/tmp/src.out 2>&1 &
src=$!
exec 3>/tmp/src.in
if wait_for /tmp/src.out 'doppel-guest: ready' 240; then
  echo "LAB: mig source ready"
  echo "echo START; cpumark $N; echo CPUMARK-\"\"DONE" >&3
  wait_for /tmp/src.out '^START' 60
  sleep 3
  /lab/doppel ctl --sock /tmp/src.sock migrate tcp:127.0.0.1:4444 >/tmp/ctl-tcp.out 2>&1 &&
    echo "LAB: mig tcp migrated"
  sed 's/^/LAB: ctl-tcp| /' /tmp/ctl-tcp.out
  wait $src
  echo "LAB: mig source exit=$?"
  grep -q CPUMARK-DONE /tmp/src.out && echo "LAB: mig migrated after cpumark ended"
  sleep 2
  /lab/doppel ctl --sock /tmp/tcp.sock migrate unix:/tmp/local.mig >/tmp/ctl-local.out 2>&1 &&
    echo "LAB: mig local migrated"
  sed 's/^/LAB: ctl-local| /' /tmp/ctl-local.out
  wait $tcp
  echo "LAB: mig tcp exit=$?"
  grep -q CPUMARK-DONE /tmp/tcp.out && echo "LAB: mig updated after cpumark ended"
  wait_for /tmp/local.out 'CPUMARK-DONE' 300 && echo "LAB: mig run finished"
  echo 'echo MIGRATED-""ALIVE' >&6
  wait_for /tmp/local.out 'MIGRATED-ALIVE' 30 && echo "LAB: mig shell answers"
  echo 'poweroff -f' >&6
  wait $local
  echo "LAB: mig local exit=$?"
fi
for p in $src $tcp $local; do kill -9 $p 2>/dev/null; done
exec 3>&- 5>&- 6>&-
sed 's/^/L2-src| /' /tmp/src.out
sed 's/^/L2-tcp| /' /tmp/tcp.out
sed 's/^/L2-local| /' /tmp/local.out
