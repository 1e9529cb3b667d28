# Runs in the lab's L1 (sourced by /init). Prints "BENCH vmm=... what=... value=..." lines.
# Nothing here polls while a guest boots: L1 has one (emulated) CPU, and a polling loop
# would slow down the guest it is timing.
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
# The biggest contributors to that RSS, for the log.
vmm_rss_top() {
  awk -v big=$(( $2 * 1024 )) '
    /^[0-9a-f]+-[0-9a-f]+ / { name = $6 ? $6 : "[anon]" }
    /^Size:/ { skip = $2 >= big }
    /^Rss:/ { if (!skip) rss[name] += $2 }
    /^AnonHugePages:/ { if (skip) thp += $2 }
    END { for (n in rss) if (rss[n] >= 64) printf "%s=%d ", n, rss[n]; printf "(guest RAM in huge pages: %d KiB)\n", thp }' /proc/$1/smaps
}
boot_one() {  # name command...
  name=$1; shift
  rm -f /tmp/in /tmp/o /tmp/ready /tmp/out
  mkfifo /tmp/in /tmp/o /tmp/ready
  # awk stamps the readiness line as it passes (blocking reads, no polling) and tells the
  # shell through /tmp/ready; "none" if the VMM's output ends without it.
  awk '!done && /doppel-guest: ready/ {
         getline up < "/proc/uptime"; split(up, a, " ")
         printf "%d\n", a[1] * 1000 > "/tmp/ready"; close("/tmp/ready"); done = 1 }
       { print > "/tmp/out"; fflush("/tmp/out") }
       END { if (!done) { print "none" > "/tmp/ready"; close("/tmp/ready") } }' </tmp/o &
  t0=$(now_ms)
  "$@" </tmp/in >/tmp/o 2>&1 &
  pid=$!
  exec 3>/tmp/in
  read -r t1 </tmp/ready
  if [ "$t1" != none ]; then
    echo "BENCH vmm=$name what=boot_ms value=$((t1 - t0))"
    sleep 1
    echo "BENCH vmm=$name what=rss_kib value=$(vmm_rss $pid 128)"
    echo "BENCH-INFO vmm=$name rss: $(vmm_rss_top $pid 128)"
  else
    echo "BENCH-FAIL $name: no readiness line"; tail -5 /tmp/out
  fi
  echo "poweroff -f" >&3
  exec 3>&-
  wait $pid
  echo "BENCH-INFO vmm=$name exit=$?"
  wait
  grep -q "XSAVE consistency problem" /tmp/out && echo "BENCH-INFO vmm=$name guest warned: XSAVE consistency problem"
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
    echo "BENCH vmm=$vmm what=start_stop_ms value=$z"
    echo "BENCH vmm=$vmm what=pio_ns value=$(( (n - z) * 1000000 / 20000 ))"
  done
done
