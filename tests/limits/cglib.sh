# Helpers for the cgroup tests (sourced after tests/virtio_guest/lib.sh): several named VMs at
# once, and the per-VM cgroup's files on cgroup v1 (one hierarchy per controller) or v2.

declare -A VPID VFD
CG_MODE=""

# cg_detect: sets CG_MODE to v1 or v2, or skips when the cgroup tree cannot be written.
cg_detect() {
  [[ $EUID == 0 ]] || skip "cgroups need root"
  if [[ $(stat -f -c %T /sys/fs/cgroup) == cgroup2fs ]]; then CG_MODE=v2; else CG_MODE=v1; fi
  local probe
  if [[ $CG_MODE == v2 ]]; then probe=/sys/fs/cgroup/doppel-probe-$$; else probe=/sys/fs/cgroup/memory/doppel-probe-$$; fi
  mkdir "$probe" 2>/dev/null || skip "cannot make a cgroup ($probe): read-only cgroup tree?"
  rmdir "$probe"
  echo "cgroup $CG_MODE"
}

# cg_dir CONTROLLER CGROUP-PATH: the directory of that cgroup for the controller's files.
cg_dir() {
  if [[ $CG_MODE == v2 ]]; then echo "/sys/fs/cgroup$2"; else echo "/sys/fs/cgroup/$1$2"; fi
}

# cg_usage_usec CGROUP-PATH: the CPU time used by the cgroup, from its own accounting.
cg_usage_usec() {
  if [[ $CG_MODE == v2 ]]; then awk '$1 == "usage_usec" {print $2}' "$(cg_dir cpu "$1")/cpu.stat"
  else echo $(( $(cat "$(cg_dir cpuacct "$1")/cpuacct.usage") / 1000 )); fi
}

# vstart NAME ARGS...: starts doppel ARGS with its console on a FIFO; output in $WORK/NAME.out.
vstart() {
  local name=$1; shift
  rm -f "$WORK/$name.in"; mkfifo "$WORK/$name.in"
  "$@" <"$WORK/$name.in" >"$WORK/$name.out" 2>&1 &
  VPID[$name]=$!
  local fd; exec {fd}>"$WORK/$name.in"
  VFD[$name]=$fd
}

vsend() { printf '%s\n' "$2" >&"${VFD[$1]}"; }

# vwait NAME PATTERN [SECONDS]
vwait() {
  local t0=$SECONDS
  while (( SECONDS - t0 < ${3:-$VM_TIMEOUT} )); do
    grep -aqE "$2" "$WORK/$1.out" && return 0
    kill -0 "${VPID[$1]}" 2>/dev/null || { tail -n 20 "$WORK/$1.out" >&2; fail "$1 exited while waiting for /$2/"; }
    sleep 0.2
  done
  tail -n 20 "$WORK/$1.out" >&2
  fail "$1: timed out waiting for /$2/"
}

# vexit NAME: waits for the VM process; its exit code in VRC (not a subshell: only this
# shell can wait for it).
vexit() {
  local t0=$SECONDS
  VRC=0
  while kill -0 "${VPID[$1]}" 2>/dev/null && (( SECONDS - t0 < VM_TIMEOUT )); do sleep 0.2; done
  kill -0 "${VPID[$1]}" 2>/dev/null && fail "$1 did not exit"
  wait "${VPID[$1]}" || VRC=$?
  unset "VPID[$1]"
}

vkill_all() {
  local n
  for n in "${!VPID[@]}"; do kill "${VPID[$n]}" 2>/dev/null; wait "${VPID[$n]}" 2>/dev/null; done
  for n in "${!VFD[@]}"; do eval "exec ${VFD[$n]}>&-" 2>/dev/null; done
  VPID=(); VFD=()
}
