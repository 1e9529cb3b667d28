# Shared by tests/oci/*.sh and bench/oci/run.sh (sourced).

# remove_cgroup_parent NAME: the cgroup NAME (podman's --cgroup-parent of a run) in every
# hierarchy, with whatever still runs in it: a conmon and a container init whose podman run
# failed half-way outlive podman. Thaw, kill, then remove the tree, deepest first.
remove_cgroup_parent() {
  local parent=$1 d f pid
  for d in $(find /sys/fs/cgroup -mindepth 1 -maxdepth 2 -type d -name "$parent" 2>/dev/null); do
    for f in $(find "$d" -name freezer.state); do echo THAWED > "$f" 2>/dev/null; done
    for pid in $(cat $(find "$d" -name cgroup.procs) 2>/dev/null); do kill -9 "$pid" 2>/dev/null; done
  done
  for d in $(find /sys/fs/cgroup -mindepth 1 -maxdepth 2 -type d -name "$parent" 2>/dev/null); do
    for _ in $(seq 20); do find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null; [ -d "$d" ] || break; sleep 0.1; done
  done
}
