#!/usr/bin/env bash
# Host instructions per guest instruction, in user mode, counted by valgrind's callgrind: the
# same static riscv64 program under build/doppel-user with the JIT (DOPPEL_JIT=on), with the
# interpreter (DOPPEL_JIT=off) and under qemu-riscv64 (QEMU's TCG, user mode). Deterministic
# (an instruction count, not a time), so it compares builds even on a loaded host; but slow:
# cpumark 1 takes about 10 minutes per side. A script for a developer, not a test.
#
#   bench/emu/insns.sh                         # cpumark 1 (built here with the kit's flags)
#   INSNS_PROGRAM=./loop.rv INSNS_ARGS="3" bench/emu/insns.sh
#   INSNS_SIDES="jit interp" INSNS_OUT=/tmp/cg bench/emu/insns.sh   # keep callgrind.out.*
#   DOPPEL=/path/to/build/doppel bench/emu/insns.sh                 # that build's doppel-user
#
# Environment:
#   DOPPEL_USER    the user-mode runner (default: doppel-user beside $DOPPEL, else build/)
#   INSNS_PROGRAM  a static riscv64 Linux executable (default: guest/programs/cpumark.c built
#                  with riscv64-linux-gnu-gcc -static -O2 -ffp-contract=off, as guest/build.sh)
#   INSNS_ARGS     its arguments (default "1" for cpumark, none for INSNS_PROGRAM)
#   INSNS_SIDES    any of jit interp qemu (default all three)
#   INSNS_OUT      a directory to keep the callgrind output files in (for callgrind_annotate)
#
# The guest instruction count is doppel's (--report-instret; the JIT and the interpreter must
# agree). QEMU runs the same program on the same input, so its host instructions are divided
# by doppel's count too. callgrind counts every thread of the process (QEMU's RCU thread too)
# and, with --smc-check=all, sees code the JIT and TCG write.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
die() { echo "insns.sh: $*" >&2; exit 1; }
need() { command -v "$1" >/dev/null || die "$1 not found: install $2 (scripts/install-deps)"; }

if [[ -z ${DOPPEL_USER:-} ]]; then
  if [[ -n ${DOPPEL:-} ]]; then DOPPEL_USER=$(dirname "$DOPPEL")/doppel-user
  else DOPPEL_USER=$ROOT/build/doppel-user; fi
fi
read -ra sides <<<"${INSNS_SIDES:-jit interp qemu}"
((${#sides[@]} > 0)) || die "INSNS_SIDES is empty (any of: jit interp qemu)"
for s in "${sides[@]}"; do
  [[ $s == jit || $s == interp || $s == qemu ]] || die "INSNS_SIDES: unknown side '$s' (jit, interp, qemu)"
done
need valgrind valgrind
[[ " ${sides[*]} " == *" qemu "* ]] && need qemu-riscv64 qemu-user
if [[ " ${sides[*]} " == *" jit "* || " ${sides[*]} " == *" interp "* ]]; then
  [[ -x $DOPPEL_USER ]] || die "$DOPPEL_USER not found or not executable (make build, or set DOPPEL_USER)"
else
  die "INSNS_SIDES needs jit or interp: the guest instruction count comes from doppel-user"
fi
if [[ -n ${INSNS_OUT:-} ]]; then
  mkdir -p "$INSNS_OUT" || die "INSNS_OUT: cannot create directory '$INSNS_OUT'"
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/doppel-insns.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

if [[ -n ${INSNS_PROGRAM:-} ]]; then
  program=$INSNS_PROGRAM
  [[ -f $program ]] || die "INSNS_PROGRAM: '$program' not found"
  [[ -x $program ]] || die "INSNS_PROGRAM: '$program' is not executable"
  read -ra args <<<"${INSNS_ARGS:-}"
else
  need riscv64-linux-gnu-gcc gcc-riscv64-linux-gnu
  src=$ROOT/guest/programs/cpumark.c
  [[ -f $src ]] || die "$src not found"
  program=$WORK/cpumark.rv
  riscv64-linux-gnu-gcc -static -O2 -ffp-contract=off -o "$program" "$src" -lm ||
    die "riscv64-linux-gnu-gcc could not build $src (libc6-dev-riscv64-cross)"
  read -ra args <<<"${INSNS_ARGS-1}"
fi

echo "program: $program ${args[*]}"
echo "doppel-user: $DOPPEL_USER"
[[ " ${sides[*]} " == *" qemu "* ]] && echo "qemu: $(qemu-riscv64 --version | head -n1)"
echo "valgrind: $(valgrind --version)"
echo "host: $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"

declare -A ir instret status
for side in "${sides[@]}"; do
  case $side in
    jit)    jit=on; cmd=("$DOPPEL_USER" --report-instret "$program" "${args[@]}") ;;
    interp) jit=off; cmd=("$DOPPEL_USER" --report-instret "$program" "${args[@]}") ;;
    qemu)   jit=""; cmd=(qemu-riscv64 "$program" "${args[@]}") ;;
  esac
  cg=$WORK/callgrind.out.$side
  echo "running $side under callgrind: ${jit:+DOPPEL_JIT=$jit }${cmd[*]}" >&2
  rc=0
  # DOPPEL_JIT is set for valgrind itself: valgrind does not follow an exec (of env) by default.
  DOPPEL_JIT=$jit valgrind --tool=callgrind --callgrind-out-file="$cg" --smc-check=all "${cmd[@]}" \
    >"$WORK/$side.stdout" 2>"$WORK/$side.stderr" || rc=$?
  status[$side]=$rc
  # callgrind's "Collected" is the file's "totals:" (or "summary:") line.
  ir[$side]=$(awk '/^(totals|summary):/ { print $2; exit }' "$cg" 2>/dev/null || true)
  if [[ -z ${ir[$side]} ]]; then
    tail -n 20 "$WORK/$side.stderr" >&2
    die "$side: no callgrind totals in $cg (valgrind exit status $rc)"
  fi
  if [[ $side != qemu ]]; then
    instret[$side]=$(sed -nE 's/^doppel-user: instret ([0-9]+)$/\1/p' "$WORK/$side.stderr" | tail -n1)
    if [[ -z ${instret[$side]} ]]; then
      tail -n 20 "$WORK/$side.stderr" >&2
      die "$side: doppel-user printed no 'doppel-user: instret N' (exit status $rc)"
    fi
  fi
  [[ -n ${INSNS_OUT:-} ]] && cp "$cg" "$INSNS_OUT/"
  echo "$side: exit status $rc, output: $(head -n 2 "$WORK/$side.stdout" | cut -c 1-160 | tr '\n' ' ')" >&2
done

# The guest count: the interpreter's (the reference) if it ran, else the JIT's.
if [[ -n ${instret[interp]:-} ]]; then guest=${instret[interp]}; guest_from=interp
else guest=${instret[jit]}; guest_from=jit; fi
# The guest sees the host's environment, DOPPEL_JIT=on or =off included: libc's start-up
# work (and the stack's alignment) depends on its length, so the two counts may differ by a
# few dozen instructions. More than that is a bug worth a look.
if [[ -n ${instret[jit]:-} && -n ${instret[interp]:-} ]] &&
   ! awk -v a="${instret[jit]}" -v b="${instret[interp]}" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= 1000 || d <= b * 1e-5) }'; then
  echo "WARNING: guest instruction counts differ: jit ${instret[jit]}, interpreter ${instret[interp]}"
fi
first=${sides[0]}
for side in "${sides[@]}"; do
  [[ ${status[$side]} == "${status[$first]}" ]] ||
    echo "WARNING: exit status differs: $side ${status[$side]}, $first ${status[$first]}"
done

echo
echo "guest instructions: $guest (doppel-user --report-instret, $guest_from side${instret[jit]:+; jit counted ${instret[jit]}}; qemu"
echo "runs the same program on the same input, so its host instructions are divided by this count too)"
printf '%-34s %16s %14s\n' side "host insns (Ir)" "per guest insn"
for side in "${sides[@]}"; do
  case $side in
    jit)    label="doppel JIT (DOPPEL_JIT=on)" ;;
    interp) label="doppel interpreter (DOPPEL_JIT=off)" ;;
    qemu)   label="qemu-riscv64 (TCG)" ;;
  esac
  printf '%-34s %16s %14s\n' "$label" "${ir[$side]}" \
    "$(awk -v h="${ir[$side]}" -v g="$guest" 'BEGIN { if (g > 0) printf "%.2f", h / g; else print "-" }')"
done
if [[ -n ${ir[qemu]:-} ]]; then
  for side in jit interp; do
    [[ -n ${ir[$side]:-} ]] || continue
    awk -v s="$side" -v d="${ir[$side]}" -v q="${ir[qemu]}" 'BEGIN { printf "%s/qemu host instructions: %.2f\n", s, d / q }'
  done
fi
[[ -n ${INSNS_OUT:-} ]] && echo "callgrind files: $INSNS_OUT/callgrind.out.SIDE (callgrind_annotate FILE)"
exit 0
