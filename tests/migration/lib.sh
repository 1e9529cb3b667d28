# Helpers for the live-migration tests (sourced): two "hosts", network namespaces joined by
# a veth pair (10.77.0.1 and 10.77.0.2), a source doppel on one and a destination waiting
# on the other. Builds on tests/lifecycle/lib.sh.
source "$(dirname "${BASH_SOURCE[0]}")/../lifecycle/lib.sh"

[[ $(id -u) == 0 ]] || skip "needs root for ip netns"
need ip
HOST_A=doppel-mA-$$
HOST_B=doppel-mB-$$
ip netns add "$HOST_A" || skip "ip netns add failed"
ip netns add "$HOST_B" || { ip netns del "$HOST_A"; skip "ip netns add failed"; }
ip link add "mva$$" netns "$HOST_A" type veth peer name "mvb$$" netns "$HOST_B"
ip -n "$HOST_A" addr add 10.77.0.1/24 dev "mva$$"
ip -n "$HOST_B" addr add 10.77.0.2/24 dev "mvb$$"
for h in "$HOST_A" "$HOST_B"; do ip -n "$h" link set lo up; done
ip -n "$HOST_A" link set "mva$$" up
ip -n "$HOST_B" link set "mvb$$" up
DEST=tcp:10.77.0.2:4444

DEST_PID=""
migration_cleanup() {
  [[ -n $DEST_PID ]] && { kill -9 "$DEST_PID" 2>/dev/null || true; wait "$DEST_PID" 2>/dev/null || true; }
  { exec 9>&-; } 2>/dev/null || true
  ip netns del "$HOST_A" 2>/dev/null || true
  ip netns del "$HOST_B" 2>/dev/null || true
  cleanup
}
trap migration_cleanup EXIT

# start_destination DOPPEL-RUN-ARGS...: on host B, a doppel waiting at $DEST; its console
# is $WORK/dest.out, its input fd 9.
start_destination() {
  mkfifo "$WORK/dest.in"
  ip netns exec "$HOST_B" "$DOPPEL" --log-level info run --arch riscv64 "$@" --migrate-from "$DEST" \
    <"$WORK/dest.in" >"$WORK/dest.out" 2>&1 &
  DEST_PID=$!
  exec 9>"$WORK/dest.in"
  local i
  for ((i = 0; i < 100; i++)); do
    grep -aq 'waiting for a migration' "$WORK/dest.out" && return 0
    kill -0 "$DEST_PID" 2>/dev/null || fail "the destination exited: $(tail -n 5 "$WORK/dest.out")"
    sleep 0.1
  done
  fail "the destination never listened: $(tail -n 5 "$WORK/dest.out")"
}

# dest_wait_for PATTERN: until the destination's console matches.
dest_wait_for() {
  local t0=$SECONDS
  while ((SECONDS - t0 < VM_TIMEOUT)); do
    grep -aqE "$1" "$WORK/dest.out" && return 0
    kill -0 "$DEST_PID" 2>/dev/null || { grep -aqE "$1" "$WORK/dest.out" && return 0; fail "the destination exited before /$1/: $(tail -n 20 "$WORK/dest.out")"; }
    sleep 0.2
  done
  fail "no /$1/ on the destination within ${VM_TIMEOUT}s: $(tail -n 20 "$WORK/dest.out")"
}

# source_exited_and_destination_finished WANT: after `ctl migrate`, the source (VM_PID)
# must exit 0 without having finished cpumark, and the destination must print WANT, the
# checksum of an uninterrupted run.
source_exited_and_destination_finished() {
  grep -aq 'CPUMARK-DONE' "$VM_OUT" && fail "cpumark finished before the migration: raise CPUMARK_N"
  local rc=0
  wait "$VM_PID" || rc=$?
  VM_PID=""
  [[ $rc == 0 ]] || fail "the source exited with $rc after migrating"
  dest_wait_for 'CPUMARK-DONE'
  local got
  got=$(checksum_in "$WORK/dest.out")
  [[ $got == "$1" ]] || fail "the destination printed '$got'; an uninterrupted run prints '$1'"
}

# destination_powers_off: poweroff in the destination's guest ends it with exit 0.
destination_powers_off() {
  printf '%s\n' 'poweroff -f' >&9
  local rc=0
  wait "$DEST_PID" || rc=$?
  DEST_PID=""
  [[ $rc == 0 ]] || fail "the destination exited with $rc"
}
