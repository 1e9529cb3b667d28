# Runs in L1 (sourced by the lab's /init): Ctrl-Alt-Del through doppel's API
# (PUT /actions SendCtrlAltDel, sent with `doppel ctl ctrl-alt-del`) to an x86_64 L2 on
# doppel's KVM engine. Linux's VT keyboard handler restarts the kernel at once (C_A_D is on
# by default and the kit's init never turns it off); its reboot=k resets through the i8042,
# which doppel reports as a guest reboot.
#  cad1: the default command line (Firecracker's i8042.noaux/nomux/nopnp/dumbkbd: atkbd
#        attaches without probing), --on-reboot exit: doppel ends with exit code 3.
#  cad2: a command line without those options (atkbd probes the keyboard through its
#        commands), --on-reboot restart: the guest boots again behind the same API socket,
#        then powers off (exit 0).
keyboard() {  # tag fd out: what the guest's input layer found, between KBD-tag and KBD-tag-END
  echo "echo KBD-$1; grep '^N:' /proc/bus/input/devices; echo KBD-$1-\"\"END" >&$2
  wait_for "$3" "KBD-$1-END" 60 && echo "LAB: $1 keyboard listed"
}
boot() {  # tag extra-args...
  tag=$1; shift
  mkfifo /tmp/$tag.in
  timeout 400 /lab/doppel --log-level info run --arch x86_64 --engine kvm --kernel /lab/guest/kernel \
    --initrd /lab/guest/initrd.cpio.gz --memory 256 --api-sock /tmp/$tag.sock "$@" \
    </tmp/$tag.in >/tmp/$tag.out 2>&1 &
  pid=$!
}

boot cad1
exec 3>/tmp/cad1.in
if wait_for /tmp/cad1.out 'doppel-guest: ready' 240; then
  echo "LAB: cad1 ready"
  keyboard cad1 3 /tmp/cad1.out
  /lab/doppel ctl --sock /tmp/cad1.sock ctrl-alt-del && echo "LAB: cad1 sent"
fi
wait $pid
echo "LAB: cad1 exit=$?"
exec 3>&-
sed 's/^/L2-cad1| /' /tmp/cad1.out

boot cad2 --on-reboot restart --cmdline "console=ttyS0 reboot=k panic=-1"
exec 3>/tmp/cad2.in
if wait_for /tmp/cad2.out 'doppel-guest: ready' 240; then
  echo "LAB: cad2 ready"
  keyboard cad2 3 /tmp/cad2.out
  /lab/doppel ctl --sock /tmp/cad2.sock ctrl-alt-del && echo "LAB: cad2 sent"
  if wait_for /tmp/cad2.out 'doppel-guest: ready' 240 2; then
    echo "LAB: cad2 booted again"
    /lab/doppel ctl --sock /tmp/cad2.sock info | grep -q '"Running"' && echo "LAB: cad2 info says Running"
    echo 'echo AGAIN-""ALIVE' >&3
    wait_for /tmp/cad2.out 'AGAIN-ALIVE' 60 && echo "LAB: cad2 shell answers after the reboot"
  fi
  echo 'poweroff -f' >&3
fi
wait $pid
echo "LAB: cad2 exit=$?"
exec 3>&-
sed 's/^/L2-cad2| /' /tmp/cad2.out
