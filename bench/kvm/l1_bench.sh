# Runs in the lab's L1 (sourced by /init). Prints "BENCH vmm=... what=... value=..." lines.
RUNS=@RUNS@
G=/lab/guest
now_ms() { awk '{ printf "%d\n", $1 * 1000 }' /proc/uptime; }
# RSS (KiB) of every mapping except the guest RAM mapping(s) of $2 MiB or more.
vmm_rss() {
  awk -v big=$(( $2 * 1024 )) '
    /^Size:/ { skip = $2 >= big }
    /^Rss:/ { if (!skip) total += $2 }
    END { print total }' /proc/$1/smaps 2>/dev/null || echo -1
}
boot_one() {  # name command...
  name=$1; shift
  rm -f /tmp/in /tmp/out; mkfifo /tmp/in
  t0=$(now_ms)
  "$@" </tmp/in >/tmp/out 2>&1 &
  pid=$!
  exec 3>/tmp/in
  t1=""
  for i in $(seq 1 6000); do
    if grep -q "doppel-guest: ready" /tmp/out; then t1=$(now_ms); break; fi
    kill -0 $pid 2>/dev/null || break
    sleep 0.01
  done
  if [ -n "$t1" ]; then
    echo "BENCH vmm=$name what=boot_ms value=$((t1 - t0))"
    sleep 1
    echo "BENCH vmm=$name what=rss_kib value=$(vmm_rss $pid 128)"
  else
    echo "BENCH-FAIL $name: no readiness line"; tail -5 /tmp/out
  fi
  echo "poweroff -f" >&3
  exec 3>&-
  wait $pid || true
}
time_ms() {  # command...: wall time in ms
  a=$(now_ms); "$@" </dev/null >/dev/null 2>&1; b=$(now_ms); echo $((b - a))
}
DOPPEL="/lab/doppel run --arch x86_64 --engine kvm --memory 128"
QEMU="/lab/qemu -M microvm,isa-serial=on -enable-kvm -cpu host -m 128 -nodefaults -nographic -serial stdio -monitor none -no-reboot -L /usr/share/qemu"
for r in $(seq 1 $RUNS); do
  boot_one doppel $DOPPEL --kernel $G/vmlinux --initrd $G/initrd.cpio.gz --cmdline "console=ttyS0 reboot=k panic=-1"
  boot_one qemu $QEMU -kernel $G/vmlinux -initrd $G/initrd.cpio.gz -append "console=ttyS0 reboot=t panic=-1"
  for vmm in doppel qemu; do
    if [ $vmm = doppel ]; then
      z=$(time_ms $DOPPEL --kernel /lab/pio0.elf); n=$(time_ms $DOPPEL --kernel /lab/pio20000.elf)
    else
      z=$(time_ms $QEMU -device isa-debug-exit,iobase=0xf4 -kernel /lab/pio0.elf)
      n=$(time_ms $QEMU -device isa-debug-exit,iobase=0xf4 -kernel /lab/pio20000.elf)
    fi
    echo "BENCH vmm=$vmm what=pio_ns value=$(( (n - z) * 1000000 / 20000 ))"
  done
done
