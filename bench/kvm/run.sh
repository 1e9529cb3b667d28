#!/bin/bash
# Side-by-side benchmark in the KVM lab: doppel's KVM engine vs qemu-system-x86_64 -M microvm
# -enable-kvm, same L1 (QEMU TCG + kvm_amd), same L2 kernel and initramfs.
#   bench/kvm/run.sh [--doppel build/doppel] [--guest-dir DIR] [--runs N]
# Prints per-VMM: time from process start to the guest's readiness line, VMM memory (RSS of
# every mapping except guest RAM, from /proc/PID/smaps, while the guest idles at its shell),
# and the cost of one port-I/O exit round trip (a tiny PVH guest doing N `out`s, timed
# against N=0). Then the ratios doppel/QEMU. Targets: boot <= 0.7x, VMM RSS <= 5 MiB.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
doppel=$src/build/doppel guest_dir="" runs=3
while [ $# -gt 0 ]; do
  case $1 in
    --doppel) doppel=$2; shift 2 ;;
    --guest-dir) guest_dir=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    *) echo "bench/kvm: unknown argument '$1'" >&2; exit 2 ;;
  esac
done
[ -n "$guest_dir" ] || guest_dir=$("$src/guest/build.sh" --arch x86_64 --print-dir)
[ -f "$guest_dir/vmlinux" ] || { echo "bench/kvm: no $guest_dir/vmlinux (guest/build.sh --arch x86_64)" >&2; exit 2; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for n in 0 20000; do
  as --64 --defsym N=$n -o "$tmp/pio$n.o" "$src/tests/guests/pio_loop_pvh.S"
  ld -m elf_x86_64 -N -Ttext=0x100000 -o "$tmp/pio$n.elf" "$tmp/pio$n.o"
done
sed "s/@RUNS@/$runs/" "$here/l1_bench.sh" >"$tmp/l1_bench.sh"
"$src/tests/kvm_lab/lab.sh" --doppel "$doppel" --guest-dir "$guest_dir" --script "$tmp/l1_bench.sh" \
  --extra "$tmp/pio0.elf" --extra "$tmp/pio20000.elf" --qemu-l2 --timeout 1500 | tee "$tmp/out"
echo
echo "== bench/kvm results (lab: L2 on kvm_amd inside QEMU TCG; compare ratios, not absolutes) =="
awk '
  /^BENCH / { for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
              key = v["vmm"] "," v["what"]; sum[key] += v["value"]; cnt[key]++ }
  END {
    n = split("boot_ms rss_kib pio_ns", w, " ")
    for (i = 1; i <= n; i++) {
      d = cnt["doppel," w[i]] ? sum["doppel," w[i]] / cnt["doppel," w[i]] : -1
      q = cnt["qemu," w[i]] ? sum["qemu," w[i]] / cnt["qemu," w[i]] : -1
      printf "%-8s doppel %10.1f   qemu-microvm %10.1f   ratio %s\n", w[i], d, q,
             (d > 0 && q > 0) ? sprintf("%.2fx", d / q) : "n/a"
    }
  }' "$tmp/out"
