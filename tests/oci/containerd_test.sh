#!/bin/bash
# containerd drives doppel oci through its runc shim (containerd-shim-runc-v2 with
# --runc-binary doppel-runc): a containerd of our own (temporary root, state and socket),
# an image built here from busybox-static (no registry is reachable) imported with
# `ctr image import`, then `ctr run` output and exit codes, `ctr task exec`, pause/resume,
# kill, and a memory limit as the container sees it.
#   containerd_test.sh PATH/TO/doppel-runc
set -u
rt="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
[ "$(id -u)" = 0 ] || { echo "SKIP: containerd needs root"; exit 77; }
for p in containerd ctr containerd-shim-runc-v2; do
  command -v $p >/dev/null || { echo "SKIP: $p is not installed (apt-get install containerd)"; exit 77; }
done
[ -x /bin/busybox ] || { echo "SKIP: no /bin/busybox (busybox-static)"; exit 77; }

work=$(mktemp -d /tmp/doppel-containerd.XXXXXX)
sock=$work/containerd.sock
ctr=(ctr --address "$sock" --namespace doppeltest)
image=docker.io/library/doppel-busybox:latest
fails=0
cleanup() {
  for c in $("${ctr[@]}" task ls -q 2>/dev/null); do "${ctr[@]}" task kill -s KILL "$c" >/dev/null 2>&1; done
  sleep 0.5
  for c in $("${ctr[@]}" container ls -q 2>/dev/null); do
    "${ctr[@]}" task rm -f "$c" >/dev/null 2>&1; "${ctr[@]}" container rm "$c" >/dev/null 2>&1
  done
  [ -n "${cpid:-}" ] && kill "$cpid" 2>/dev/null && wait "$cpid" 2>/dev/null
  grep -o " $work[^ ]*" /proc/self/mountinfo | sort -r | while read -r m; do umount -l "$m" 2>/dev/null; done
  rm -rf "$work"
  # The namespace's parent cgroup (runtimes remove only a container's own), and below it
  # any container's a failed check left, with what still runs there.
  local d f pid
  for d in /sys/fs/cgroup/*/doppeltest /sys/fs/cgroup/doppeltest; do
    [ -d "$d" ] || continue
    for f in $(find "$d" -name freezer.state); do echo THAWED > "$f" 2>/dev/null; done
    for pid in $(cat $(find "$d" -name cgroup.procs) 2>/dev/null); do kill -9 "$pid" 2>/dev/null; done
    for _ in $(seq 20); do find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null; [ -d "$d" ] || break; sleep 0.1; done
  done
}
trap cleanup EXIT
trap 'exit 143' TERM INT HUP  # a killed test cleans up too (bash skips the EXIT trap otherwise)
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
check() { if eval "$2"; then echo "ok: $1"; else fail "$1"; fi; }

cat > "$work/config.toml" <<TOML
version = 2
root = "$work/root"
state = "$work/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$sock"
TOML
containerd --config "$work/config.toml" > "$work/containerd.log" 2>&1 & cpid=$!
for _ in $(seq 100); do [ -S "$sock" ] && "${ctr[@]}" version >/dev/null 2>&1 && break; sleep 0.1; done
"${ctr[@]}" version >/dev/null 2>&1 || { echo "FAIL: containerd did not start"; tail "$work/containerd.log"; exit 1; }

# An OCI image layout with one layer: busybox and its applet links.
python3 - "$work/image.tar" "$image" <<'PY'
import hashlib, io, json, sys, tarfile, time
out, name = sys.argv[1], sys.argv[2]
layer = io.BytesIO()
with tarfile.open(fileobj=layer, mode="w") as t:
    for d in ["bin", "proc", "sys", "dev", "tmp", "etc"]:
        i = tarfile.TarInfo(d); i.type = tarfile.DIRTYPE; i.mode = 0o755; t.addfile(i)
    t.add("/bin/busybox", "bin/busybox")
    for a in ["sh", "echo", "cat", "sleep", "id", "true", "hostname"]:
        i = tarfile.TarInfo("bin/" + a); i.type = tarfile.SYMTYPE; i.linkname = "busybox"; t.addfile(i)
layer = layer.getvalue()
def blob(data):
    return "sha256:" + hashlib.sha256(data).hexdigest(), data
ldig, _ = blob(layer)
config = json.dumps({"architecture": "amd64", "os": "linux",
                     "config": {"Cmd": ["sh"], "Env": ["PATH=/bin"]},
                     "rootfs": {"type": "layers", "diff_ids": [ldig]}}).encode()
cdig, _ = blob(config)
manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cdig, "size": len(config)},
    "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": ldig, "size": len(layer)}]}).encode()
mdig, _ = blob(manifest)
index = json.dumps({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
    "digest": mdig, "size": len(manifest), "annotations": {"io.containerd.image.name": name,
    "org.opencontainers.image.ref.name": "latest"}, "platform": {"architecture": "amd64", "os": "linux"}}]}).encode()
with tarfile.open(out, "w") as t:
    def add(path, data):
        i = tarfile.TarInfo(path); i.size = len(data); i.mtime = int(time.time()); t.addfile(i, io.BytesIO(data))
    add("oci-layout", b'{"imageLayoutVersion": "1.0.0"}')
    add("index.json", index)
    for dig, data in [(ldig, layer), (cdig, config), (mdig, manifest)]:
        add("blobs/sha256/" + dig.split(":")[1], data)
PY
"${ctr[@]}" image import --snapshotter native "$work/image.tar" >/dev/null 2>"$work/import.err"
check "ctr image import of the busybox image" '"${ctr[@]}" image ls -q | grep -q doppel-busybox'

run=("${ctr[@]}" run --snapshotter native --runc-binary "$rt")
out=$("${run[@]}" --rm "$image" c-echo echo hello from doppel 2>&1); rc=$?
check "ctr run prints the container's output" '[ $rc -eq 0 ] && [ "$out" = "hello from doppel" ]'
"${run[@]}" --rm "$image" c-exit sh -c 'exit 7' >/dev/null 2>&1; rc=$?
check "ctr run returns the container's exit code (7)" '[ $rc -eq 7 ]'

"${run[@]}" -d "$image" c-long sleep 300 >/dev/null 2>&1
out=$("${ctr[@]}" task exec --exec-id e1 c-long sh -c 'echo exec says hi' 2>&1)
check "ctr task exec runs in the container" '[ "$out" = "exec says hi" ]'
"${ctr[@]}" task pause c-long
status=$("${ctr[@]}" task ls | awk '$1 == "c-long" {print $3}')
check "ctr task pause ($status)" '[ "$status" = PAUSED ]'
"${ctr[@]}" task resume c-long
status=$("${ctr[@]}" task ls | awk '$1 == "c-long" {print $3}')
check "ctr task resume ($status)" '[ "$status" = RUNNING ]'
"${ctr[@]}" task kill -s KILL c-long
for _ in $(seq 50); do
  status=$("${ctr[@]}" task ls | awk '$1 == "c-long" {print $3}'); [ "$status" = STOPPED ] && break; sleep 0.1
done
check "ctr task kill ($status)" '[ "$status" = STOPPED ]'
"${ctr[@]}" task rm c-long >/dev/null 2>&1; "${ctr[@]}" container rm c-long >/dev/null 2>&1

# ctr's spec mounts no cgroupfs in the container: read the limit on the host, in the
# cgroup containerd asked for (/<namespace>/<id>).
"${run[@]}" -d --memory-limit 67108864 "$image" c-mem sleep 300 >/dev/null 2>&1
if [ -f /sys/fs/cgroup/cgroup.controllers ]; then f=/sys/fs/cgroup/doppeltest/c-mem/memory.max
else f=/sys/fs/cgroup/memory/doppeltest/c-mem/memory.limit_in_bytes; fi
out=$(cat "$f" 2>&1)
check "ctr run --memory-limit sets the container's cgroup ($out)" '[ "$out" = 67108864 ]'
"${ctr[@]}" task kill -s KILL c-mem; sleep 0.5
"${ctr[@]}" task rm -f c-mem >/dev/null 2>&1; "${ctr[@]}" container rm c-mem >/dev/null 2>&1
check "... and removing the task removes the cgroup" '[ ! -e "$f" ]'

[ $fails -eq 0 ] && echo "all passed" || { echo "$fails failed"; tail -20 "$work/containerd.log"; }
[ $fails -eq 0 ]
