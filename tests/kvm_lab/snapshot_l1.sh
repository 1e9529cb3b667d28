# Runs in L1 (sourced by the lab's /init): snapshot and restore of a 2-vCPU L2 on doppel's
# KVM engine. L2 runs `cpumark N` (N in /lab/cpumark_n); doppel is paused and snapshotted
# through its API mid-run, resumed, paused and diff-snapshotted 2 s later, and killed;
# `doppel restore` of the full snapshot, and of the diff on top of it, must each finish the
# run. The host side (snapshot_test.sh) compares the checksums with an uninterrupted run's.
N=$(cat /lab/cpumark_n 2>/dev/null || echo 2)
mkfifo /tmp/orig.in
/lab/doppel run --arch x86_64 --engine kvm --kernel /lab/guest/kernel \
  --initrd /lab/guest/initrd.cpio.gz --cpus 2 --memory 256 --api-sock /tmp/api.sock \
  </tmp/orig.in >/tmp/orig.out 2>&1 &
orig=$!
exec 3>/tmp/orig.in
if wait_for /tmp/orig.out 'doppel-guest: ready' 240; then
  echo "LAB: snap original ready"
  # Pause for 3 s: the guest's uptime must not count it (kvmclock stops with the VM).
  echo 'echo UP1 $(cut -d" " -f1 /proc/uptime)' >&3
  wait_for /tmp/orig.out 'UP1 [0-9]' 60
  /lab/doppel ctl --sock /tmp/api.sock pause && sleep 3 && /lab/doppel ctl --sock /tmp/api.sock resume &&
    echo "LAB: paused 3 s and resumed"
  echo 'echo UP2 $(cut -d" " -f1 /proc/uptime)' >&3
  wait_for /tmp/orig.out 'UP2 [0-9]' 60
  u1=$(grep -o 'UP1 [0-9][0-9.]*' /tmp/orig.out | awk '{print $2}')
  u2=$(grep -o 'UP2 [0-9][0-9.]*' /tmp/orig.out | awk '{print $2}')
  echo "LAB: uptime across the pause: $(awk -v a="$u1" -v b="$u2" 'BEGIN { printf "%.2f", b - a }') s"
  echo "echo START; cpumark $N; echo CPUMARK-\"\"DONE" >&3
  wait_for /tmp/orig.out '^START' 60
  sleep 3
  /lab/doppel ctl --sock /tmp/api.sock pause && echo "LAB: snap paused"
  /lab/doppel ctl --sock /tmp/api.sock info | grep -q '"Paused"' && echo "LAB: snap info says Paused"
  /lab/doppel ctl --sock /tmp/api.sock snapshot /tmp/snap && echo "LAB: snap created"
  # Then a diff snapshot 2 s later: the pages KVM_GET_DIRTY_LOG says were written since.
  /lab/doppel ctl --sock /tmp/api.sock resume && sleep 2 &&
    /lab/doppel ctl --sock /tmp/api.sock pause &&
    /lab/doppel ctl --sock /tmp/api.sock snapshot /tmp/diff --diff && echo "LAB: snap diff created"
  grep -q CPUMARK-DONE /tmp/orig.out && echo "LAB: snap taken after cpumark ended"
fi
kill -9 $orig 2>/dev/null; wait $orig 2>/dev/null
exec 3>&-
sed 's/^/L2-orig| /' /tmp/orig.out
# restore_run NAME DIR PREFIX: restores DIR and lets it finish cpumark (queued behind it, an
# echo shows the shell answers), then powers it off; reports "LAB: NAME ..." lines and the
# console with PREFIX.
restore_run() {
  [ -f "$2/state" ] || return 0
  ls -ls "$2" | sed "s/^/LAB: $1 file /"
  mkfifo "/tmp/$1.in"
  timeout 300 /lab/doppel --log-level info restore "$2" <"/tmp/$1.in" >"/tmp/$1.out" 2>&1 &
  restored=$!
  exec 4>"/tmp/$1.in"
  echo 'echo RESTORED-""ALIVE' >&4
  wait_for "/tmp/$1.out" 'CPUMARK-DONE' 240 && echo "LAB: $1 restored run finished"
  wait_for "/tmp/$1.out" 'RESTORED-ALIVE' 30 && echo "LAB: $1 restored shell answers"
  echo 'poweroff -f' >&4
  wait $restored
  echo "LAB: $1 restore exit=$?"
  exec 4>&-
  sed "s/^/$3| /" "/tmp/$1.out"
}
restore_run snap /tmp/snap L2-restored
restore_run diff /tmp/diff L2-diff
