#!/usr/bin/env bash
# Writes a disk image that U-Boot's distro boot boots (`doppel run --boot disk`): an MBR
# partition table with one bootable Linux partition from 1 MiB, ext4, holding a guest
# kit's kernel as /Image, its initrd as /initrd.cpio.gz, and /extlinux/extlinux.conf.
# No root needed (sfdisk on a file, mkfs.ext4 -d at an offset). `doppel guest disk` runs it.
#
#   guest/disk.sh --kit DIR --cmdline 'console=ttyS0 ...' -o PATH [--size MIB]
#
# Prints PATH last. The image is written beside PATH and renamed into place.
set -euo pipefail

die() { echo "guest/disk.sh: $*" >&2; exit 1; }
kit="" cmdline="" out="" size_mib=32
while (($#)); do
  case $1 in
    --kit) kit=$2; shift 2 ;;
    --cmdline) cmdline=$2; shift 2 ;;
    -o|--output) out=$2; shift 2 ;;
    --size) size_mib=$2; shift 2 ;;
    *) die "unknown argument '$1' (usage: --kit DIR --cmdline STR -o PATH [--size MIB])" ;;
  esac
done
[[ -n $kit && -n $out ]] || die "--kit DIR and -o PATH are required"
for f in kernel initrd.cpio.gz; do [[ -s $kit/$f ]] || die "$kit/$f: missing (build the guest kit)"; done
for t in sfdisk mkfs.ext4; do
  command -v "$t" >/dev/null || PATH=$PATH:/usr/sbin:/sbin
  command -v "$t" >/dev/null || die "$t not found (scripts/install-deps installs fdisk and e2fsprogs)"
done

stage=$(mktemp -d "${TMPDIR:-/tmp}/doppel-disk.XXXXXX")
tmp="$out.tmp.$$"
trap 'rm -rf "$stage" "$tmp"' EXIT
cp "$kit/kernel" "$stage/Image"
cp "$kit/initrd.cpio.gz" "$stage/initrd.cpio.gz"
mkdir "$stage/extlinux"
# U-Boot's sysboot (doc/README.pxe): no prompt and no timeout, so it boots the default.
cat >"$stage/extlinux/extlinux.conf" <<CONF
# doppel guest kit ($(basename "$kit")), written by guest/disk.sh
default doppel
label doppel
  kernel /Image
  initrd /initrd.cpio.gz
  append $cmdline
CONF

need=$(( ($(du -sk "$stage" | cut -f1) + 4095) / 1024 + 4 ))
(( size_mib >= need )) || die "--size $size_mib MiB: the files need about $need MiB"
offset=$((1024 * 1024))
rm -f "$tmp"
truncate -s "${size_mib}M" "$tmp"
printf 'label: dos\nstart=2048, type=83, bootable\n' | sfdisk --quiet "$tmp" >/dev/null ||
  die "sfdisk $tmp failed"
mkfs.ext4 -q -F -L doppel-boot -E offset=$offset -d "$stage" "$tmp" "$(( size_mib * 1024 - 1024 ))k" ||
  die "mkfs.ext4 -d $stage failed"
mv "$tmp" "$out"
echo "$out"
