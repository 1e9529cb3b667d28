#!/usr/bin/env bash
# Many VMs on one host, side by side with QEMU (issue 14 part 4): COUNT riscv64 guests of
# the guest kit at once, 64 MiB and 1 hart each, each running `cpumark 1` and powering off;
# first all on doppel (its emulator), then all on qemu-system-riscv64 -M virt (TCG), the
# same kernel, initrd, firmware and console input. Reports for each: the total wall time
# (first start to last exit), the average peak RSS and PSS per VM (/proc/PID/smaps_rollup,
# sampled every 0.5 s), whether every checksum and exit code was right; then the
# doppel/QEMU ratios (lower is better for doppel).
#
#   bench/many_vms/run.sh            # COUNT=24
#   COUNT=8 bench/many_vms/run.sh
#   MANY_VMS_WRAP=path/to/wrapper bench/many_vms/run.sh   # each doppel VM through a wrapper
#                                                         # (the jailer): see tests/many_vms/lib.sh
# Not a test: nothing is asserted. Run on an otherwise idle host; the load average is printed
# with the numbers.
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
DOPPEL=${DOPPEL:-$ROOT/build/doppel}
COUNT=${COUNT:-24}
source "$ROOT/tests/many_vms/lib.sh"
command -v qemu-system-riscv64 >/dev/null || { echo "SKIP: qemu-system-riscv64 not installed"; exit 77; }
[[ -x $DOPPEL ]] || { echo "SKIP: $DOPPEL not built"; exit 77; }
many_kit || { echo "SKIP: no riscv64 guest kit"; exit 77; }
work=$(mktemp -d "${TMPDIR:-/tmp}/doppel-many-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT

declare -A wall rss pss ok
for kind in doppel qemu; do
  echo "== $COUNT x $kind (load average before: $(cut -d' ' -f1-3 /proc/loadavg))"
  many_run "$kind" "$COUNT" "$work/$kind"
  wall[$kind]=$(cat "$work/$kind/wall")
  read -r rss[$kind] pss[$kind] < <(many_mem_avg "$COUNT" "$work/$kind")
  if many_check "$COUNT" "$work/$kind" >"$work/$kind.check"; then ok[$kind]="all right"
  else ok[$kind]="FAILURES (below)"; fi
  printf '%-7s wall %7.1f s   per VM: peak RSS %6.1f MiB, peak PSS %6.1f MiB   checksums/exit codes: %s\n' \
    "$kind" "${wall[$kind]}" "$(bc -l <<<"${rss[$kind]}/1024")" "$(bc -l <<<"${pss[$kind]}/1024")" "${ok[$kind]}"
  [[ ${ok[$kind]} == "all right" ]] || cat "$work/$kind.check"
done
echo "== doppel/QEMU ratios ($COUNT VMs; load average after: $(cut -d' ' -f1-3 /proc/loadavg))"
printf 'wall time        %.2f\n' "$(bc -l <<<"${wall[doppel]}/${wall[qemu]}")"
printf 'RSS per VM       %.2f\n' "$(bc -l <<<"${rss[doppel]}/${rss[qemu]}")"
printf 'PSS per VM       %.2f\n' "$(bc -l <<<"${pss[doppel]}/${pss[qemu]}")"
