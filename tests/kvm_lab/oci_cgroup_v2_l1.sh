# Runs in L1 (sourced by the lab's /init): `doppel oci` on a pure cgroup v2 host. Only
# cgroup2 is mounted at /sys/fs/cgroup, with the controllers enabled in its
# cgroup.subtree_control as systemd does. The configs (cfg-*.json) were made on the host;
# the bundle's rootfs is L1's busybox. L1's root is the initramfs, where pivot_root is
# refused (EINVAL), so every container runs with --no-pivot. /dev/nvme0n1 (the lab's
# --out-disk) is the block device for io.max and the device rules.
# Every fact is a "LAB: oci ..." line that oci_cgroup_v2_test.sh checks on the host.
rt=/lab/doppel
st=/tmp/oci-state
b=/tmp/bundle
cg=/sys/fs/cgroup
mount -t cgroup2 cgroup2 $cg || echo "LAB: oci cannot mount cgroup2"
echo "LAB: oci mounts: $(awk '$3 ~ /^cgroup/ {printf "%s %s; ", $2, $3}' /proc/mounts)"
for c in $(cat $cg/cgroup.controllers); do echo "+$c" > $cg/cgroup.subtree_control; done
echo "LAB: oci subtree_control: $(cat $cg/cgroup.subtree_control)"
nvme=$(cat /sys/block/nvme0n1/dev 2>/dev/null || echo missing)
echo "LAB: oci nvme0n1 is $nvme"
# The configs name the disk as 259:0; its minor depends on L0's QEMU (0 under 7.2, 1 under 10).
maj=${nvme%:*} min=${nvme#*:}
[ "$nvme" != missing ] &&
  sed -i "s/\"major\": 259,/\"major\": $maj,/; s/\"minor\": 0,/\"minor\": $min,/" /lab/cfg-*.json

mkdir -p $b/rootfs/bin $b/rootfs/tmp
cp /bin/busybox $b/rootfs/bin/busybox
for c in sh echo cat sleep dd true; do ln -s busybox $b/rootfs/bin/$c; done
# A block device node in the rootfs (outside its /dev tmpfs): the device rules decide.
mknod $b/rootfs/nvme b $maj $min
use() { cp /lab/cfg-$1.json $b/config.json; }
state_of() { $rt oci --root $st state "$1" 2>/dev/null | sed -n 's/.*"status": *"\([a-z]*\)".*/\1/p'; }
pid_of() { $rt oci --root $st state "$1" 2>/dev/null | sed -n 's/.*"pid": *\([0-9]*\).*/\1/p'; }
# The limit files of cgroup $1, one "LAB: oci <tag> <file>=<value>" line each.
dump_limits() {
  for f in memory.max memory.swap.max memory.low memory.high pids.max cpu.max cpu.weight cpuset.cpus cpuset.mems io.weight io.bfq.weight io.max; do
    [ -e "$cg/$1/$f" ] || { echo "LAB: oci $2 $f=(no file)"; continue; }
    echo "LAB: oci $2 $f=$(tr '\n' ' ' < "$cg/$1/$f" | sed 's/ *$//')"
  done
}

# 1. The limits, read back from outside while the container runs.
use limits
$rt oci --root $st run -d --no-pivot --bundle $b lim; echo "LAB: oci lim run exit=$?"
pid=$(pid_of lim)
echo "LAB: oci lim state=$(state_of lim) pid=$pid"
echo "LAB: oci lim procs=$(cat $cg/lim/cgroup.procs 2>/dev/null | tr '\n' ' ')"
echo "LAB: oci lim proc-cgroup=$(cat /proc/$pid/cgroup 2>/dev/null)"
dump_limits lim lim
# exec joins the container's cgroup (it reads the limit through the container's own mount);
# ps lists the processes of the v2 cgroup.
echo "LAB: oci lim exec=$($rt oci --root $st exec lim cat /sys/fs/cgroup/memory.max 2>&1)"
echo "LAB: oci lim ps=$($rt oci --root $st ps --format json lim 2>&1)"

# 2. pause/resume through cgroup.freeze: the container counts into /count of its rootfs.
count() { cat $b/rootfs/count 2>/dev/null; }
i=0  # until it has counted (L1 under TCG next to another lab can take seconds to start it)
while [ -z "$(count)" ] && [ $i -lt 150 ]; do sleep 0.2; i=$((i + 1)); done
sleep 1
$rt oci --root $st pause lim; echo "LAB: oci pause exit=$?"
echo "LAB: oci paused state=$(state_of lim) freeze=$(cat $cg/lim/cgroup.freeze) $(grep frozen $cg/lim/cgroup.events)"
a=$(count); sleep 2; z=$(count)
echo "LAB: oci paused counter $a -> $z"
$rt oci --root $st resume lim; echo "LAB: oci resume exit=$?"
sleep 2
echo "LAB: oci resumed state=$(state_of lim) freeze=$(cat $cg/lim/cgroup.freeze) counter $z -> $(count)"
# delete --force of a paused container: its processes are killed, frozen as they are.
$rt oci --root $st pause lim
echo "LAB: oci paused again state=$(state_of lim)"
$rt oci --root $st delete --force lim; echo "LAB: oci delete exit=$?"
echo "LAB: oci lim pid $pid after delete: $([ -d /proc/$pid ] && grep State /proc/$pid/status || echo gone)"
[ -e $cg/lim ] && echo "LAB: oci lim cgroup still there" || echo "LAB: oci lim cgroup removed"

# 3. runc, if it was carried in: the same container; what it wrote, for comparison.
if [ -f /lab/runc.tar ] && tar -xf /lab/runc.tar -C / && [ -x /usr/sbin/runc ]; then
  cp /lab/cfg-limits-runc.json $b/config.json
  /usr/sbin/runc --root /tmp/runc-state run -d --no-pivot --bundle $b lim-runc >/tmp/runc.out 2>&1
  echo "LAB: oci runc run exit=$? $(head -c 300 /tmp/runc.out)"
  dump_limits lim-runc runc
  /usr/sbin/runc --root /tmp/runc-state delete --force lim-runc
  [ -e $cg/lim-runc ] && echo "LAB: oci runc cgroup still there" || echo "LAB: oci runc cgroup removed"
else
  echo "LAB: oci no runc"
fi

# 4. pids.limit 5: the shell and four children; the fifth fork fails. Its cgroupsPath is
# nested (/outer/pids), so the new parent /outer must delegate the pids controller.
use pids
$rt oci --root $st run --no-pivot --bundle $b pids >/tmp/pids.out 2>&1
echo "LAB: oci pids exit=$?"
sed 's/^/LAB: oci pids| /' /tmp/pids.out
echo "LAB: oci outer subtree_control=$(cat $cg/outer/cgroup.subtree_control 2>/dev/null)"
[ -e $cg/outer/pids ] && echo "LAB: oci outer/pids still there" || echo "LAB: oci outer/pids removed"
rmdir $cg/outer

# 5. memory.limit 32 MiB: dd with a 48 MiB buffer is OOM-killed.
use oom
$rt oci --root $st run --no-pivot --bundle $b oom >/tmp/oom.out 2>&1
echo "LAB: oci oom run exit=$?"
sed 's/^/LAB: oci oom| /' /tmp/oom.out
# Again with create + start, to read memory.events after the kill from outside.
$rt oci --root $st create --no-pivot --bundle $b oom2 && $rt oci --root $st start oom2
i=0
while [ "$(state_of oom2)" != stopped ] && [ $i -lt 100 ]; do sleep 0.2; i=$((i + 1)); done
echo "LAB: oci oom2 state=$(state_of oom2) events: $(tr '\n' ' ' < $cg/oom2/memory.events 2>/dev/null)"
$rt oci --root $st delete oom2; echo "LAB: oci oom2 delete exit=$?"
[ -e $cg/oom2 ] && echo "LAB: oci oom2 cgroup still there" || echo "LAB: oci oom2 cgroup removed"

# 6. Device rules as the BPF program: /dev/null allowed, the NVMe node denied; then a
# config allowing it to be read.
for cfg in devdeny devallow; do
  use $cfg
  $rt oci --root $st run --no-pivot --bundle $b $cfg >/tmp/dev.out 2>&1
  echo "LAB: oci $cfg exit=$?"
  sed "s/^/LAB: oci $cfg| /" /tmp/dev.out
  [ -e $cg/$cfg ] && echo "LAB: oci $cfg cgroup still there" || echo "LAB: oci $cfg cgroup removed"
done

echo "LAB: oci left in the state dir: [$(ls $st 2>/dev/null | tr '\n' ' ')]"
echo "LAB: oci left cgroups: [$(find $cg -mindepth 1 -type d | tr '\n' ' ')]"
