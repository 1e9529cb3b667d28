#!/usr/bin/env bash
# Builds doppel's default guest (kernel, initrd, firmware) for one architecture from
# Debian packages only, and prints the output directory as the last line on stdout.
#
#   guest/build.sh --arch riscv64|x86_64 [--print-dir] [--verbose]
#
# --print-dir prints the directory the current inputs map to, without building, and
# exits 0 whether or not it exists yet. Everything else (progress, errors) goes to stderr.
#
# Output: ${XDG_CACHE_HOME:-$HOME/.cache}/doppel/guests/<arch>-<hash>/ holding
#   kernel (riscv64 Image / x86_64 bzImage), vmlinux (the kernel's ELF, with symbols, for
#   gdb; x86_64 also boots it), initrd.cpio.gz,
#   fw_dynamic.bin (riscv64), config (the kernel .config), manifest (inputs and versions).
# <hash> covers every input (this script, the configs, init, programs, package versions),
# so a cached directory is only ever reused for identical inputs. See guest/README.md.
set -euo pipefail

GUEST_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SCRIPT="$GUEST_DIR/$(basename "${BASH_SOURCE[0]}")"

die() { echo "guest/build.sh: error: $*" >&2; exit 1; }
usage() {
  echo "usage: guest/build.sh --arch riscv64|x86_64 [--print-dir] [--verbose]" >&2
  exit 2
}

ARCH="" PRINT_DIR=0 VERBOSE=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --arch) [[ $# -ge 2 ]] || die "--arch needs a value (riscv64 or x86_64)"; ARCH=$2; shift 2 ;;
    --arch=*) ARCH=${1#--arch=}; shift ;;
    --print-dir) PRINT_DIR=1; shift ;;
    --verbose|-v) VERBOSE=1; shift ;;
    -h|--help) usage ;;
    *) echo "guest/build.sh: error: unknown argument '$1'" >&2; usage ;;
  esac
done
case "$ARCH" in
  riscv64|x86_64) ;;
  "") echo "guest/build.sh: error: --arch is required" >&2; usage ;;
  *) die "unsupported --arch '$ARCH' (supported: riscv64, x86_64)" ;;
esac

CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/doppel
GUESTS=$CACHE/guests
JOBS=$(nproc 2>/dev/null || echo 1)
START=$SECONDS

log() { printf 'guest[%s] %4ds: %s\n' "$ARCH" $((SECONDS - START)) "$*" >&2; }

# ---------------------------------------------------------------------------------------
# Inputs and their hash
# ---------------------------------------------------------------------------------------

# Version of an installed Debian package, or "missing".
pkgver() { dpkg-query -W -f='${Version}' "$1" 2>/dev/null || echo missing; }

# Newest version of the busybox source package apt knows about (needs a deb-src entry).
busybox_src_version() {
  local best="" v
  while read -r v; do
    if [[ -z "$best" ]] || dpkg --compare-versions "$v" gt "$best"; then best=$v; fi
  done < <(apt-cache showsrc --only-source busybox 2>/dev/null | awk '/^Version:/ {print $2}')
  echo "${best:-unavailable}"
}

LINUX_PKG=linux-source-6.1
LINUX_TARBALL=/usr/src/linux-source-6.1.tar.xz
if [[ $ARCH == riscv64 ]]; then
  PKGS=(linux-source-6.1 opensbi gcc-riscv64-linux-gnu gcc-12-riscv64-linux-gnu
        binutils-riscv64-linux-gnu libc6-dev-riscv64-cross gcc-12)
  CROSS=riscv64-linux-gnu-
  KARCH=riscv
  CC=${CROSS}gcc
  BUSYBOX_SRC_VERSION=$(busybox_src_version)
else
  PKGS=(linux-source-6.1 busybox-static gcc-12 binutils libc6-dev)
  CROSS=""
  KARCH=x86_64
  CC=gcc
  BUSYBOX_SRC_VERSION=unused
fi

# Every file that shapes the output, relative to guest/.
input_files() {
  (cd "$GUEST_DIR" && {
    echo build.sh
    echo init
    find "$ARCH" programs -type f \( -name '*.config' -o -name '*.c' -o -name '*.h' \) 2>/dev/null
  } | LC_ALL=C sort)
}

# The manifest is both the hash input and a record kept in the output directory.
manifest() {
  echo "arch $ARCH"
  local p f versions
  versions=$(dpkg-query -W -f='${Package} ${Version}\n' "${PKGS[@]}" 2>/dev/null || true)
  for p in "${PKGS[@]}"; do
    echo "package $p $(awk -v p="$p" '$1 == p {v = $2} END {print v ? v : "missing"}' <<<"$versions")"
  done
  echo "source busybox $BUSYBOX_SRC_VERSION"
  while read -r f; do
    echo "file $f $(sha256sum < "$GUEST_DIR/$f" | cut -c1-64)"
  done < <(input_files)
}

MANIFEST=$(manifest)
HASH=$(sha256sum <<<"$MANIFEST" | cut -c1-16)
OUT=$GUESTS/$ARCH-$HASH

if [[ $PRINT_DIR -eq 1 ]]; then
  echo "$OUT"
  exit 0
fi

if [[ $ARCH == riscv64 ]]; then
  OUT_FILES=(kernel vmlinux initrd.cpio.gz fw_dynamic.bin config manifest)
else
  OUT_FILES=(kernel vmlinux initrd.cpio.gz config manifest)
fi
complete() {
  local f
  for f in "${OUT_FILES[@]}"; do [[ -s "$1/$f" ]] || return 1; done
}

if [[ -d "$OUT" ]] && complete "$OUT"; then
  log "cached: $OUT"
  echo "$OUT"
  exit 0
fi

# ---------------------------------------------------------------------------------------
# Preconditions
# ---------------------------------------------------------------------------------------
for p in "${PKGS[@]}"; do
  [[ $(pkgver "$p") != missing ]] || die "Debian package '$p' is not installed (run scripts/install-deps)"
done
[[ -r $LINUX_TARBALL ]] || die "$LINUX_TARBALL: not readable (package $LINUX_PKG)"
for t in make bc flex bison gzip sha256sum flock readelf "$CC"; do
  command -v "$t" >/dev/null || die "required tool '$t' not found (run scripts/install-deps)"
done
if [[ $ARCH == riscv64 && $BUSYBOX_SRC_VERSION == unavailable ]]; then
  die "apt knows no source package 'busybox' (needs a deb-src entry: run scripts/install-deps, then apt-get update)"
fi

mkdir -p "$GUESTS" "$CACHE/src" "$CACHE/build" "$CACHE/parts" "$CACHE/locks"

# One build per arch at a time (they share object directories); the other waits.
exec 9>"$CACHE/locks/$ARCH.lock"
if ! flock -n 9; then
  log "another build for $ARCH is running; waiting for it"
  flock 9
fi
# It may have produced what we want.
if [[ -d "$OUT" ]] && complete "$OUT"; then
  log "cached: $OUT"
  echo "$OUT"
  exit 0
fi
rm -rf "$GUESTS/.tmp-$ARCH-"* "$CACHE/parts/.tmp-"*"-$ARCH-"*
# An output directory someone emptied by hand is rebuilt from scratch.
[[ -d "$OUT" ]] && rm -rf "$OUT"

# Runs a long command quietly into a log file (or verbosely), failing with its tail.
run_logged() {
  local logfile=$1; shift
  if [[ $VERBOSE -eq 1 ]]; then
    "$@" 2>&1 | tee -a "$logfile" >&2
    return "${PIPESTATUS[0]}"
  fi
  if ! "$@" >>"$logfile" 2>&1; then
    echo "---- last lines of $logfile ----" >&2
    tail -n 40 "$logfile" >&2
    return 1
  fi
}

# Hash of the named shell functions' text plus extra strings: the key of a part cache.
recipe_hash() {
  local fns=() extra=() a
  for a in "$@"; do
    if declare -F "$a" >/dev/null; then fns+=("$a"); else extra+=("$a"); fi
  done
  { declare -f "${fns[@]}"; printf '%s\n' "${extra[@]}"; } | sha256sum | cut -c1-16
}

# True for an ELF executable without a program interpreter (statically linked).
is_static() {
  local h
  h=$(readelf -lW "$1" 2>/dev/null) || return 1
  ! grep -q 'INTERP' <<<"$h"
}

# Keeps only the newest entries matching the glob $1: $2 of them, but never fewer than 3, so
# that worktrees whose recipes differ (another kernel config, another guest program) can
# share the cache without evicting each other's kernels at every build.
prune() {
  local keep=$(($2 > 3 ? $2 : 3)) old
  # shellcheck disable=SC2086
  ls -1dt $1 2>/dev/null | tail -n +$((keep + 1)) | while read -r old; do
    rm -rf -- "$old"
  done
}

# ---------------------------------------------------------------------------------------
# Linux source tree (unpacked once per linux-source version, shared by both arches)
# ---------------------------------------------------------------------------------------
linux_source() {
  local ver dir
  ver=$(pkgver "$LINUX_PKG")
  dir=$CACHE/src/linux-$ver
  exec 8>"$CACHE/locks/src-linux.lock"
  flock 8
  if [[ ! -f "$dir/Makefile" ]]; then
    log "unpacking $LINUX_TARBALL ($LINUX_PKG $ver)"
    rm -rf "$dir.tmp"
    mkdir -p "$dir.tmp"
    nice -n 10 tar -xJf "$LINUX_TARBALL" -C "$dir.tmp" --strip-components=1
    mv -T "$dir.tmp" "$dir"
    prune "$CACHE/src/linux-*" 1
  fi
  exec 8>&-
  LINUX_SRC=$dir
}

# ---------------------------------------------------------------------------------------
# Kernel
# ---------------------------------------------------------------------------------------
kmake() {
  nice -n 10 make -C "$LINUX_SRC" O="$KOBJ" ARCH="$KARCH" CROSS_COMPILE="$CROSS" \
    KBUILD_BUILD_USER=doppel KBUILD_BUILD_HOST=guestkit "$@"
}

# Every line of the fragment must hold in the final .config.
check_fragment() {
  local frag=$1 config=$2 bad=0 line sym
  while IFS= read -r line; do
    if [[ $line =~ ^(CONFIG_[A-Za-z0-9_]+)=(.*)$ ]]; then
      grep -qxF -- "$line" "$config" || {
        echo "  $line: got '$(grep -E "^(# )?${BASH_REMATCH[1]}[= ]" "$config" || echo "absent")'" >&2
        bad=1
      }
    elif [[ $line =~ ^#\ (CONFIG_[A-Za-z0-9_]+)\ is\ not\ set$ ]]; then
      sym=${BASH_REMATCH[1]}
      if grep -qE "^$sym=" "$config"; then
        echo "  $line: got '$(grep -E "^$sym=" "$config")'" >&2
        bad=1
      fi
    fi
  done < "$frag"
  return $bad
}

build_kernel() {
  local frag=$GUEST_DIR/$ARCH/kernel.config key part
  key=$(recipe_hash kmake check_fragment build_kernel "$MANIFEST_KERNEL" "$(sha256sum < "$frag")")
  part=$CACHE/parts/kernel-$ARCH-$key
  if [[ -s $part/config ]]; then
    log "kernel: cached ($part)"
    KPART=$part
    return
  fi
  linux_source
  KOBJ=$CACHE/build/linux-$ARCH
  mkdir -p "$KOBJ"
  local logfile=$KOBJ/build.log
  : > "$logfile"
  log "kernel: configuring (allnoconfig + $ARCH/kernel.config, then olddefconfig)"
  run_logged "$logfile" kmake KCONFIG_ALLCONFIG="$frag" allnoconfig
  run_logged "$logfile" kmake olddefconfig
  if ! check_fragment "$frag" "$KOBJ/.config"; then
    die "kernel: the options above from guest/$ARCH/kernel.config did not survive olddefconfig (missing dependency?)"
  fi
  local target image
  if [[ $ARCH == riscv64 ]]; then target=Image image=arch/riscv/boot/Image
  else target=bzImage image=arch/x86/boot/bzImage; fi
  log "kernel: building $target with -j$JOBS (log: $logfile)"
  local t0=$SECONDS
  run_logged "$logfile" kmake -j"$JOBS" "$target" || die "kernel: build failed (log: $logfile)"
  log "kernel: built in $((SECONDS - t0)) s"
  # gen_init_cpio from the same tree packs the initrd without needing root for /dev nodes.
  gcc -O2 -o "$KOBJ/gen_init_cpio" "$LINUX_SRC/usr/gen_init_cpio.c"
  rm -rf "$CACHE/parts/.tmp-kernel-$ARCH-$key"
  mkdir -p "$CACHE/parts/.tmp-kernel-$ARCH-$key"
  local tmp=$CACHE/parts/.tmp-kernel-$ARCH-$key
  cp "$KOBJ/$image" "$tmp/kernel"
  [[ $ARCH == x86_64 ]] && cp "$KOBJ/vmlinux" "$tmp/vmlinux"
  cp "$KOBJ/gen_init_cpio" "$tmp/gen_init_cpio"
  cp "$KOBJ/.config" "$tmp/config"
  mv -T "$tmp" "$part"
  prune "$CACHE/parts/kernel-$ARCH-*" 1
  KPART=$part
}

# The riscv64 kernel part was first cached without its vmlinux. Rather than change
# build_kernel (whose text keys both arches' kernel parts, and a rebuild costs minutes), the
# vmlinux is added to the part afterwards: from the kernel's object directory when that
# vmlinux is the one the part's Image was made from (objcopy reproduces the Image byte for
# byte), else by building the vmlinux target there (incremental when the objects are there).
add_riscv64_vmlinux() {
  [[ -s $KPART/vmlinux ]] && return
  KOBJ=$CACHE/build/linux-$ARCH
  local image=$KOBJ/.vmlinux-image.tmp
  vmlinux_matches() {
    [[ -s $KOBJ/vmlinux ]] || return 1
    ${CROSS}objcopy -O binary -R .note -R .note.gnu.build-id -R .comment -S \
      "$KOBJ/vmlinux" "$image" 2>/dev/null || return 1
    cmp -s "$image" "$KPART/kernel"
  }
  if ! vmlinux_matches; then
    linux_source
    mkdir -p "$KOBJ"
    cp "$KPART/config" "$KOBJ/.config"
    log "kernel: building vmlinux for gdb's symbols (log: $KOBJ/build.log)"
    run_logged "$KOBJ/build.log" kmake -j"$JOBS" vmlinux || die "kernel: vmlinux build failed"
    vmlinux_matches || die "kernel: $KOBJ/vmlinux does not reproduce $KPART/kernel"
  fi
  rm -f "$image"
  cp "$KOBJ/vmlinux" "$KPART/.vmlinux.tmp"
  mv "$KPART/.vmlinux.tmp" "$KPART/vmlinux"
  log "kernel: vmlinux added to $KPART"
}

# ---------------------------------------------------------------------------------------
# busybox: riscv64 cross-built from Debian's source package; x86_64 from busybox-static
# ---------------------------------------------------------------------------------------
busybox_source() {
  # No ':' (the epoch) in the path: make cannot handle it.
  local dir=$CACHE/src/busybox-${BUSYBOX_SRC_VERSION//:/_} dl
  exec 8>"$CACHE/locks/src-busybox.lock"
  flock 8
  if [[ ! -f "$dir/Makefile" ]]; then
    log "busybox: fetching source package busybox=$BUSYBOX_SRC_VERSION"
    dl=$CACHE/src/.busybox-dl
    rm -rf "$dl" "$dir.tmp"
    mkdir -p "$dl"
    (cd "$dl" && apt-get source --download-only -qq "busybox=$BUSYBOX_SRC_VERSION" >fetch.log 2>&1) ||
      { cat "$dl/fetch.log" >&2; die "busybox: apt-get source busybox=$BUSYBOX_SRC_VERSION failed"; }
    (cd "$dl" && dpkg-source -x ./*.dsc unpacked >>fetch.log 2>&1) ||
      { cat "$dl/fetch.log" >&2; die "busybox: dpkg-source -x failed"; }
    mv -T "$dl/unpacked" "$dir"
    rm -rf "$dl"
    prune "$CACHE/src/busybox-*" 1
  fi
  exec 8>&-
  BUSYBOX_SRC=$dir
}

bbmake() {
  nice -n 10 make -C "$BUSYBOX_SRC" O="$BOBJ" ARCH=riscv CROSS_COMPILE="$CROSS" "$@"
}

build_busybox_riscv64() {
  local frag=$GUEST_DIR/riscv64/busybox.config key part
  [[ -r $frag ]] || die "busybox: $frag: missing"
  key=$(recipe_hash bbmake build_busybox_riscv64 "$MANIFEST_BUSYBOX" "$(sha256sum < "$frag")")
  part=$CACHE/parts/busybox-$ARCH-$key
  if [[ -x $part/busybox ]]; then
    log "busybox: cached ($part)"
    BPART=$part
    return
  fi
  busybox_source
  BOBJ=$CACHE/build/busybox-$ARCH
  mkdir -p "$BOBJ"
  local logfile=$BOBJ/build.log
  : > "$logfile"
  log "busybox: configuring (defconfig + riscv64/busybox.config)"
  run_logged "$logfile" bbmake defconfig
  # Apply the fragment: drop every symbol it names, append its lines, then oldconfig.
  local syms
  syms=$(grep -oE '^(# )?CONFIG_[A-Za-z0-9_]+' "$frag" | sed 's/^# //' | sort -u)
  if [[ -n $syms ]]; then
    grep -vE "^(# )?($(paste -sd'|' <<<"$syms"))[= ]" "$BOBJ/.config" > "$BOBJ/.config.new" || true
    grep -E '^(# )?CONFIG_' "$frag" >> "$BOBJ/.config.new"
    mv "$BOBJ/.config.new" "$BOBJ/.config"
  fi
  # (not `yes | ...`: with pipefail, yes's SIGPIPE would fail the pipeline)
  run_logged "$logfile" bbmake oldconfig < <(yes '')
  check_fragment "$frag" "$BOBJ/.config" ||
    die "busybox: the options above from guest/riscv64/busybox.config did not survive oldconfig"
  log "busybox: building with -j$JOBS (log: $logfile)"
  local t0=$SECONDS
  run_logged "$logfile" bbmake -j"$JOBS" busybox || die "busybox: build failed (log: $logfile)"
  log "busybox: built in $((SECONDS - t0)) s"
  is_static "$BOBJ/busybox" ||
    die "busybox: $BOBJ/busybox is not statically linked"
  local tmp=$CACHE/parts/.tmp-busybox-$ARCH-$key
  rm -rf "$tmp"
  mkdir -p "$tmp"
  cp "$BOBJ/busybox" "$tmp/busybox"
  # Applet paths, one per line (bin/sh, usr/bin/env ...), without running the binary.
  run_logged "$logfile" bbmake busybox.links
  sed 's|^/||' "$BOBJ/busybox.links" > "$tmp/applets"
  cp "$BOBJ/.config" "$tmp/busybox.config"
  mv -T "$tmp" "$part"
  prune "$CACHE/parts/busybox-$ARCH-*" 1
  BPART=$part
}

# ---------------------------------------------------------------------------------------
# Programs and initrd
# ---------------------------------------------------------------------------------------
build_programs() {
  local dest=$1 src name
  mkdir -p "$dest"
  for src in "$GUEST_DIR"/programs/*.c; do
    [[ -e $src ]] || continue
    name=$(basename "$src" .c)
    log "programs: $name"
    nice -n 10 "$CC" -static -O2 -ffp-contract=off -Wall -Wextra -Werror -o "$dest/$name" "$src" -lm ||
      die "programs: $src failed to compile for $ARCH"
  done
}

build_initrd() {
  local tmp=$1 stage=$1/initrd-stage list=$1/initrd.list busybox applets a
  mkdir -p "$stage"
  if [[ $ARCH == riscv64 ]]; then
    busybox=$BPART/busybox
    applets=$(cat "$BPART/applets")
  else
    busybox=/bin/busybox
    is_static "$busybox" ||
      die "initrd: $busybox is not the static busybox (is busybox-static installed?)"
    applets=$("$busybox" --list-full)
  fi
  build_programs "$stage/programs"
  {
    local d
    for d in bin sbin usr usr/bin usr/sbin dev proc sys tmp run root etc mnt var; do
      echo "dir /$d 755 0 0"
    done
    echo "nod /dev/console 600 0 0 c 5 1"
    echo "nod /dev/null 666 0 0 c 1 3"
    echo "file /bin/busybox $busybox 755 0 0"
    echo "file /init $GUEST_DIR/init 755 0 0"
    for a in $applets; do
      [[ $a == bin/busybox ]] && continue
      echo "slink /$a /bin/busybox 777 0 0"
    done
    for a in "$stage"/programs/*; do
      [[ -e $a ]] && echo "file /usr/bin/$(basename "$a") $a 755 0 0"
    done
    echo "file /etc/doppel-guest $tmp/manifest 644 0 0"
  } > "$list"
  # Later duplicates (a program named like an applet) would fail gen_init_cpio: drop the applet.
  awk '$1 != "slink" {print; next} {seen[$2]++} seen[$2] == 1' "$list" > "$list.dedup"
  local progs
  progs=$(awk '$1 == "file" && $2 ~ /^\/usr\/bin\// {print $2}' "$list.dedup")
  for a in $progs; do
    grep -v -x -E "slink $a .*" "$list.dedup" > "$list.tmp" || true
    mv "$list.tmp" "$list.dedup"
  done
  "$KPART/gen_init_cpio" -t 0 "$list.dedup" | gzip -9 -n > "$tmp/initrd.cpio.gz"
  rm -rf "$stage" "$list" "$list.dedup"
}

# ---------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------
log "building into $OUT"
# Part keys: the inputs each part depends on (package versions of toolchain and sources).
MANIFEST_KERNEL=$(grep -E "^(arch |package ($LINUX_PKG|gcc-12|gcc-12-riscv64-linux-gnu|binutils|binutils-riscv64-linux-gnu) )" <<<"$MANIFEST")
MANIFEST_BUSYBOX=$(grep -E "^(arch |source busybox |package (gcc-12-riscv64-linux-gnu|binutils-riscv64-linux-gnu|libc6-dev-riscv64-cross) )" <<<"$MANIFEST")

build_kernel
if [[ $ARCH == riscv64 ]]; then
  add_riscv64_vmlinux
  build_busybox_riscv64
fi

TMP=$GUESTS/.tmp-$ARCH-$HASH-$$
rm -rf "$TMP"
mkdir -p "$TMP"
trap 'rm -rf "$TMP"' EXIT
echo "$MANIFEST" > "$TMP/manifest"
cp "$KPART/kernel" "$TMP/kernel"
cp "$KPART/config" "$TMP/config"
cp "$KPART/vmlinux" "$TMP/vmlinux"
if [[ $ARCH == riscv64 ]]; then
  fw=$(dpkg -L opensbi | grep -m1 '/generic/fw_dynamic\.bin$' || true)
  [[ -n $fw && -s $fw ]] || die "opensbi: the package has no generic/fw_dynamic.bin"
  cp "$fw" "$TMP/fw_dynamic.bin"
fi
log "initrd: packing busybox, init and programs"
build_initrd "$TMP"
complete "$TMP" || die "internal: $TMP is incomplete"
if ! mv -T "$TMP" "$OUT" 2>/dev/null; then
  complete "$OUT" || die "could not move $TMP to $OUT"
  rm -rf "$TMP"
fi
trap - EXIT
prune "$GUESTS/$ARCH-*" 8
log "done in $((SECONDS - START)) s: $(du -sh "$OUT" | cut -f1) in $OUT"
echo "$OUT"
