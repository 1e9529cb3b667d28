#!/usr/bin/env bash
# Live migration side by side with QEMU, on the riscv64 guest kit (256 MiB, 1 hart), both
# over TCP on this host's loopback: doppel (`doppel run --migrate-from`, `doppel ctl
# migrate`) against qemu-system-riscv64 -M virt on TCG (`-incoming tcp:`, HMP `migrate -d`),
# with the same downtime limit (DOWNTIME_MS, default 100). Workloads:
#   idle   the guest at its shell;
#   dirty  the guest rewrites a file in tmpfs (its RAM: 8 copies of its busybox) in a loop;
#   zstd   idle, over a link held to 20 MB/s, pages zstd-compressed (doppel --compress;
#          QEMU multifd with multifd-compression zstd);
#   local  idle, to another process on this host over a Unix socket (a local live update):
#          doppel with --memory-shared hands guest RAM over; QEMU 7.2 copies it.
# Reports total migration time, downtime and bytes sent (doppel's report; QEMU's `info
# migrate`), and the doppel/QEMU ratios. Not a test: nothing is asserted. Run on an
# otherwise idle host.
#
#   bench/migration/run.sh
#   RUNS=3 DOWNTIME_MS=300 bench/migration/run.sh
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../../tests/virtio_guest/lib.sh"
need qemu-system-riscv64 python3
GUEST_DIR=$(guest_dir)
[[ -x $DOPPEL ]] || skip "$DOPPEL not built (make build)"
RUNS=${RUNS:-3}
DOWNTIME_MS=${DOWNTIME_MS:-100}
QMP="python3 $(dirname "${BASH_SOURCE[0]}")/../lifecycle/qmp.py"
CMDLINE='console=ttyS0 panic=-1'
DIRTY='mkdir -p /tmp/d; while :; do for i in 1 2 3 4 5 6 7 8; do cat /bin/busybox; done > /tmp/d/x; done &'

doppel_args=(--arch riscv64 --cpus 1 --memory 256M --firmware "$GUEST_DIR/fw_dynamic.bin"
             --kernel "$GUEST_DIR/kernel" --initrd "$GUEST_DIR/initrd.cpio.gz" --cmdline "'$CMDLINE'")
qemu_cmd=(qemu-system-riscv64 -M virt -smp 1 -m 256 -nographic -no-reboot
          -bios "$GUEST_DIR/fw_dynamic.bin" -kernel "$GUEST_DIR/kernel"
          -initrd "$GUEST_DIR/initrd.cpio.gz" -append "'$CMDLINE'")
json_field() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"; }
qemu_field() {  # qemu_field FILE 'total time' -> the number
  grep -a "^$2:" "$1" | head -n1 | sed 's/^[^:]*: *\([0-9.]*\).*/\1/'
}
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2fx", a / b; else print "-" }'; }
port=45000

declare -A res
WORKLOADS=${WORKLOADS:-idle dirty zstd local}
for workload in $WORKLOADS; do
  for ((r = 0; r < RUNS; r++)); do
    # ---- doppel
    port=$((port + 1))
    to="tcp:127.0.0.1:$port" extra=() ctl_extra=()
    case $workload in
      zstd) ctl_extra=(--compress --max-bandwidth 20000000) ;;
      local) to="unix:$WORK/d-$workload-$r.mig" extra=(--memory-shared) ;;
    esac
    dest_out=$WORK/dd-$workload-$r.out
    "$DOPPEL" run "${doppel_args[@]//\'/}" --migrate-from "$to" </dev/null >"$dest_out" 2>&1 &
    dest=$!
    sock=$WORK/d-$workload-$r.sock
    vm_start "ds-$workload-$r" "$DOPPEL run ${doppel_args[*]} ${extra[*]} --api-sock $sock"
    vm_wait_ready
    [[ $workload == dirty ]] && { vm_send "$DIRTY"; sleep 3; }
    for ((i = 0; i < 50; i++)); do [[ -S ${to#unix:} || $to == tcp:* ]] && break; sleep 0.1; done
    "$DOPPEL" ctl --sock "$sock" migrate "$to" --downtime-ms "$DOWNTIME_MS" "${ctl_extra[@]}" 2>/dev/null >"$WORK/report.json"
    res[d_total_$workload]+="$(json_field "$WORK/report.json" total_ms) "
    res[d_down_$workload]+="$(json_field "$WORK/report.json" downtime_ms) "
    res[d_mib_$workload]+="$(awk -v b="$(json_field "$WORK/report.json" bytes_sent)" 'BEGIN { printf "%.1f", b / 1048576 }') "
    wait "$VM_PID" || true; VM_PID=""; exec 7>&-
    kill "$dest"; wait "$dest" 2>/dev/null || true

    # ---- QEMU
    port=$((port + 1))
    to="tcp:127.0.0.1:$port" setup=()
    case $workload in
      zstd) setup=("migrate_set_capability multifd on" "migrate_set_parameter multifd-compression zstd") ;;
      local) to="unix:$WORK/q-$workload-$r.mig" ;;
    esac
    dmon=$WORK/qd-$workload-$r.mon
    "${qemu_cmd[@]//\'/}" -incoming defer -monitor "unix:$dmon,server,nowait" </dev/null >"$WORK/qd.out" 2>&1 &
    dest=$!
    for ((i = 0; i < 50; i++)); do [[ -S $dmon ]] && break; sleep 0.1; done
    $QMP text "$dmon" "${setup[@]}" "migrate_incoming $to" >/dev/null
    mon=$WORK/q-$workload-$r.mon
    vm_start "qs-$workload-$r" "${qemu_cmd[*]} -monitor unix:$mon,server,nowait"
    vm_wait_ready
    [[ $workload == dirty ]] && { vm_send "$DIRTY"; sleep 3; }
    [[ $workload == zstd ]] && setup+=("migrate_set_parameter max-bandwidth 20000000B")  # HMP: a bare number is MiB
    $QMP text "$mon" "${setup[@]}" "migrate_set_parameter downtime-limit $DOWNTIME_MS" "migrate -d $to" >/dev/null
    $QMP wait-migration "$mon" >"$WORK/qinfo.txt" || { cat "$WORK/qinfo.txt"; fail "QEMU's migration failed"; }
    res[q_total_$workload]+="$(qemu_field "$WORK/qinfo.txt" 'total time') "
    res[q_down_$workload]+="$(qemu_field "$WORK/qinfo.txt" 'downtime') "
    res[q_mib_$workload]+="$(awk -v k="$(qemu_field "$WORK/qinfo.txt" 'transferred ram')" 'BEGIN { printf "%.1f", k / 1024 }') "
    cleanup_vm
    kill "$dest"; wait "$dest" 2>/dev/null || true
  done
done

med() { printf '%s\n' $1 | median; }
printf '\n%-30s %12s %12s %8s\n' "live migration (median of $RUNS)" doppel QEMU ratio
for workload in $WORKLOADS; do
  for m in total:"total time (ms)" down:"downtime (ms)" mib:"sent (MiB)"; do
    key=${m%%:*} label=${m#*:}
    d=$(med "${res[d_${key}_$workload]}") q=$(med "${res[q_${key}_$workload]}")
    printf '%-30s %12s %12s %8s\n' "$workload: $label" "$d" "$q" "$(ratio "$d" "$q")"
  done
done
