#!/usr/bin/env bash
# doppel oci against runc, side by side on one bundle: N x (create, start, wait for the
# process to exit, delete) of a container running /bin/true (busybox-static) with its own
# pid, network, IPC, UTS and mount namespaces, the default spec's mounts and a cgroup.
# The driver is a subreaper (as containerd's shim is) so it waits for the container's
# process directly. Prints per-runtime totals, per-step means, the peak RSS of the runtime
# process for each step (GNU time's %M, in one extra untimed iteration), and doppel/runc
# ratios (lower is better).
# Then podman end to end with each runtime (`podman --runtime R run --rm --rootfs DIR
# /bin/true`, PODMAN_N times, podman's state in a temporary directory), and the peak RSS of
# each runtime command podman and conmon made in PODMAN_RSS_N extra runs through a GNU time
# wrapper (untimed). PODMAN_N=0 skips this part.
#
#   bench/oci/run.sh                  # N=100
#   N=20 bench/oci/run.sh
#   PODMAN_N=20 PODMAN_RSS_N=3 bench/oci/run.sh
#   DOPPEL=build/doppel-runc RUNC=/usr/sbin/runc bench/oci/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
source tests/oci/lib.sh
N=${N:-100}
doppel=${DOPPEL:-$PWD/build/doppel-runc}
runc=${RUNC:-$(command -v runc || echo /usr/sbin/runc)}
[ "$(id -u)" = 0 ] || { echo "bench/oci: needs root" >&2; exit 1; }
[ -x "$runc" ] || { echo "bench/oci: runc not found (scripts/install-deps)" >&2; exit 1; }
[ -x "$doppel" ] || { echo "bench/oci: $doppel not built" >&2; exit 1; }

PODMAN_N=${PODMAN_N:-$N}
PODMAN_RSS_N=${PODMAN_RSS_N:-3}

work=$(mktemp -d /tmp/doppel-oci-bench.XXXXXX)
parent=doppel-oci-bench-$(basename "$work" | cut -d. -f2)
podman=(podman --root "$work/podman/root" --runroot "$work/podman/runroot" --tmpdir "$work/podman/tmp"
        --storage-driver vfs --cgroup-manager cgroupfs --events-backend file)
cleanup() {
  # A step that failed leaves its container: delete it, with its cgroup (/bench-*).
  local r id
  for r in "$work"/root-*; do
    [ -d "$r" ] || continue
    for id in $(ls "$r"); do "$doppel" --root "$r" delete --force "$id" >/dev/null 2>&1 ||
      "$runc" --root "$r" delete --force "$id" >/dev/null 2>&1; done
  done
  if [ -d "$work/podman" ]; then
    local ids
    ids=$("${podman[@]}" ps -aq 2>/dev/null)
    [ -n "$ids" ] && "${podman[@]}" rm -f -t 0 $ids >/dev/null 2>&1
    remove_cgroup_parent "$parent"
  fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 143' TERM INT HUP
mkdir -p "$work/bundle/rootfs/bin"
cp /bin/busybox "$work/bundle/rootfs/bin/busybox"
ln -s busybox "$work/bundle/rootfs/bin/true"
(cd "$work/bundle" && "$doppel" spec && python3 - <<'PY'
import json
c = json.load(open("config.json"))
c["process"]["terminal"] = False
c["process"]["args"] = ["/bin/true"]
json.dump(c, open("config.json", "w"))
PY
)

python3 - "$N" "$work" "$doppel" "$runc" <<'PY'
import ctypes, os, subprocess, sys, time
n, work, runtimes = int(sys.argv[1]), sys.argv[2], {"doppel": sys.argv[3], "runc": sys.argv[4]}
libc = ctypes.CDLL(None, use_errno=True)
PR_SET_CHILD_SUBREAPER = 36
libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
bundle = os.path.join(work, "bundle")

rss_file = os.path.join(work, "rss")

def step(args, measure_rss):
    # Timed runs start the runtime directly; one run of each step goes through GNU time
    # for its ru_maxrss (a child forked from this Python would carry Python's RSS into
    # the measurement, and time's own start-up would pad the timings).
    prefix = ["/usr/bin/time", "-f", "%M", "-o", rss_file] if measure_rss else []
    t = time.perf_counter()
    p = subprocess.Popen(prefix + args, cwd=bundle)
    _, status, _ = os.wait4(p.pid, 0)
    dt = time.perf_counter() - t
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{args}: exit {os.waitstatus_to_exitcode(status)}")
    return dt, int(open(rss_file).read().split()[-1]) if measure_rss else 0

results = {}
for name, rt in runtimes.items():
    root = os.path.join(work, "root-" + name)
    times = {"create": 0.0, "start": 0.0, "wait": 0.0, "delete": 0.0}
    rss = {"create": 0, "start": 0, "delete": 0}
    t0 = time.perf_counter()
    for i in range(n + 1):
        # Iteration 0 measures memory (through GNU time) and is not timed.
        rss_run = i == 0
        if i == 1:
            t0 = time.perf_counter()
        cid = f"bench-{name}-{i}"
        pidfile = os.path.join(work, "pid")
        acc = {}
        for what, args in (("create", [rt, "--root", root, "create", "--pid-file", pidfile, cid]),
                           ("start", [rt, "--root", root, "start", cid]),
                           ("delete", [rt, "--root", root, "delete", cid])):
            if what == "delete":
                t = time.perf_counter()
                os.waitpid(pid, 0)  # reparented to us, the subreaper
                acc["wait"] = time.perf_counter() - t
            dt, r = step(args, rss_run)
            acc[what] = dt
            if rss_run:
                rss[what] = r
            if what == "create":
                pid = int(open(pidfile).read())
        if not rss_run:
            for k, v in acc.items():
                times[k] += v
    total = time.perf_counter() - t0
    results[name] = (total, times, rss)
    print(f"{name:7s} {n} x create/start/wait/delete: {total:7.3f} s  ({total / n * 1000:6.1f} ms each)")
    print("        mean ms: " + "  ".join(f"{k} {v / n * 1000:6.2f}" for k, v in times.items()))
    print("        peak RSS KiB: " + "  ".join(f"{k} {v}" for k, v in rss.items()))
d, r = results["doppel"], results["runc"]
print(f"ratio doppel/runc: total {d[0] / r[0]:.3f}  " +
      "  ".join(f"{k} {d[1][k] / r[1][k]:.3f}" for k in d[1] if r[1][k] > 0) +
      f"  peak RSS (create) {d[2]['create'] / r[2]['create']:.3f}")
PY

[ "$PODMAN_N" -gt 0 ] || exit 0
command -v podman >/dev/null || { echo "podman: not installed (scripts/install-deps); skipped"; exit 0; }
export CONTAINERS_CONF=$work/podman/containers.conf
mkdir -p "$work/podman/tmp"
printf '[engine]\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n' > "$CONTAINERS_CONF"
rootfs=$work/bundle/rootfs
echo
echo "podman run --rm --rootfs DIR /bin/true, $PODMAN_N x each (podman $(podman --version | awk '{print $3}'), vfs, --network none)"
declare -A total
for name in doppel runc; do
  rt=$doppel; [ $name = runc ] && rt=$runc
  args=("${podman[@]}" --runtime "$rt" run --rm --network none --cgroup-parent "/$parent"
        --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 --rootfs "$rootfs" /bin/true)
  "${args[@]}" || { echo "podman with $name failed" >&2; exit 1; }  # warm-up
  t0=$(date +%s.%N)
  for _ in $(seq "$PODMAN_N"); do "${args[@]}" || { echo "podman with $name failed" >&2; exit 1; }; done
  t1=$(date +%s.%N)
  total[$name]=$(echo "$t1 - $t0" | bc -l)
  printf '%-7s %s x podman run: %7.3f s  (%6.1f ms each)\n' $name "$PODMAN_N" "${total[$name]}" \
    "$(echo "${total[$name]} * 1000 / $PODMAN_N" | bc -l)"
  # The runtime's memory: every call podman and conmon make, through GNU time.
  wrapper=$work/podman/$name-rss
  printf '#!/bin/sh\nexec /usr/bin/time -a -o %s -f "%%M %%C" %s "$@"\n' "$work/podman/$name-rss.txt" "$rt" > "$wrapper"
  chmod +x "$wrapper"
  args[${#podman[@]}+1]=$wrapper
  for _ in $(seq "$PODMAN_RSS_N"); do "${args[@]}" || { echo "podman with $name (rss) failed" >&2; exit 1; }; done
  python3 - "$work/podman/$name-rss.txt" <<'PY'
import sys
verbs = {"create", "start", "delete", "state", "kill", "run", "exec", "features", "--version", "version"}
peak = {}
for line in open(sys.argv[1]):
    parts = line.split()
    if not parts or not parts[0].isdigit():
        continue
    verb = next((w for w in parts[2:] if w in verbs), "other")
    peak[verb] = max(peak.get(verb, 0), int(parts[0]))
print("        runtime peak RSS KiB: " + "  ".join(f"{k} {v}" for k, v in sorted(peak.items())) +
      f"  (max {max(peak.values())})")
open(sys.argv[1] + ".max", "w").write(str(max(peak.values())))
PY
done
rd=$(cat "$work/podman/doppel-rss.txt.max") rr=$(cat "$work/podman/runc-rss.txt.max")
printf 'ratio doppel/runc under podman: time %.3f  runtime peak RSS %.3f\n' \
  "$(echo "${total[doppel]} / ${total[runc]}" | bc -l)" "$(echo "$rd / $rr" | bc -l)"
