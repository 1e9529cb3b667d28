# Runs in L1 (sourced by the lab's /init): `doppel jail` on doppel's KVM engine, on a pure
# cgroup v2 hierarchy (what most distributions run; the development hosts are hybrid). The
# jail mknods /dev/kvm in its chroot, the VMM runs as uid/gid 65534 without capabilities, in
# the cgroup /doppel/lab1 with the limits given; L1 reads all of it back through /proc and
# the cgroup files while the guest runs, then the guest powers off and nothing is left.
mkdir -p /sys/fs/cgroup
mount -t cgroup2 cgroup2 /sys/fs/cgroup && echo "LAB: cgroup2 mounted"
echo "+cpu +memory +pids +io" >/sys/fs/cgroup/cgroup.subtree_control
echo "LAB: controllers $(cat /sys/fs/cgroup/cgroup.subtree_control)"
# L1 runs from its initramfs, which pivot_root cannot leave (the jail says so: a real host's
# root is a mount): doppel runs chrooted in a tmpfs copy of L1's files, as from a disk.
r=/newroot
mkdir -p $r && mount -t tmpfs -o size=1200m tmpfs $r
for d in bin sbin lib lib64 usr lab; do [ -e /$d ] && cp -a /$d $r/; done
mkdir -p $r/proc $r/sys $r/dev $r/tmp $r/srv/jail
mount -o rbind /proc $r/proc && mount -o rbind /sys $r/sys && mount -o rbind /dev $r/dev &&
  echo "LAB: jail root ready"
mkfifo /tmp/jail.in
timeout 400 chroot $r /lab/doppel --log-level info jail --id lab1 --uid 65534 --gid 65534 \
  --chroot-base-dir /srv/jail --memory-limit 512M --pids-limit 64 --cpu-quota 50% -- \
  --arch x86_64 --engine kvm --kernel /lab/guest/kernel --initrd /lab/guest/initrd.cpio.gz \
  --memory 256 </tmp/jail.in >/tmp/jail.out 2>&1 &
pid=$!
exec 3>/tmp/jail.in
if wait_for /tmp/jail.out 'doppel-guest: ready' 240; then
  echo "LAB: jail ready"
  vmm=$(cat $r/srv/jail/doppel/lab1/doppel.pid)
  st() { awk -v k="$1:" '$1 == k {print $2}' /proc/$vmm/status; }
  echo "LAB: jail uid=$(st Uid) gid=$(st Gid) capeff=$(st CapEff) nnp=$(st NoNewPrivs)"
  echo "LAB: jail kvm=$(stat -L -c %t:%T /proc/$vmm/root/dev/kvm 2>&1)"
  echo "LAB: jail cgroup=$(cat /proc/$vmm/cgroup)"
  cg=/sys/fs/cgroup/doppel/lab1
  echo "LAB: jail memory.max=$(cat $cg/memory.max) pids.max=$(cat $cg/pids.max) cpu.max=$(cat $cg/cpu.max)"
  echo "LAB: jail procs=$(grep -c . $cg/cgroup.procs)"
  for ns in mnt pid ipc uts; do
    [ "$(readlink /proc/$vmm/ns/$ns)" != "$(readlink /proc/self/ns/$ns)" ] && echo "LAB: jail own $ns namespace"
  done
  echo 'echo jailed-sum=$((40+2))' >&3
  wait_for /tmp/jail.out 'jailed-sum=42' 60 && echo "LAB: jail shell answers"
  echo 'poweroff -f' >&3
fi
wait $pid
echo "LAB: jail exit=$?"
exec 3>&-
sed 's/^/L2-jail| /' /tmp/jail.out
[ -e $r/srv/jail/doppel/lab1 ] && echo "LAB: jail dir left behind"
[ -e /sys/fs/cgroup/doppel/lab1 ] && echo "LAB: jail cgroup left behind"
echo "LAB: jail checked leftovers"
