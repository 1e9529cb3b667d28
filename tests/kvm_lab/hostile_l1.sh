# Runs in L1 (sourced by the lab's /init): the x86_64 guest kit on doppel's KVM engine, 2
# vCPUs, every virtio device (a raw and a qcow2 disk, user networking, rng, a console file,
# vsock), runs guest/programs/hostile.c for /lab/hostile_args ("SECONDS SEED") and powers
# off. Meanwhile L1 asks doppel's API (GET / through `doppel ctl info`) every 2 s.
read -r secs seed run_args </lab/hostile_args   # run_args: more `doppel run` options
dd if=/dev/zero of=/tmp/raw.img bs=1M count=0 seek=16 2>/dev/null
/lab/doppel disk create /tmp/disk.qcow2 --size 16M >/dev/null || echo "LAB: hostile: disk create failed"
# doppel logs at info level, so that a run that ends early says why (a guest reboot, a triple
# fault: seen once in about fifteen runs, with the guest's console silent; not yet explained).
# One line: hostile drops console input that arrived while it ran (see its top comment).
# dmesg -n 1: the kernel's messages (its random writes make virtio-blk report new sizes)
# would otherwise land in the middle of the program's final line.
printf '%s\n' "dmesg -n 1; hostile $secs $seed; poweroff -f" |
  timeout $((secs * 10 + 300)) /lab/doppel --log-level info run $run_args --arch x86_64 --engine kvm --kernel /lab/guest/kernel \
    --initrd /lab/guest/initrd.cpio.gz --cpus 2 --memory 256 --disk /tmp/raw.img \
    --disk /tmp/disk.qcow2 --net user --vsock cid=3,uds=/tmp/v.sock \
    --console2 file=/tmp/console2.out --api-sock /tmp/api.sock >/tmp/l2.out 2>&1 &
vm=$!
asked=0 answered=0 late=0
while kill -0 $vm 2>/dev/null; do
  sleep 2
  kill -0 $vm 2>/dev/null || break
  [ -S /tmp/api.sock ] || continue
  asked=$((asked + 1))
  if timeout 10 /lab/doppel ctl --sock /tmp/api.sock info >/dev/null 2>&1; then
    answered=$((answered + 1))
  elif kill -0 $vm 2>/dev/null; then
    late=$((late + 1))
  fi
done
wait $vm
code=$?
# doppel's rate-limited warnings about the guest's bad requests: counted, a few shown.
echo "LAB: hostile: $(grep -c 'doppel: warning' /tmp/l2.out) warnings from doppel"
grep 'doppel: warning' /tmp/l2.out | head -n 20 | sed 's/^/L2-hostile-warn| /'
grep -v 'doppel: warning' /tmp/l2.out | sed 's/^/L2-hostile| /'
echo "LAB: hostile api asked=$asked answered=$answered unanswered=$late"
echo "LAB: hostile exit=$code"
