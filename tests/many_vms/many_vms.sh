#!/usr/bin/env bash
# Many VMs on one host (issue 14 part 4): COUNT riscv64 guests of the guest kit at once (64
# MiB, 1 hart each), each running `cpumark 1` (its checksum printed) and powering off;
# every one must print cpumark 1's checksum and exit 0. Reports the wall time and the
# average peak RSS/PSS per VM (not asserted: bench/many_vms/run.sh compares with QEMU).
#   many_vms.sh DOPPEL [COUNT]     (COUNT: default 24; MANY_VMS_COUNT overrides)
set -uo pipefail
DOPPEL=${1:?usage: many_vms.sh DOPPEL [COUNT]}
count=${MANY_VMS_COUNT:-${2:-24}}
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
many_kit || { echo "SKIP: no riscv64 guest kit (guest/build.sh --arch riscv64)"; exit 77; }
work=$(mktemp -d "${TMPDIR:-/tmp}/doppel-many.XXXXXX")
trap 'rm -rf "$work"' EXIT
many_run doppel "$count" "$work"
read -r rss pss < <(many_mem_avg "$count" "$work")
echo "$count VMs: wall $(cat "$work/wall") s; per VM peak RSS $((rss / 1024)) MiB, PSS $((pss / 1024)) MiB (load average: $(cut -d' ' -f1-3 /proc/loadavg))"
if many_check "$count" "$work"; then
  echo "ok: all $count VMs printed checksum $MANY_CHECKSUM and exited 0"
else
  exit 1
fi
