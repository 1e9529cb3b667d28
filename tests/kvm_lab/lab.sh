#!/bin/bash
# The KVM lab: a standard KVM inside QEMU's software emulation (see /work/shared/kvm-lab.md).
#
# L1 = Debian's cloud kernel (downloaded with apt-get download, never installed, cached under
# ${XDG_CACHE_HOME:-~/.cache}/doppel/kvm-lab) + kvm_amd, booted under qemu-system-x86_64 in
# pure TCG with an emulated AMD-V CPU. Its initramfs holds busybox, doppel (with the shared
# libraries ldd lists), the x86_64 guest kit (L2) and a script to run.
#
#   tests/kvm_lab/lab.sh --doppel build/doppel --guest-dir DIR --script L1_SCRIPT [--extra FILE]...
#                        [--out-disk FILE] [--qemu-l2] [--timeout SECONDS] [--smp N]
#                        [--serial2 SOCKET]
#
# L1_SCRIPT runs as the tail of L1's /init (which gives it wait_for), with /dev/kvm ready, doppel at /lab/doppel and
# the guest kit at /lab/guest/{kernel,vmlinux,initrd.cpio.gz}; --extra files land in /lab/.
# With --qemu-l2, qemu-system-x86_64 and what it needs are copied in too (as /lab/qemu).
# --out-disk FILE (an existing file) is L1's NVMe disk /dev/nvme0n1 (the cloud kernel has
# NVMe built in): what L1 writes there is in FILE once the lab has run.
# --serial2 SOCKET: L1's second serial port /dev/ttyS1 on a Unix socket QEMU listens on (a
# byte pipe between the host and L1, e.g. for gdb).
# L1's console (and so the script's output) goes to stdout. Exit status: 0 if L1 ran the
# script and powered off; 2 on a lab set-up failure (message on stderr); 3 if L1 stopped
# before its script ended (no "LAB: done" on its console: L1 reset or died under L0, which
# QEMU's emulated AMD-V sometimes does, seen with the hostile test's 2 vCPUs about once in
# seven runs; lab_run() in test_lib.sh then runs the lab once more).
set -euo pipefail

die() { echo "kvm-lab: $*" >&2; exit 2; }

doppel="" guest_dir="" script="" qemu_l2=0 timeout=600 smp=1 out_disk="" serial2=""
extras=()
while [ $# -gt 0 ]; do
  case $1 in
    --doppel) doppel=$2; shift 2 ;;
    --guest-dir) guest_dir=$2; shift 2 ;;
    --script) script=$2; shift 2 ;;
    --extra) extras+=("$2"); shift 2 ;;
    --out-disk) out_disk=$2; shift 2 ;;
    --qemu-l2) qemu_l2=1; shift ;;
    --timeout) timeout=$2; shift 2 ;;
    --smp) smp=$2; shift 2 ;;
    --serial2) serial2=$2; shift 2 ;;
    *) die "unknown argument '$1'" ;;
  esac
done
[ -x "$doppel" ] || die "--doppel '$doppel': not an executable"
[ -f "$script" ] || die "--script '$script': no such file"
for f in kernel initrd.cpio.gz; do
  [ -f "$guest_dir/$f" ] || die "--guest-dir '$guest_dir': no $f (build it: guest/build.sh --arch x86_64)"
done
[ -z "$out_disk" ] || [ -f "$out_disk" ] || die "--out-disk '$out_disk': no such file"
command -v qemu-system-x86_64 >/dev/null || die "qemu-system-x86_64 is not installed (scripts/install-deps)"
command -v cpio >/dev/null || die "cpio is not installed"
busybox=$(command -v busybox) || die "busybox-static is not installed"

# L1 kernel and modules, cached.
cache=${XDG_CACHE_HOME:-$HOME/.cache}/doppel/kvm-lab
mkdir -p "$cache"
if ! ls "$cache"/root/boot/vmlinuz-*-cloud-amd64 >/dev/null 2>&1; then
  pkg=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null | sed -n 's/.*Depends: \(linux-image-[0-9].*-cloud-amd64\)$/\1/p' | head -1)
  [ -n "$pkg" ] || die "cannot resolve linux-image-cloud-amd64 (apt-get update?)"
  (cd "$cache" && apt-get download "$pkg" >/dev/null 2>&1) || die "apt-get download $pkg failed"
  rm -rf "$cache/root"
  dpkg-deb -x "$cache"/"$pkg"_*.deb "$cache/root" || die "dpkg-deb -x failed"
fi
vmlinuz=$(ls "$cache"/root/boot/vmlinuz-*-cloud-amd64 | head -1)

# L0, the QEMU that emulates AMD-V: Debian 12's backports build (QEMU 10), fetched like the
# kernel (apt-get download from bookworm-backports with a private source list, unpacked, never
# installed) and cached. Debian 12's own QEMU 7.2 loses a nested guest's breakpoints: VMRUN
# loads DR7 without arming TCG's breakpoints and int3 is checked against the INTn intercept
# (target/i386/tcg/sysemu/svm_helper.c, tcg/excp_helper.c), so the gdb test cannot see KVM's
# breakpoint exits under it. DOPPEL_LAB_QEMU=PATH picks another L0; where the backports build
# cannot be fetched or lacks a library, the QEMU on PATH is used, and the lab says which.
l0_qemu() {
  if [ -n "${DOPPEL_LAB_QEMU:-}" ]; then echo "$DOPPEL_LAB_QEMU"; return; fi
  local bpo=$cache/qemu-bpo q
  q=$bpo/root/usr/bin/qemu-system-x86_64
  if [ ! -x "$q" ]; then
    local t
    t=$(mktemp -d "$cache/qemu-bpo.XXXXXX")
    mkdir -p "$t/lists/partial" "$t/archives/partial"
    echo "deb http://deb.debian.org/debian bookworm-backports main" >"$t/sources.list"
    local apt=(-o Dir::Etc::sourcelist="$t/sources.list" -o Dir::Etc::sourceparts=-
               -o Dir::State::Lists="$t/lists" -o Dir::Cache::archives="$t/archives"
               -o APT::Sandbox::User=root)
    if apt-get "${apt[@]}" update >/dev/null 2>&1 &&
       (cd "$t" && apt-get "${apt[@]}" download qemu-system-x86 \
          qemu-system-common qemu-system-data >/dev/null 2>&1); then
      for d in "$t"/*.deb; do dpkg-deb -x "$d" "$t/root" || { rm -rf "$t/root"; break; }; done
      mkdir -p "$bpo"
      [ -x "$q" ] || mv -T "$t/root" "$bpo/root" 2>/dev/null || true
    fi
    rm -rf "$t"
  fi
  if [ -x "$q" ] && ! ldd "$q" 2>/dev/null | grep -q 'not found'; then echo "$q"; return; fi
  command -v qemu-system-x86_64
}
qemu=$(l0_qemu)
[ -n "$qemu" ] || die "qemu-system-x86_64 is not installed (scripts/install-deps)"
qemu_data=()
case $qemu in
  "$cache"/qemu-bpo/*) qemu_data=(-L "$cache/qemu-bpo/root/usr/share/qemu" -L /usr/share/qemu -L /usr/share/seabios) ;;
esac
echo "LAB: L0 $("$qemu" --version | head -1)"
kver=${vmlinuz##*/vmlinuz-}
moddir=$cache/root/lib/modules/$kver/kernel

work=$(mktemp -d /tmp/doppel-kvm-lab.XXXXXX)
trap 'rm -rf "$work"' EXIT
root=$work/root
mkdir -p "$root"/{bin,sbin,proc,sys,dev,tmp,lab/guest,lib/modules}
cp "$busybox" "$root/bin/busybox"
ln -sf busybox "$root/bin/sh"
for m in virt/lib/irqbypass.ko arch/x86/kvm/kvm.ko arch/x86/kvm/kvm-amd.ko; do
  [ -f "$moddir/$m" ] || die "$moddir/$m is missing"
  cp "$moddir/$m" "$root/lib/modules/"
done

# A program and the shared libraries ldd lists, at the same paths.
# A static program (ldd: "not a dynamic executable") has none.
copy_program() {  # source destination
  cp "$1" "$root$2"
  local libs
  libs=$(ldd "$1" 2>/dev/null | grep -o '/[^ ]*' || true)
  for lib in $libs; do
    [ -f "$lib" ] || continue
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
  done
}
copy_program "$doppel" /lab/doppel
cp "$guest_dir/kernel" "$guest_dir/initrd.cpio.gz" "$root/lab/guest/"
[ -f "$guest_dir/vmlinux" ] && cp "$guest_dir/vmlinux" "$root/lab/guest/"
for f in "${extras[@]}"; do cp "$f" "$root/lab/"; done
if [ $qemu_l2 = 1 ]; then
  copy_program "$(command -v qemu-system-x86_64)" /lab/qemu
  mkdir -p "$root/usr/share/qemu"
  # microvm needs no firmware with -kernel, but QEMU looks for its data directory.
  for f in /usr/share/qemu/{bios-microvm.bin,linuxboot_dma.bin,kvmvapic.bin,pvh.bin}; do
    [ -f "$f" ] && cp "$f" "$root/usr/share/qemu/"
  done
  cp -r /usr/share/qemu/keymaps "$root/usr/share/qemu/" 2>/dev/null || true
fi

cat >"$root/init" <<'INIT'
#!/bin/sh
export PATH=/bin:/sbin
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs tmp /tmp
for m in irqbypass kvm kvm-amd; do
  insmod /lib/modules/$m.ko || echo "LAB: insmod $m failed"
done
# For the scripts: wait_for FILE PATTERN SECONDS [COUNT]: until FILE has COUNT (default 1)
# lines matching PATTERN; fails after SECONDS.
wait_for() {
  i=0
  while [ $i -lt $(($3 * 5)) ]; do
    [ "$(grep -c "$2" "$1" 2>/dev/null)" -ge "${4:-1}" ] && return 0
    sleep 0.2; i=$((i + 1))
  done
  return 1
}
if [ -e /dev/kvm ]; then
  echo "LAB: /dev/kvm ready"
  . /lab/script.sh
else
  echo "LAB: no /dev/kvm in L1"
fi
echo "LAB: done"
poweroff -f
INIT
chmod +x "$root/init"
cp "$script" "$root/lab/script.sh"

(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) >"$work/l1.cpio.gz"

disk_args=()
[ -n "$out_disk" ] && disk_args=(-drive "file=$out_disk,if=none,id=out,format=raw"
                                 -device nvme,drive=out,serial=doppel-lab)
[ -n "$serial2" ] && disk_args+=(-serial "unix:$serial2,server=on,wait=off")

# QEMU 7.2's TCG can lose a local-APIC interrupt: the timer vector sits in L1's IRR while
# the CPU is never told. Seen twice: L1 halted with IF=1, and L1 inside L2 while an L2 CPU
# spun with interrupts off waiting for another (cpu_init waiting for cpu_callout_mask); with
# more L2 vCPUs than L1 CPUs that wait is forever, and L1 with it. Any new interrupt makes
# QEMU re-evaluate the APIC (an NMI does not), so L1 gets a key press (IRQ 1) every
# $nudge_every s through the monitor: a lost interrupt then costs at most that long.
nudge_every=2
mkfifo "$work/monitor.in" "$work/monitor.out"
exec 4<>"$work/monitor.in" 5<>"$work/monitor.out"  # held open here, so no open ever blocks
# The monitor's replies are drained; EOF comes once QEMU and this script are gone.
cat "$work/monitor.out" 4>&- 5>&- >/dev/null &
drain=$!
(
  exec 5>&-
  trap 'kill $tick 2>/dev/null; exit 0' TERM
  while kill -0 $$ 2>/dev/null; do  # ends with this script, however it ends
    sleep $nudge_every & tick=$!
    wait $tick
    echo "sendkey shift" >&4
  done
) &
nudger=$!
status=0
# no_timer_check: on a loaded host TCG is too slow for L1's IO-APIC timer check, which then
# panics ("IO-APIC + timer doesn't work"); seen with QEMU 10.
timeout --foreground "$timeout" "$qemu" "${qemu_data[@]}" -M q35 -cpu EPYC,+svm -smp "$smp" -m 2048 \
  -nodefaults -nographic -serial stdio -monitor "pipe:$work/monitor" -no-reboot "${disk_args[@]}" \
  -kernel "$vmlinuz" -initrd "$work/l1.cpio.gz" \
  -append "console=ttyS0 quiet panic=-1 no_timer_check" </dev/null | tee "$work/console.log" ||
  status=1
kill $nudger $drain 2>/dev/null
[ $status = 0 ] || die "qemu (L1) failed or timed out after ${timeout}s"
if ! grep -q 'LAB: done' "$work/console.log"; then
  echo "kvm-lab: L1 stopped before its script ended (no 'LAB: done' on its console)" >&2
  exit 3
fi
