#!/bin/bash
# Side-by-side benchmark in the KVM lab: doppel's KVM engine vs qemu-system-x86_64 -M microvm
# -enable-kvm, same L1 (QEMU TCG + kvm_amd), same L2 kernel and initramfs.
#   bench/kvm/run.sh [--doppel PATH] [--guest-dir DIR] [--runs N]
# Prints per-VMM: time from process start to the guest's readiness line, VMM memory (RSS of
# every mapping except guest RAM, from /proc/PID/smaps, while the guest idles at its shell),
# and the cost of one port-I/O exit round trip (a tiny PVH guest doing N `out`s, timed
# against N=0, whose run is also reported as start_stop_ms: process start to exit around
# a guest that powers off at once). Then the medians and the ratios doppel/QEMU. Targets:
# boot <= 0.7x, VMM RSS <= 5 MiB.
# The doppel measured is a static build (build-static/, made here with -DDOPPEL_STATIC=ON
# if it is missing), as one would ship it; --doppel build/doppel measures the dynamic one.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
doppel="" guest_dir="" runs=5
while [ $# -gt 0 ]; do
  case $1 in
    --doppel) doppel=$2; shift 2 ;;
    --guest-dir) guest_dir=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    *) echo "bench/kvm: unknown argument '$1'" >&2; exit 2 ;;
  esac
done
if [ -z "$doppel" ]; then
  doppel=$src/build-static/doppel
  echo "bench/kvm: building a static doppel in build-static/" >&2
  cmake -S "$src" -B "$src/build-static" -G Ninja -DCMAKE_BUILD_TYPE=Release -DDOPPEL_STATIC=ON \
    -DDOPPEL_TESTS=OFF -DDOPPEL_BENCH=OFF >/dev/null
  cmake --build "$src/build-static" --target doppel -j2 >/dev/null
fi
echo "bench/kvm: doppel = $doppel ($(file -b "$doppel" | grep -o 'statically linked\|dynamically linked'))"
[ -n "$guest_dir" ] || guest_dir=$("$src/guest/build.sh" --arch x86_64 --print-dir)
[ -f "$guest_dir/vmlinux" ] || { echo "bench/kvm: no $guest_dir/vmlinux (guest/build.sh --arch x86_64)" >&2; exit 2; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for n in 0 20000; do
  as --64 --defsym N=$n -o "$tmp/pio$n.o" "$src/tests/guests/pio_loop_pvh.S"
  ld -m elf_x86_64 -N --no-warn-rwx-segments -Ttext=0x100000 -o "$tmp/pio$n.elf" "$tmp/pio$n.o"
done
sed "s/@RUNS@/$runs/" "$here/l1_bench.sh" >"$tmp/l1_bench.sh"
"$src/tests/kvm_lab/lab.sh" --doppel "$doppel" --guest-dir "$guest_dir" --script "$tmp/l1_bench.sh" \
  --extra "$tmp/pio0.elf" --extra "$tmp/pio20000.elf" --qemu-l2 --timeout 1500 | tee "$tmp/out"
echo
echo "== bench/kvm results (lab: L2 on kvm_amd inside QEMU TCG; compare ratios, not absolutes) =="
awk '
  /^BENCH / { for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
              key = v["vmm"] "," v["what"]; vals[key, ++cnt[key]] = v["value"] }
  function median(key,   n, i, j, t, a) {
    n = cnt[key]; if (!n) return -1
    for (i = 1; i <= n; i++) a[i] = vals[key, i] + 0
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
  }
  function all(key,   i, s) { for (i = 1; i <= cnt[key]; i++) s = s (i > 1 ? " " : "") vals[key, i]; return s }
  # Runs alternate doppel, qemu, doppel, ...: the ratio of each pair (taken seconds apart,
  # under the same load on the host) is steadier than the ratio of the medians.
  function paired(what,   k, n, i) {
    n = cnt["doppel," what] < cnt["qemu," what] ? cnt["doppel," what] : cnt["qemu," what]
    k = "ratio," what; cnt[k] = 0
    for (i = 1; i <= n; i++) if (vals["qemu," what, i] > 0) vals[k, ++cnt[k]] = vals["doppel," what, i] / vals["qemu," what, i]
    return cnt[k] ? sprintf("%.2fx", median(k)) : "n/a"
  }
  END {
    n = split("boot_ms rss_kib pio_ns start_stop_ms", w, " ")
    printf "%-14s %12s %14s %7s %7s   (doppel runs | qemu runs)\n", "median of", "doppel", "qemu-microvm",
           "ratio", "paired"
    for (i = 1; i <= n; i++) {
      d = median("doppel," w[i]); q = median("qemu," w[i])
      printf "%-14s %12.1f %14.1f %7s %7s   (%s | %s)\n", w[i], d, q,
             (d > 0 && q > 0) ? sprintf("%.2fx", d / q) : "n/a", paired(w[i]), all("doppel," w[i]), all("qemu," w[i])
    }
  }' "$tmp/out"
