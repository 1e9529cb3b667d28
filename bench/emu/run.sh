#!/usr/bin/env bash
# Side-by-side benchmark of the RISC-V emulator (--engine emu, JIT and interpreter) against
# QEMU TCG: the same guest kit (kernel, initrd, OpenSBI fw_dynamic.bin), the same -m/-smp and
# kernel command line, under build/doppel and under qemu-system-riscv64 -M virt. Prints the
# raw numbers and the ratios to QEMU and to native (for times: lower is better for doppel).
#
#   bench/emu/run.sh                        # boot x5, cpumark 10 x3, native, RSS at 1 and 4 harts
#   BOOT_RUNS=9 CPUMARK_N=20 CPUMARK_RUNS=5 bench/emu/run.sh
#   HARTS="1 2 4 8" bench/emu/run.sh        # RSS beyond RAM at more hart counts
#   DOPPEL=/path/to/doppel bench/emu/run.sh # another build (e.g. to compare commits)
#
# Metrics:
#   boot      host wall time from starting the process to the guest's "doppel-guest: ready"
#             line on the console; median of BOOT_RUNS boots per side (the sides alternate).
#   cpumark   guest/programs/cpumark.c (in the kit's initrd) with CPUMARK_N iterations, started
#             from the shell after boot: the time cpumark prints (guest clock) and the host
#             wall time from sending the command until its result line appears; median of
#             CPUMARK_RUNS boots per side (the sides alternate).
#   native    the same cpumark.c compiled for the host with the kit's flags (gcc -static -O2
#             -ffp-contract=off), run CPUMARK_RUNS times with CPUMARK_N; each side's median
#             guest-clock cpumark time over the native median. (The native checksum comes
#             from the host's libm and is not compared.)
#   rss       the VMM's resident memory beyond guest RAM (/proc/PID/smaps, every mapping but
#             the anonymous one of exactly the guest RAM size), with the guest idle at the
#             shell after boot and again after cpumark, for each hart count in HARTS (doppel
#             --cpus H, QEMU -smp H). At 1 hart: the first cpumark run. At other counts: one
#             extra boot per side running cpumark CPUMARK_N once (it warms the code cache);
#             that cpumark time is shown on its own row, one sample, not in the medians.
# Not a test: nothing is asserted. Run on an otherwise idle host; CPU contention shows up in
# both sides' numbers but not always equally.
set -euo pipefail
# shellcheck source=../../tests/virtio_guest/lib.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/../../tests/virtio_guest/lib.sh"
need qemu-system-riscv64 gcc
GUEST_DIR=$(guest_dir)
[[ -x $DOPPEL ]] || skip "$DOPPEL not built (make build)"
BOOT_RUNS=${BOOT_RUNS:-5}
CPUMARK_N=${CPUMARK_N:-10}
CPUMARK_RUNS=${CPUMARK_RUNS:-3}
HARTS=${HARTS:-1 4}
[[ $BOOT_RUNS =~ ^[1-9][0-9]*$ ]] || fail "BOOT_RUNS: '$BOOT_RUNS' is not a count of runs (1 or more)"
[[ $CPUMARK_RUNS =~ ^[1-9][0-9]*$ ]] || fail "CPUMARK_RUNS: '$CPUMARK_RUNS' is not a count of runs (1 or more)"
[[ $CPUMARK_N =~ ^[1-9][0-9]*$ ]] || fail "CPUMARK_N: '$CPUMARK_N' is not an iteration count (1 or more)"
read -ra harts <<<"$HARTS"
((${#harts[@]} > 0)) || fail "HARTS is empty (hart counts, e.g. \"1 4\")"
for h in "${harts[@]}"; do
  [[ $h =~ ^[1-8]$ ]] || fail "HARTS: '$h' is not a hart count from 1 to 8"
done
MEM_MIB=${MEM_MIB:-256}
CMDLINE='console=ttyS0 panic=-1'
VM_TIMEOUT=${VM_TIMEOUT:-600}

side_cmd() {  # doppel|interp|qemu [HARTS]: the command line, as an array in CMD
  local nh=${2:-1}
  if [[ $1 == doppel || $1 == interp ]]; then
    # doppel: the JIT; interp: the interpreter (--jit off).
    CMD=("$DOPPEL" run --arch riscv64 --engine emu --cpus "$nh" --memory "${MEM_MIB}M"
         --firmware "$GUEST_DIR/fw_dynamic.bin" --kernel "$GUEST_DIR/kernel"
         --initrd "$GUEST_DIR/initrd.cpio.gz" --cmdline "$CMDLINE"
         --jit "$([[ $1 == doppel ]] && echo on || echo off)")
  else
    CMD=(qemu-system-riscv64 -M virt -smp "$nh" -m "$MEM_MIB" -nographic -no-reboot
         -bios "$GUEST_DIR/fw_dynamic.bin" -kernel "$GUEST_DIR/kernel"
         -initrd "$GUEST_DIR/initrd.cpio.gz" -append "$CMDLINE")
  fi
}

now() { echo "$EPOCHREALTIME"; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }

# start NAME SIDE [HARTS]: the VM with its console on a FIFO (fd 7); sets VM_PID, VM_OUT, T_START.
start() {
  local name=$1 side=$2
  side_cmd "$side" "${3:-1}"
  VM_OUT=$WORK/$name.out
  rm -f "$WORK/$name.in"; mkfifo "$WORK/$name.in"
  T_START=$(now)
  "${CMD[@]}" <"$WORK/$name.in" >"$VM_OUT" 2>&1 &
  VM_PID=$!
  exec 7>"$WORK/$name.in"
}

# wait_line PATTERN [POLL]: until the console shows PATTERN (grep -E); prints the time.
wait_line() {
  local deadline=$((SECONDS + VM_TIMEOUT))
  until grep -aqE "$1" "$VM_OUT"; do
    kill -0 "$VM_PID" 2>/dev/null || fail "VM exited while waiting for /$1/"
    ((SECONDS < deadline)) || fail "timed out waiting for /$1/"
    sleep "${2:-0.01}"
  done
  now
}

stop() {
  printf 'poweroff -f\n' >&7
  local i
  for ((i = 0; i < 300; i++)); do kill -0 "$VM_PID" 2>/dev/null || break; sleep 0.1; done
  kill "$VM_PID" 2>/dev/null || true
  wait "$VM_PID" 2>/dev/null || true
  exec 7>&-
  VM_PID=""
}

# rss_beyond_ram PID: KiB resident outside the guest RAM mapping.
rss_beyond_ram() {
  awk -v ram=$((MEM_MIB * 1024)) '
    /^Size:/ { size = $2 }
    /^Rss:/  { if (size == ram && !skipped) skipped = 1; else other += $2 }
    END      { print other + 0 }' "/proc/$1/smaps"
}

median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# cpumark_once SIDE: types cpumark CPUMARK_N at the running VM's shell and waits for its result;
# sets CM_WALL (host seconds from sending to the result line), CM_GUEST (the time cpumark
# printed) and CM_CHECKSUM.
cpumark_once() {
  local t0 t1 line
  t0=$(now)
  printf 'cpumark %s\n' "$CPUMARK_N" >&7
  t1=$(wait_line "cpumark: $CPUMARK_N iterations?, checksum" 0.02)
  CM_WALL=$(elapsed "$t0" "$t1")
  line=$(grep -aoE "cpumark: $CPUMARK_N iterations?, checksum 0x[0-9a-f]+, [0-9.]+ s" "$VM_OUT" | tail -n1)
  [[ -n $line ]] || fail "$1: cannot parse cpumark's result line"
  CM_GUEST=$(sed -E 's/.*, ([0-9.]+) s$/\1/' <<<"$line")
  CM_CHECKSUM=$(sed -E 's/.*checksum (0x[0-9a-f]+).*/\1/' <<<"$line")
}

declare -A boots guest_times wall_times result
sides=(doppel interp qemu)
echo "guest kit: $GUEST_DIR"
echo "doppel: $DOPPEL"
echo "qemu: $(qemu-system-riscv64 --version | head -n1)"
echo "native: $(gcc --version | head -n1)"
echo "host: $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"

# Native: the kit's cpumark.c with the kit's flags (guest/build.sh), for the host.
CPUMARK_SRC=$ROOT/guest/programs/cpumark.c
[[ -f $CPUMARK_SRC ]] || fail "$CPUMARK_SRC not found"
gcc -static -O2 -ffp-contract=off -o "$WORK/cpumark-native" "$CPUMARK_SRC" -lm ||
  fail "gcc could not build $CPUMARK_SRC for the host (static libc and libm: libc6-dev)"
native_times=""
for ((run = 1; run <= CPUMARK_RUNS; run++)); do
  line=$("$WORK/cpumark-native" "$CPUMARK_N") || fail "native cpumark $CPUMARK_N failed"
  [[ $line =~ ,\ ([0-9.]+)\ s\  ]] || fail "native cpumark: cannot parse '$line'"
  native_times+="${BASH_REMATCH[1]} "
done

for ((run = 1; run <= BOOT_RUNS; run++)); do
  for side in "${sides[@]}"; do
    start "boot-$side-$run" "$side"
    t=$(wait_line 'doppel-guest: ready')
    boots[$side]+="$(elapsed "$T_START" "$t") "
    stop
  done
done

# At 1 hart; the first run also gives the 1-hart RSS.
for ((run = 1; run <= CPUMARK_RUNS; run++)); do
  for side in "${sides[@]}"; do
    start "cpumark-$side-$run" "$side"
    wait_line 'doppel-guest: ready' >/dev/null
    sleep 2
    ((run == 1)) && result[$side.h1.rss_boot]=$(rss_beyond_ram "$VM_PID")
    cpumark_once "$side"
    wall_times[$side]+="$CM_WALL "
    guest_times[$side]+="$CM_GUEST "
    [[ -z ${result[$side.checksum]:-} || ${result[$side.checksum]} == "$CM_CHECKSUM" ]] ||
      echo "WARNING: $side: cpumark checksum $CM_CHECKSUM differs from its earlier ${result[$side.checksum]}"
    result[$side.checksum]=$CM_CHECKSUM
    if ((run == 1)); then
      sleep 2
      result[$side.h1.rss_idle]=$(rss_beyond_ram "$VM_PID")
    fi
    stop
  done
done

# Other hart counts: one boot per side, cpumark once (on one hart; the others idle) to fill
# the code cache, RSS after boot and after cpumark.
for h in "${harts[@]}"; do
  ((h == 1)) && continue
  for side in "${sides[@]}"; do
    start "harts$h-$side" "$side" "$h"
    wait_line 'doppel-guest: ready' >/dev/null
    sleep 2
    result[$side.h$h.rss_boot]=$(rss_beyond_ram "$VM_PID")
    cpumark_once "$side"
    result[$side.h$h.cpumark_guest]=$CM_GUEST
    [[ $CM_CHECKSUM == "${result[$side.checksum]}" ]] ||
      echo "WARNING: $side: cpumark checksum $CM_CHECKSUM with $h harts, ${result[$side.checksum]} with 1"
    sleep 2
    result[$side.h$h.rss_idle]=$(rss_beyond_ram "$VM_PID")
    stop
  done
done

for side in "${sides[@]}"; do
  # shellcheck disable=SC2086
  result[$side.boot]=$(median ${boots[$side]})
  # shellcheck disable=SC2086
  result[$side.cpumark_guest]=$(median ${guest_times[$side]})
  # shellcheck disable=SC2086
  result[$side.cpumark_wall]=$(median ${wall_times[$side]})
done
# shellcheck disable=SC2086
result[native.cpumark]=$(median $native_times)
for side in doppel interp; do
  [[ ${result[$side.checksum]} == "${result[qemu.checksum]}" ]] ||
    echo "WARNING: cpumark checksums differ: $side ${result[$side.checksum]}, qemu ${result[qemu.checksum]}"
done

ratio() { awk -v d="$1" -v q="$2" 'BEGIN { if (q > 0) printf "%.2f", d / q; else print "-" }'; }
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
plural() { if (($1 == 1)); then echo "1 hart"; else echo "$1 harts"; fi; }
echo
echo "boot runs (s): jit ${boots[doppel]}| interpreter ${boots[interp]}| qemu ${boots[qemu]}"
echo "cpumark runs, guest clock (s): jit ${guest_times[doppel]}| interpreter ${guest_times[interp]}| qemu ${guest_times[qemu]}| native ${native_times}"
printf '%-40s %9s %9s %9s %9s %9s\n' metric jit interp qemu jit/qemu int/qemu
row() { printf '%-40s %9s %9s %9s %9s %9s\n' "$1" "$2" "$3" "$4" "$(ratio "$2" "$4")" "$(ratio "$3" "$4")"; }
row "boot to ready, median (s)" "${result[doppel.boot]}" "${result[interp.boot]}" "${result[qemu.boot]}"
row "cpumark $CPUMARK_N, guest, median (s)" "${result[doppel.cpumark_guest]}" "${result[interp.cpumark_guest]}" "${result[qemu.cpumark_guest]}"
row "cpumark $CPUMARK_N, wall, median (s)" "${result[doppel.cpumark_wall]}" "${result[interp.cpumark_wall]}" "${result[qemu.cpumark_wall]}"
for h in "${harts[@]}"; do
  row "RSS beyond RAM, $(plural "$h"), booted (MiB)" "$(mib "${result[doppel.h$h.rss_boot]}")" "$(mib "${result[interp.h$h.rss_boot]}")" "$(mib "${result[qemu.h$h.rss_boot]}")"
  row "RSS beyond RAM, $(plural "$h"), after (MiB)" "$(mib "${result[doppel.h$h.rss_idle]}")" "$(mib "${result[interp.h$h.rss_idle]}")" "$(mib "${result[qemu.h$h.rss_idle]}")"
  ((h == 1)) ||
    row "cpumark $CPUMARK_N, $(plural "$h"), 1 run (s)" "${result[doppel.h$h.cpumark_guest]}" "${result[interp.h$h.cpumark_guest]}" "${result[qemu.h$h.cpumark_guest]}"
done
echo
printf '%-40s %9s %9s %9s %9s\n' "against native (gcc -O2, host clock)" native jit/nat int/nat qemu/nat
printf '%-40s %9s %9s %9s %9s\n' "cpumark $CPUMARK_N, guest / native, median" "${result[native.cpumark]}" \
  "$(ratio "${result[doppel.cpumark_guest]}" "${result[native.cpumark]}")" \
  "$(ratio "${result[interp.cpumark_guest]}" "${result[native.cpumark]}")" \
  "$(ratio "${result[qemu.cpumark_guest]}" "${result[native.cpumark]}")"
echo "targets: issue 3 (interpreter) boot and cpumark <= 3x QEMU, RSS beyond RAM <= 20 MiB; issue 9 (JIT) cpumark <= 0.5x, boot <= 0.7x"
