#!/bin/bash
# doppel jail (issue 14 part 1): the jail is built and the riscv64 guest kit boots inside it to
# its shell; from outside, through /proc: the VMM's uid/gid, its namespaces differ from ours,
# its root is the chroot and holds only what it should, CapEff 0, NoNewPrivs 1, its cgroup;
# a path outside the jail cannot be opened by the VMM (an API snapshot into a host directory
# anyone may write fails, and nothing appears there); everything is gone after the VM; error
# cases (bad uid, missing kernel, existing id) leave nothing behind. Usage: jail_test.sh DOPPEL
set -u
DOPPEL=${1:-$(cd "$(dirname "$0")/../.." && pwd)/build/doppel}
source "$(dirname "$0")/../virtio_guest/lib.sh"
source "$(dirname "$0")/../limits/cglib.sh"
trap 'vkill_all; cleanup' EXIT
[[ -x $DOPPEL ]] || skip "$DOPPEL not built"
need curl
guest_dir >/dev/null
cg_detect
unshare --mount --pid --ipc --uts --fork true 2>/dev/null || skip "cannot make mount/PID/IPC/UTS namespaces here"

BASE=$WORK/jailer
ID=jt-$$
UID_=65534 GID_=65534
JDIR=$BASE/doppel/$ID
chmod 755 "$WORK"
truncate -s 8M "$WORK/data.img"; chown $UID_:$GID_ "$WORK/data.img"
truncate -s 4M "$WORK/ro.img"

nothing_left() { # ID WHAT
  [[ ! -e $BASE/doppel/$1 ]] || fail "$2: $BASE/doppel/$1 left behind"
  [[ ! -e $(cg_dir memory /doppel/$1) ]] || fail "$2: cgroup /doppel/$1 left behind"
  grep -q " $BASE/" /proc/self/mountinfo && fail "$2: a mount under $BASE left behind"
  return 0
}

# --- errors leave nothing behind -------------------------------------------------------
expect_error() { # WHAT PATTERN ARGS...
  local what=$1 pattern=$2; shift 2
  local rc=0
  "$DOPPEL" jail "$@" >"$WORK/err.out" 2>&1 </dev/null || rc=$?
  [[ $rc != 0 ]] || fail "$what: exit code 0"
  grep -aqE -- "$pattern" "$WORK/err.out" || { cat "$WORK/err.out" >&2; fail "$what: no /$pattern/ in the error"; }
  echo "ok: $what: exit $rc: $(head -1 "$WORK/err.out")"
}
expect_error "uid 0" "jail: --uid 0: must be an unprivileged id" \
  --id e1 --uid 0 --gid $GID_ --chroot-base-dir "$BASE" -- --memory 64M
nothing_left e1 "uid 0"
expect_error "uid not a number" "--uid" --id e2 --uid nobody --gid $GID_ --chroot-base-dir "$BASE" -- --memory 64M
nothing_left e2 "uid not a number"
expect_error "missing kernel" "jail: the arguments after -- are not a valid VM" \
  --id e3 --uid $UID_ --gid $GID_ --chroot-base-dir "$BASE" -- --kernel "$WORK/no-such-kernel"
grep -aq "no-such-kernel" "$WORK/err.out" || fail "missing kernel: the error does not name the file"
nothing_left e3 "missing kernel"
expect_error "bad id" "jail: --id" --id 'a/b' --uid $UID_ --gid $GID_ --chroot-base-dir "$BASE" -- --memory 64M
# A step inside the jail that fails (the netns is not a namespace) is reported, then
# everything made for it removed.
touch "$WORK/not-a-netns"
expect_error "bad netns" "jail: join the network namespace $WORK/not-a-netns: Invalid argument" \
  --id e4 --uid $UID_ --gid $GID_ --chroot-base-dir "$BASE" --netns "$WORK/not-a-netns" -- --memory 64M
nothing_left e4 "bad netns"

# --- the jailed VM ----------------------------------------------------------------------
# In a network namespace of its own, where `ip netns` can make one.
NETNS=doppel-jail-$$ netns_args=()
if command -v ip >/dev/null && ip netns add "$NETNS" 2>/dev/null; then
  trap 'vkill_all; ip netns delete "$NETNS" 2>/dev/null; cleanup' EXIT
  netns_args=(--netns "/var/run/netns/$NETNS")
else
  echo "SKIP (part): cannot make a network namespace here; the jail joins none"
fi
vstart jail "$DOPPEL" jail --id "$ID" --uid $UID_ --gid $GID_ --chroot-base-dir "$BASE" --pids-limit 128 "${netns_args[@]}" \
  -- --arch riscv64 --memory 128M --disk "$WORK/data.img" --disk "$WORK/ro.img,ro" --api-sock "$WORK/api.sock"
vwait jail 'doppel-guest: ready'
echo "ok: the guest booted to its shell in the jail"
expect_error "existing id" "jail: $JDIR: already exists" --id "$ID" --uid $UID_ --gid $GID_ --chroot-base-dir "$BASE" -- --memory 64M
vmm=$(cat "$JDIR/doppel.pid") || fail "no pid file $JDIR/doppel.pid"
status() { awk -v k="$1:" '$1 == k {print $2}' "/proc/$vmm/status"; }
[[ $(status Uid) == "$UID_" && $(status Gid) == "$GID_" ]] || fail "uid/gid $(status Uid)/$(status Gid)"
grep -E "^(Uid|Gid):" "/proc/$vmm/status" | awk -v u=$UID_ '{for (i = 2; i <= 5; i++) if ($i != u) exit 1}' ||
  fail "not every uid/gid (real, effective, saved, fs) is $UID_: $(grep -E '^(Uid|Gid):' /proc/$vmm/status)"
[[ $(status CapEff) == 0000000000000000 && $(status CapPrm) == 0000000000000000 &&
   $(status CapBnd) == 0000000000000000 ]] || fail "capabilities left: $(grep Cap /proc/$vmm/status)"
[[ $(status NoNewPrivs) == 1 ]] || fail "NoNewPrivs $(status NoNewPrivs)"
echo "ok: uid/gid $UID_/$GID_, CapEff/CapPrm/CapBnd 0, NoNewPrivs 1"
for ns in mnt pid ipc uts; do
  [[ $(readlink "/proc/$vmm/ns/$ns") != "$(readlink /proc/self/ns/$ns)" ]] || fail "the VMM shares our $ns namespace"
done
echo "ok: mnt, pid, ipc, uts namespaces differ from the host's"
if (( ${#netns_args[@]} )); then
  [[ $(stat -L -c %i "/proc/$vmm/ns/net") == $(stat -L -c %i "/var/run/netns/$NETNS") ]] ||
    fail "the VMM is not in the network namespace $NETNS"
  echo "ok: the VMM is in the network namespace $NETNS"
fi
[[ $(stat -L -c %d:%i "/proc/$vmm/root") == $(stat -c %d:%i "$JDIR/root") ]] || fail "the VMM's root is not $JDIR/root"
[[ $(awk '$1 == "NSpid:" {print $NF}' "/proc/$vmm/status") == 1 ]] || fail "the VMM is not its PID namespace's init"
grep -q "^[0-9]*:memory:/doppel/$ID\$\|^0::/doppel/$ID\$" "/proc/$vmm/cgroup" || fail "cgroup: $(cat /proc/$vmm/cgroup)"
[[ $(cat "$(cg_dir pids /doppel/$ID)/pids.max") == 128 ]] || fail "pids.max not 128"
echo "ok: root is $JDIR/root, the VMM is PID 1 of its namespace, cgroup /doppel/$ID (pids.max 128)"
# Only what the VM needs: doppel, its loader and libraries, the VM file, the kernel, initrd,
# firmware, the two disks, /dev/urandom, the API socket.
extra=$(cd "/proc/$vmm/root" && find . -mindepth 1 | sed 's|^\.||' |
        grep -vE '^/(doppel|vm\.json|boot|boot/(kernel|initrd|firmware)|disks|disks/0-data\.img|disks/1-ro\.img|dev|dev/urandom|run|run/api\.sock|lib64|lib64/ld-linux-x86-64\.so\.2|usr|usr/lib|usr/lib/x86_64-linux-gnu|usr/lib/x86_64-linux-gnu/[^/]+\.so[.0-9]*|usr/lib/x86_64-linux-gnu/[^/]+-[0-9.]+\.so)$')
[[ -z $extra ]] || fail "unexpected in the jail: $extra"
[[ $(stat -L -c %t:%T "/proc/$vmm/root/dev/urandom") == 1:9 ]] || fail "/dev/urandom is not 1:9"
grep -q " /disks/1-ro.img ro[, ]" "/proc/$vmm/mountinfo" || fail "the read-only disk is not mounted read-only"
grep -q " /disks/0-data.img rw[, ]" "/proc/$vmm/mountinfo" || fail "the writable disk is not writable"
echo "ok: the jail holds only doppel and its libraries, the VM file, kernel/initrd/firmware, the disks (ro one read-only), /dev/urandom, the API socket"
# The guest writes its disk through the jail.
vsend jail 'echo jailed-data > /dev/vda && sync && echo wrote-$((2+3))'
vwait jail 'wrote-5' 60
head -c 11 "$WORK/data.img" | grep -q jailed-data || fail "the guest's write did not reach $WORK/data.img"
echo "ok: the guest wrote its disk through the jail"

# A path outside the jail: a snapshot into a host directory anyone may write.
mkdir -m 1777 "$WORK/outside"
api() { curl -s --unix-socket "$WORK/api.sock" -w ' %{http_code}' -X "$1" "http://localhost$2" ${3:+-d "$3"}; }
r=$(api PATCH /vm '{"state": "Paused"}'); [[ $r == *204 ]] || fail "pause: $r"
r=$(api PUT /snapshot/create "{\"snapshot_path\": \"$WORK/outside/state\", \"mem_file_path\": \"$WORK/outside/mem\"}")
[[ $r == *400 && $r == *"No such file or directory"* ]] || fail "a snapshot outside the jail: $r"
[[ -z $(ls -A "$WORK/outside") ]] || fail "the VMM wrote outside its jail: $(ls "$WORK/outside")"
echo "ok: the VMM cannot write $WORK/outside: $r"
r=$(api PATCH /vm '{"state": "Resumed"}'); [[ $r == *204 ]] || fail "resume: $r"

vsend jail 'poweroff -f'
vexit jail; [[ $VRC == 0 ]] || fail "the jailed VM's exit code $VRC, expected 0"
nothing_left "$ID" "after the VM"
[[ ! -e $WORK/api.sock ]] || fail "the API socket's link is left"
echo "ok: exit 0; the jail directory, its cgroup and the API socket link are gone"
echo PASS
