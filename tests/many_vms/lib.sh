# Many riscv64 guests at once (issue 14 part 4), shared by tests/many_vms/many_vms.sh and
# bench/many_vms/run.sh (sourced, not run).
#
# many_run KIND COUNT OUTDIR: starts COUNT VMs of the guest kit at once (KIND doppel or
# qemu; 64 MiB, 1 hart each), each typing "cpumark 1; poweroff -f" on its console, and
# samples every VM's RSS and PSS (/proc/PID/smaps_rollup) every 0.5 s until all have
# ended. Leaves in OUTDIR: vm<i>.out (the console), vm<i>.rc (the exit code),
# vm<i>.mem ("peak_rss_kib peak_pss_kib"), and wall (seconds, first start to last end).
#
# The jail hook: with MANY_VMS_WRAP set, doppel VM i runs as
#   $MANY_VMS_WRAP i DOPPEL run ...
# so that a wrapper (the jailer, once it exists: `doppel jail --id vm$i ... --`) can put
# each VM in its own jail and cgroup. The wrapper must exec doppel (same pid), so that the
# samples are the VMM's.
#
# Environment: DOPPEL, GUEST_DIR, MANY_VMS_TIMEOUT (seconds for the whole batch, 1500).

MANY_CHECKSUM=0xfdd3294ff868d216  # cpumark 1 (guest/README.md)

many_kit() {
  local root
  root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
  if [[ -z ${GUEST_DIR:-} ]]; then
    GUEST_DIR=$("$root/guest/build.sh" --arch riscv64 --print-dir 2>/dev/null || true)
  fi
  [[ -n $GUEST_DIR && -f $GUEST_DIR/kernel ]] || return 1
}

# smaps_kib PID: "rss pss" in KiB, or nothing once the process is gone.
smaps_kib() {
  awk '/^Rss:/{r=$2} /^Pss:/{p=$2} END{if (r != "") print r, p}' "/proc/$1/smaps_rollup" 2>/dev/null
}

many_run() {
  local kind=$1 count=$2 dir=$3 i
  local limit=${MANY_VMS_TIMEOUT:-1500}
  mkdir -p "$dir"
  printf 'cpumark 1\npoweroff -f\n' >"$dir/input"
  local pids=() t0 t1
  t0=$(date +%s.%N)
  for ((i = 0; i < count; i++)); do
    if [[ $kind == doppel ]]; then
      if [[ -n ${MANY_VMS_WRAP:-} ]]; then
        $MANY_VMS_WRAP "$i" "$DOPPEL" run --arch riscv64 --memory 64M \
          <"$dir/input" >"$dir/vm$i.out" 2>&1 &
      else
        "$DOPPEL" run --arch riscv64 --memory 64M <"$dir/input" >"$dir/vm$i.out" 2>&1 &
      fi
    else
      # QEMU's UART drops what is typed before the guest's driver reads it (doppel holds
      # it): the commands go in once the guest says it is ready. -no-reboot: the guest's
      # panic=-1 reboot ends QEMU, as it ends doppel (exit 3).
      touch "$dir/running"
      { while ! grep -aq 'doppel-guest: ready' "$dir/vm$i.out" 2>/dev/null; do
          [[ -e $dir/running ]] || exit 0
          sleep 0.5
        done
        cat "$dir/input"
        while [[ -e $dir/running ]]; do sleep 1; done
      } | qemu-system-riscv64 -M virt -smp 1 -m 64 -nographic -no-reboot \
        -bios "$GUEST_DIR/fw_dynamic.bin" -kernel "$GUEST_DIR/kernel" \
        -initrd "$GUEST_DIR/initrd.cpio.gz" -append 'console=ttyS0 panic=-1' \
        >"$dir/vm$i.out" 2>&1 &
    fi
    pids+=($!)
    echo "0 0" >"$dir/vm$i.mem"
  done
  # Sample until every VM has ended (or the batch's time is up: then kill the rest).
  local left=$count deadline=$((SECONDS + limit)) m r p old_r old_p
  while ((left > 0)); do
    left=0
    for ((i = 0; i < count; i++)); do
      kill -0 "${pids[$i]}" 2>/dev/null || continue
      left=$((left + 1))
      m=$(smaps_kib "${pids[$i]}")
      [[ -n $m ]] || continue
      read -r r p <<<"$m"
      read -r old_r old_p <"$dir/vm$i.mem"
      ((r > old_r)) || r=$old_r
      ((p > old_p)) || p=$old_p
      echo "$r $p" >"$dir/vm$i.mem"
    done
    if ((SECONDS > deadline)); then
      echo "many_run: $kind: ${left} VMs still running after ${limit}s: killing them" >&2
      for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
    fi
    ((left > 0)) && sleep 0.5
  done
  t1=$(date +%s.%N)
  rm -f "$dir/running"  # every VM has ended: QEMU's console feeders end too
  for ((i = 0; i < count; i++)); do
    local rc=0
    wait "${pids[$i]}" || rc=$?
    echo "$rc" >"$dir/vm$i.rc"
  done
  echo "$t0 $t1" | awk '{printf "%.1f\n", $2 - $1}' >"$dir/wall"
}

# many_check COUNT OUTDIR: 0 if every VM printed cpumark 1's checksum and exited 0; says
# which did not.
many_check() {
  local count=$1 dir=$2 i bad=0 rc
  for ((i = 0; i < count; i++)); do
    rc=$(cat "$dir/vm$i.rc")
    if [[ $rc != 0 ]] || ! grep -aq "checksum $MANY_CHECKSUM" "$dir/vm$i.out"; then
      echo "FAIL: VM $i: exit code $rc, checksum line: $(grep -a 'cpumark:' "$dir/vm$i.out" | tr -d '\r' || echo none)"
      tail -n 8 "$dir/vm$i.out" | tr -d '\r' | sed 's/^/    /'
      bad=1
    fi
  done
  return $bad
}

# many_mem_avg COUNT OUTDIR: "avg_peak_rss_kib avg_peak_pss_kib" over the VMs.
many_mem_avg() {
  local count=$1 dir=$2
  cat "$dir"/vm*.mem | awk -v n="$count" '{r += $1; p += $2} END {printf "%d %d\n", r / n, p / n}'
}
