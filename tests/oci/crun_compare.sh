#!/bin/bash
# crun 1.8.1's test suite against doppel oci and against runc on this machine (see
# crun_suite.sh). Fails when doppel passes fewer tests than runc, or a test that runc
# passes. Exits 77 (skipped) when the machine cannot run containers (not root, no
# cgroups, no source package).
#   crun_compare.sh DOPPEL_RUNC_LINK
set -u
here=$(cd "$(dirname "$0")" && pwd)
doppel=$1
[ "$(id -u)" = 0 ] || { echo "SKIP: containers need root"; exit 77; }
[ -d /sys/fs/cgroup ] || { echo "SKIP: no /sys/fs/cgroup"; exit 77; }
runc=$(command -v runc || true)
[ -n "$runc" ] || { echo "SKIP: runc is not installed (scripts/install-deps)"; exit 77; }

out=$(mktemp -d /tmp/doppel-crun-compare.XXXXXX)
trap 'rm -rf "$out"' EXIT
trap 'exit 143' TERM INT HUP
"$here/crun_suite.sh" "$doppel" > "$out/doppel.txt"; rc=$?
[ $rc = 77 ] && { cat "$out/doppel.txt"; exit 77; }
"$here/crun_suite.sh" --adapt-runc "$runc" > "$out/runc.txt"

python3 - "$out/doppel.txt" "$out/runc.txt" <<'PY'
import re, sys
def load(path):
    res, total = {}, ""
    for line in open(path):
        m = re.match(r"^(test_\S+): (not ok|ok) \d+ - (\S+)( #SKIP)?", line)
        if m:
            res[m.group(1) + " " + m.group(3)] = "skip" if m.group(4) else ("pass" if m.group(2) == "ok" else "FAIL")
        elif line.startswith("PASS "):
            total = line.strip()
    return res, total
d, dt = load(sys.argv[1])
r, rt = load(sys.argv[2])
print("%-60s %-6s %s" % ("test", "doppel", "runc"))
for k in sorted(set(d) | set(r)):
    print("%-60s %-6s %s" % (k, d.get(k, "-"), r.get(k, "-")))
print("doppel oci: " + dt)
print("runc:       " + rt + " (through --adapt-runc)")
worse = [k for k in r if r[k] == "pass" and d.get(k) != "pass"]
dp = sum(v == "pass" for v in d.values()); rp = sum(v == "pass" for v in r.values())
if worse:
    print("FAIL: runc passes, doppel does not: " + ", ".join(worse)); sys.exit(1)
if dp < rp:
    print("FAIL: doppel passes %d, runc %d" % (dp, rp)); sys.exit(1)
print("OK: doppel passes %d, runc %d" % (dp, rp))
PY
