# Runs in L1 (sourced by the lab's /init): boots L2 under doppel's KVM engine.
# Optional inputs (--extra): /lab/disk.img + /lab/ro.img (virtio-blk check; the written
# image is copied out to /dev/nvme0n1, the lab's --out-disk), /lab/probe.cpio.gz (an initrd
# appendix holding /usr/bin/cpu_probe, for the CPU topology check).
# If the lab is still running after 500 s something is stuck where `timeout` cannot reach
# it (a task in uninterruptible sleep): show doppel's kernel stacks and the blocked tasks.
( sleep 500
  echo "LAB: watchdog: still running after 500 s"
  for t in /proc/[0-9]*/task/*; do
    [ "$(cat $t/comm 2>/dev/null)" = doppel ] || continue
    echo "LAB: watchdog: $t $(awk '/^State/ {print $2}' $t/status)"
    sed 's/^/LAB: watchdog:   /' $t/stack 2>/dev/null
  done
  echo w >/proc/sysrq-trigger ) &
watchdog=$!
run_l2() {  # tag cpus kernel commands...   (doppel options in $L2_ARGS, global ones in $L2_LOG)
  tag=$1 cpus=$2 kernel=$3; shift 3
  # A guest that hangs is killed after 180 s (exit 143), so the rest of the lab still runs.
  printf '%s\n' "$@" | timeout 180 /lab/doppel $L2_LOG run --arch x86_64 --engine kvm --kernel "$kernel" \
    --initrd "${L2_INITRD:-/lab/guest/initrd.cpio.gz}" --cpus "$cpus" --memory 256 $L2_ARGS \
    >/tmp/l2.out 2>&1
  code=$?
  sed "s/^/L2-$tag| /" /tmp/l2.out
  return $code
}
for n in 1 2; do
  run_l2 $n $n /lab/guest/kernel 'echo cpus=$(grep -c ^processor /proc/cpuinfo)' \
    'echo sum=$(seq 0 99 | awk "{s+=\$1} END {print s}")' 'poweroff -f'
  echo "LAB: run $n exit=$?"
done
run_l2 reboot 1 /lab/guest/kernel 'reboot -f'
echo "LAB: reboot exit=$?"
# reboot=t: Linux resets with an empty IDT and a fault, a triple fault (KVM_EXIT_SHUTDOWN).
printf '%s\n' 'reboot -f' | timeout 180 /lab/doppel --log-level info run --arch x86_64 --engine kvm \
  --kernel /lab/guest/kernel --initrd /lab/guest/initrd.cpio.gz --memory 256 \
  --cmdline "console=ttyS0 reboot=t panic=-1" >/tmp/l2.out 2>&1
code=$?
sed "s/^/L2-triple| /" /tmp/l2.out
echo "LAB: triple fault exit=$code"
if [ -f /lab/guest/vmlinux ]; then
  echo "LAB: pvh"
  run_l2 pvh 1 /lab/guest/vmlinux 'poweroff -f'
  echo "LAB: pvh exit=$?"
fi
run_l2 virtio 1 /lab/guest/kernel \
  'echo hwrng=$(cat /sys/class/misc/hw_random/rng_current 2>/dev/null)' \
  'echo rngbytes=$(head -c 16 /dev/hwrng | wc -c)' 'poweroff -f'
echo "LAB: virtio exit=$?"

if [ -f /lab/disk.img ] && [ -f /lab/ro.img ]; then
  ro_before=$(md5sum </lab/ro.img)
  L2_ARGS="--disk /lab/disk.img --disk /lab/ro.img,ro"
  run_l2 blk 1 /lab/guest/kernel \
    'mkdir -p /mnt /ro' \
    'mount -t ext4 /dev/vda /mnt && echo blk-mounted-rw' \
    'echo hello-from-l2 >/mnt/hello.txt' \
    'mkdir /mnt/dir && seq 1 30000 >/mnt/dir/seq.txt && echo blk-seq-md5=$(md5sum </mnt/dir/seq.txt)' \
    'umount /mnt && echo blk-umounted' \
    'echo blk-ro-sysfs=$(cat /sys/block/vdb/ro)' \
    'mount -t ext4 -o ro /dev/vdb /ro && echo blk-ro-marker=$(cat /ro/marker.txt)' \
    'touch /ro/new 2>/dev/null && echo blk-ro-fs=writable || echo blk-ro-fs=refused' \
    'dd if=/dev/zero of=/dev/vdb bs=4096 count=1 2>/dev/null && echo blk-ro-dev=writable || echo blk-ro-dev=refused' \
    'poweroff -f'
  echo "LAB: blk exit=$?"
  L2_ARGS=""
  [ "$(md5sum </lab/ro.img)" = "$ro_before" ] && echo "LAB: blk ro image unchanged"
  if [ -b /dev/nvme0n1 ] && dd if=/lab/disk.img of=/dev/nvme0n1 bs=1M conv=fsync 2>/dev/null; then
    sync
    echo "LAB: blk image copied out"
  else
    echo "LAB: blk image NOT copied out (no /dev/nvme0n1?)"
  fi
fi

if [ -f /lab/probe.cpio.gz ]; then
  cat /lab/guest/initrd.cpio.gz /lab/probe.cpio.gz >/tmp/initrd-probe.gz
  L2_INITRD=/tmp/initrd-probe.gz L2_LOG="--log-level debug"
  for n in 4 8; do
    run_l2 cpus$n $n /lab/guest/kernel \
      "cpu_probe $n" \
      'p=/sys/devices/system/cpu/cpu*/topology/physical_package_id; echo topo-packages=$(cat $p | sort -u | wc -l)/$(cat $p | sort -u | head -1)' \
      'echo topo-cores=$(cat /sys/devices/system/cpu/cpu*/topology/core_id | sort -u | wc -l)' \
      'echo topo-threads=$(cat /sys/devices/system/cpu/cpu*/topology/thread_siblings_list | sort -u | wc -l)' \
      'dmesg | grep -E "tsc: Detected|x86/fpu: Enabled|smpboot: (Total|Max)"' \
      'poweroff -f'
    echo "LAB: cpus$n exit=$?"
  done
  L2_INITRD="" L2_LOG=""
fi
kill $watchdog 2>/dev/null
