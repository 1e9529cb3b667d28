#!/usr/bin/env bash
# The VM lifecycle side by side with QEMU, on the riscv64 guest kit (256 MiB, 1 hart, the
# guest idle at its shell; CPUS=4 BUSY=1: 4 harts, each spinning in a shell loop): doppel on its emulator, qemu-system-riscv64 -M virt on TCG.
# Prints the raw numbers and the doppel/QEMU ratios (lower is better for doppel).
#
#   bench/lifecycle/run.sh                 # RUNS=5 of each measurement
#   RUNS=9 CLONES=4 bench/lifecycle/run.sh
#   CPUS=4 BUSY=1 bench/lifecycle/run.sh   # pause/resume with every vCPU spinning
#
# Metrics:
#   pause, resume   from sending the request on an open socket to its reply (qmp.py):
#                   doppel's PATCH /vm, QEMU's HMP `stop` / `cont`; and doppel's own time to
#                   park every vCPU (and quiesce devices, stop the clock) and to let them go,
#                   from GET /metrics.
#   snapshot        the guest paused; doppel: PUT /snapshot/create Full (and Diff after 1 s
#                   of running), request to reply; QEMU: `migrate "exec:cat > FILE"` until
#                   `info migrate` says completed (polled every 1 ms on the same socket).
#   restore         from starting the process to (a) the guest's vCPUs running again
#                   (doppel logs it; QEMU: not observable, not reported) and (b) the first
#                   guest output after the restore: an `echo` written to the console every
#                   5 ms until its output appears (a UART drops what comes before the guest
#                   runs), so (b) is good to 5 ms. doppel: `doppel restore DIR`; QEMU:
#                   `-incoming "exec:cat FILE"` of a state migrated from the running guest
#                   (so it runs when loaded; no client in the measured path).
#   restore (API)   doppel started with only --api-sock, then PUT /snapshot/load with
#                   resume_vm, as Firecracker measures its snapshot load (its target: 5 ms):
#                   request to reply, the VMM's own time to vCPUs running, and request to
#                   the first guest output.
#   clones          the summed PSS (/proc/PID/smaps_rollup) of CLONES VMs restored from one
#                   snapshot against CLONES fresh boots, each idle at its shell.
# Not a test: nothing is asserted. Run on an otherwise idle host.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../../tests/virtio_guest/lib.sh"
need qemu-system-riscv64 python3
GUEST_DIR=$(guest_dir)
[[ -x $DOPPEL ]] || skip "$DOPPEL not built (make build)"
RUNS=${RUNS:-5}
CPUS=${CPUS:-1}
# BUSY=1: every vCPU spins in a guest shell loop while pause and resume are measured.
BUSY=${BUSY:-0}
CLONES=${CLONES:-4}
MEM_MIB=256
CMDLINE='console=ttyS0 panic=-1'
VM_TIMEOUT=${VM_TIMEOUT:-600}
QMP="python3 $(dirname "${BASH_SOURCE[0]}")/qmp.py"

now() { echo "$EPOCHREALTIME"; }
ms() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b - a) * 1000 }'; }
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2fx", a / b; else print "-" }'; }
# wait_output PATTERN FILE PID [LINE]: until FILE matches (60 s at most, while PID lives),
# writing LINE to fd 8 every 5 ms: a console drops what arrives before the guest runs.
wait_output() {
  local t0=$SECONDS
  while ! grep -aq "$1" "$2"; do
    [[ -n ${4:-} ]] && printf '%s\n' "$4" >&8
    sleep 0.005
    kill -0 "$3" 2>/dev/null || fail "the VM died: $(tail "$2")"
    (( SECONDS - t0 < 60 )) || fail "no /$1/ in $2 after 60 s: $(tail "$2")"
  done
}
pss_kib() { awk '/^Pss:/ { print $2 }' "/proc/$1/smaps_rollup"; }

doppel_boot=("$DOPPEL" run --arch riscv64 --cpus "$CPUS" --memory "${MEM_MIB}M"
             --firmware "$GUEST_DIR/fw_dynamic.bin" --kernel "$GUEST_DIR/kernel"
             --initrd "$GUEST_DIR/initrd.cpio.gz" --cmdline "$CMDLINE")
qemu_boot=(qemu-system-riscv64 -M virt -smp "$CPUS" -m "$MEM_MIB" -nographic -no-reboot
           -bios "$GUEST_DIR/fw_dynamic.bin" -kernel "$GUEST_DIR/kernel"
           -initrd "$GUEST_DIR/initrd.cpio.gz" -append "$CMDLINE")

# ---- doppel ------------------------------------------------------------------------------
dsock=$WORK/d.sock
api() { $QMP http "$dsock" "$@"; }
vm_start doppel "${doppel_boot[*]@Q} --api-sock $dsock"
vm_wait_ready
spin_all() { ((BUSY)) && for ((c = 0; c < CPUS; c++)); do vm_send 'while :; do :; done &'; done; true; }
spin_all
for ((i = 0; i < 100; i++)); do "$DOPPEL" ctl --sock "$dsock" info >/dev/null 2>&1 && break; sleep 0.1; done
declare -a d_load_rt d_load_out d_load_vmm d_restore_vmm d_pause d_resume d_pause_rt d_resume_rt d_full d_diff d_restore_run d_restore_out q_stop q_cont q_mig q_restore_out
for ((r = 0; r < RUNS; r++)); do
  d_pause_rt+=("$(api PATCH /vm '{"state": "Paused"}')")
  m=$("$DOPPEL" ctl --sock "$dsock" metrics)
  d_pause+=("$(grep -o '"pause_ms": *[0-9.e+-]*' <<<"$m" | awk -F: '{ printf "%.3f", $2 }')")
  rm -rf "$WORK/dsnap"; mkdir -p "$WORK/dsnap"
  d_full+=("$(api PUT /snapshot/create "{\"snapshot_type\": \"Full\", \"snapshot_path\": \"$WORK/dsnap/state\", \"mem_file_path\": \"$WORK/dsnap/memory\"}")")
  d_resume_rt+=("$(api PATCH /vm '{"state": "Resumed"}')")
  m=$("$DOPPEL" ctl --sock "$dsock" metrics)
  d_resume+=("$(grep -o '"resume_ms": *[0-9.e+-]*' <<<"$m" | awk -F: '{ printf "%.3f", $2 }')")
  sleep 1
  api PATCH /vm '{"state": "Paused"}' >/dev/null
  rm -rf "$WORK/ddiff"; mkdir -p "$WORK/ddiff"
  d_diff+=("$(api PUT /snapshot/create "{\"snapshot_type\": \"Diff\", \"snapshot_path\": \"$WORK/ddiff/state\", \"mem_file_path\": \"$WORK/ddiff/memory.diff\"}")")
  api PATCH /vm '{"state": "Resumed"}' >/dev/null
done
"$DOPPEL" ctl --sock "$dsock" pause >/dev/null
rm -rf "$WORK/dsnap"; "$DOPPEL" ctl --sock "$dsock" snapshot "$WORK/dsnap" >/dev/null
cleanup_vm
diff_kib=$(du -k "$WORK/ddiff/memory.diff" | cut -f1)
full_kib=$(du -k "$WORK/dsnap/memory" | cut -f1)

for ((r = 0; r < RUNS; r++)); do
  sync; echo 1 >/proc/sys/vm/drop_caches 2>/dev/null || true  # cold page cache where allowed
  in=$WORK/r$r.in; out=$WORK/r$r.out; rm -f "$in"; mkfifo "$in"
  t0=$(now)
  "$DOPPEL" --log-level info restore "$WORK/dsnap" <"$in" >"$out" 2>&1 &
  pid=$!
  exec 8>"$in"
  wait_output "^RESTORED-$r" "$out" $pid "echo RESTORED-$r"
  t1=$(now)
  d_restore_out+=("$(ms "$t0" "$t1")")
  wall=$(grep -ao 'wall clock [0-9.]*' "$out" | awk '{ print $3 }')
  d_restore_run+=("$(ms "$t0" "$wall")")
  d_restore_vmm+=("$(grep -ao 'vCPUs started [0-9.]* ms' "$out" | awk '{ print $3 }')")
  kill $pid; wait $pid 2>/dev/null || true; exec 8>&-

  # The same through the API of a doppel already started with only --api-sock, as
  # Firecracker measures its snapshot load: PUT /snapshot/load request to reply.
  sync; echo 1 >/proc/sys/vm/drop_caches 2>/dev/null || true
  in=$WORK/a$r.in; out=$WORK/a$r.out; lsock=$WORK/l$r.sock; rm -f "$in" "$lsock"; mkfifo "$in"
  "$DOPPEL" --log-level info --api-sock "$lsock" <"$in" >"$out" 2>&1 &
  pid=$!
  exec 8>"$in"
  for ((i = 0; i < 100; i++)); do [[ -S $lsock ]] && break; sleep 0.05; done
  d_load_rt+=("$(QMP_SENT_AT=$WORK/sent_at $QMP http "$lsock" PUT /snapshot/load "{\"snapshot_path\": \"$WORK/dsnap/state\", \"mem_backend\": {\"backend_type\": \"File\", \"backend_path\": \"$WORK/dsnap/memory\"}, \"resume_vm\": true}")")
  wait_output "^LOADED-$r" "$out" $pid "echo LOADED-$r"
  t1=$(now); t0=$(cat "$WORK/sent_at")
  d_load_out+=("$(ms "$t0" "$t1")")
  d_load_vmm+=("$(grep -ao 'vCPUs started [0-9.]* ms' "$out" | awk '{ print $3 }')")
  kill $pid; wait $pid 2>/dev/null || true; exec 8>&-
done

# ---- QEMU --------------------------------------------------------------------------------
qmon=$WORK/q.mon
vm_start qemu "${qemu_boot[*]@Q} -monitor unix:$qmon,server,nowait"
vm_wait_ready
spin_all
for ((r = 0; r < RUNS; r++)); do
  q_stop+=("$($QMP hmp "$qmon" stop)")
  rm -f "$WORK/qstate"
  q_mig+=("$($QMP migrate "$qmon" "$WORK/qstate")")
  q_cont+=("$($QMP hmp "$qmon" cont)")
  sleep 1
done
# The state to restore from is migrated from the running guest, so that the destination
# runs by itself when it has loaded it (no client in the measured path).
rm -f "$WORK/qstate"; $QMP migrate "$qmon" "$WORK/qstate" >/dev/null
cleanup_vm
qstate_kib=$(du -k "$WORK/qstate" | cut -f1)
for ((r = 0; r < RUNS; r++)); do
  sync; echo 1 >/proc/sys/vm/drop_caches 2>/dev/null || true
  in=$WORK/qr$r.in; out=$WORK/qr$r.out; rm -f "$in"; mkfifo "$in"
  t0=$(now)
  "${qemu_boot[@]}" -incoming "exec:cat $WORK/qstate" <"$in" >"$out" 2>&1 &
  pid=$!
  exec 8>"$in"
  wait_output "^RESTORED-$r" "$out" $pid "echo RESTORED-$r"
  t1=$(now)
  q_restore_out+=("$(ms "$t0" "$t1")")
  kill $pid; wait $pid 2>/dev/null || true; exec 8>&-
done

# ---- clones ------------------------------------------------------------------------------
clone_pss=0; boot_pss=0
pids=()
for ((i = 0; i < CLONES; i++)); do
  "$DOPPEL" restore "$WORK/dsnap" </dev/null >"$WORK/c$i.out" 2>&1 & pids+=($!)
done
sleep 5
for p in "${pids[@]}"; do clone_pss=$((clone_pss + $(pss_kib "$p"))); done
kill "${pids[@]}"; wait "${pids[@]}" 2>/dev/null || true
pids=()
for ((i = 0; i < CLONES; i++)); do
  "${doppel_boot[@]}" </dev/null >"$WORK/b$i.out" 2>&1 & pids+=($!)
done
for ((i = 0; i < CLONES; i++)); do
  for ((t = 0; t < VM_TIMEOUT * 10; t++)); do grep -aq 'doppel-guest: ready' "$WORK/b$i.out" && break; sleep 0.1; done
done
for p in "${pids[@]}"; do boot_pss=$((boot_pss + $(pss_kib "$p"))); done
kill "${pids[@]}"; wait "${pids[@]}" 2>/dev/null || true

med() { printf '%s\n' "$@" | median; }
printf '\n%-34s %12s %12s %8s\n' "metric (median of $RUNS, ms, $CPUS vCPU)" doppel QEMU ratio
row() { printf '%-34s %12s %12s %8s\n' "$1" "$2" "$3" "$(ratio "$2" "$3")"; }
row "pause (request to reply)" "$(med "${d_pause_rt[@]}")" "$(med "${q_stop[@]}")"
row "pause (in the VMM)" "$(med "${d_pause[@]}")" "-"
row "resume (request to reply)" "$(med "${d_resume_rt[@]}")" "$(med "${q_cont[@]}")"
row "resume (in the VMM)" "$(med "${d_resume[@]}")" "-"
row "snapshot create, full" "$(med "${d_full[@]}")" "$(med "${q_mig[@]}")"
row "snapshot create, diff (1 s run)" "$(med "${d_diff[@]}")" "-"
row "restore: command to vCPUs running" "$(med "${d_restore_run[@]}")" "-"
row "restore: in the VMM, to vCPUs running" "$(med "${d_restore_vmm[@]}")" "-"
row "restore: command to guest output" "$(med "${d_restore_out[@]}")" "$(med "${q_restore_out[@]}")"
row "restore via API: load request to reply" "$(med "${d_load_rt[@]}")" "-"
row "restore via API: load to vCPUs running" "$(med "${d_load_vmm[@]}")" "-"
row "restore via API: load to guest output" "$(med "${d_load_out[@]}")" "-"
printf '%-34s %12s %12s\n' "snapshot on disk (KiB)" "$full_kib" "$qstate_kib"
printf '%-34s %12s\n' "diff snapshot on disk (KiB)" "$diff_kib"
printf '%-34s %12s %12s %8s\n' "PSS of $CLONES VMs (MiB)" "clones $((clone_pss / 1024))" "boots $((boot_pss / 1024))" "$(ratio "$clone_pss" "$boot_pss")"
