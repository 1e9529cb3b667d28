# Runs in L1 (sourced by the lab's /init): boots L2 under doppel's KVM engine.
run_l2() {  # tag cpus kernel commands...
  tag=$1 cpus=$2 kernel=$3; shift 3
  printf '%s\n' "$@" | /lab/doppel run --arch x86_64 --engine kvm --kernel "$kernel" \
    --initrd /lab/guest/initrd.cpio.gz --cpus "$cpus" --memory 256 >/tmp/l2.out 2>&1
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
if [ -f /lab/guest/vmlinux ]; then
  echo "LAB: pvh"
  run_l2 pvh 1 /lab/guest/vmlinux 'poweroff -f'
  echo "LAB: pvh exit=$?"
fi
run_l2 virtio 1 /lab/guest/kernel \
  'echo hwrng=$(cat /sys/class/misc/hw_random/rng_current 2>/dev/null)' \
  'echo rngbytes=$(head -c 16 /dev/hwrng | wc -c)' 'poweroff -f'
echo "LAB: virtio exit=$?"
