#!/usr/bin/env bash
# The control API as a Firecracker user drives it: curl --unix-socket, raw bytes with
# netcat, and `doppel ctl`, against tests/api/api_test_server (the real server over a fake
# VmControl). Exits 77 (skipped) without curl.
set -uo pipefail
server=${1:?usage: api_curl_test.sh path/to/doppel_api_test_server path/to/doppel}
doppel=${2:?usage: api_curl_test.sh path/to/doppel_api_test_server path/to/doppel}
if ! command -v curl >/dev/null; then
  echo "curl is not installed: skipping the API's HTTP test"
  exit 77
fi
tmp=$(mktemp -d)
sock=$tmp/api.sock
pid=
cleanup() {
  [[ -n "$pid" ]] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
failures=0 passes=0

"$server" "$sock" &
pid=$!
for _ in $(seq 50); do [[ -S "$sock" ]] && break; sleep 0.1; done
[[ -S "$sock" ]] || { echo "FAIL: the server did not create $sock"; exit 1; }

fail() {
  echo "FAIL: $*"
  failures=$((failures + 1))
}

# api CODE PATTERN METHOD PATH [BODY]: the answer has status CODE and a body matching
# PATTERN (an empty PATTERN: an empty body; a PATTERN starting "i:" looks at the headers too).
api() {
  local code=$1 pattern=$2 method=$3 path=$4 body=${5-}
  local args=(-sS --unix-socket "$sock" -X "$method" -o "$tmp/out" -w '%{http_code}')
  if [[ "$pattern" == i:* ]]; then args+=(-i); pattern=${pattern#i:}; fi
  [[ -n "$body" ]] && args+=(-H 'Content-Type: application/json' --data-binary "$body")
  local got
  got=$(curl "${args[@]}" "http://localhost$path" 2>"$tmp/err")
  local matched=1
  if [[ -z "$pattern" ]]; then [[ -s "$tmp/out" ]] && matched=0; else grep -qE -- "$pattern" "$tmp/out" || matched=0; fi
  if [[ "$got" != "$code" || $matched -eq 0 ]]; then
    fail "$method $path $body -> $got (want $code), body:"
    sed 's/^/    /' "$tmp/out" "$tmp/err"
    echo "    (want a line matching: $pattern)"
  else
    passes=$((passes + 1))
  fi
}

# ctl CODE PATTERN ARGS...: `doppel ctl --sock SOCK ARGS` exits CODE, output matches PATTERN.
ctl() {
  local code=$1 pattern=$2
  shift 2
  local out rc
  out=$("$doppel" ctl --sock "$sock" "$@" 2>&1 </dev/null)
  rc=$?
  if [[ $rc -ne $code ]] || ! grep -qE -- "$pattern" <<<"$out"; then
    fail "doppel ctl $* -> exit $rc (want $code), output:"
    sed 's/^/    /' <<<"$out"
    echo "    (want a line matching: $pattern)"
  else
    passes=$((passes + 1))
  fi
}

touch "$tmp/bzImage" "$tmp/rootfs.img"

# Errors; the server keeps serving after each.
api 400 'machine-config: vcpu_count: expected an integer, got \\"two\\"' PUT /machine-config '{"vcpu_count": "two", "mem_size_mib": 256}'
api 400 "snapshot/create: unknown field 'foo'" PUT /snapshot/create '{"snapshot_path": "a", "mem_file_path": "b", "foo": 1}'
api 400 'malformed JSON' PUT /actions '{"action_type":'
api 404 'no such resource: /balloon' GET /balloon
api 405 'i:^Allow: GET, PUT' DELETE /machine-config
head -c 60000 /dev/zero | tr '\0' ' ' >"$tmp/big.json"
api 400 'larger than the limit of 51200 bytes' PUT /actions "@$tmp/big.json"
if command -v nc >/dev/null; then
  reply=$(printf '\x16\x03\x01garbage\r\n\r\n' | timeout 5 nc -N -U "$sock" 2>&1 | head -n 1)
  if [[ "$reply" == "HTTP/1.1 400 Bad Request"* ]]; then passes=$((passes + 1)); else fail "garbage bytes -> '$reply'"; fi
fi

# Pre-boot configuration, then InstanceStart.
api 200 '"state":"Not started"' GET /
api 200 '"vmm_version"' GET /version
api 204 '' PUT /machine-config '{"vcpu_count": 2, "mem_size_mib": 256, "arch": "x86_64"}'
api 204 '' PUT /boot-source "{\"kernel_image_path\": \"$tmp/bzImage\", \"boot_args\": \"console=ttyS0\"}"
api 204 '' PUT /drives/rootfs "{\"drive_id\": \"rootfs\", \"path_on_host\": \"$tmp/rootfs.img\", \"is_root_device\": true, \"is_read_only\": false}"
api 204 '' PUT /network-interfaces/eth0 '{"iface_id": "eth0", "host_dev_name": "tap0", "guest_mac": "52:54:00:12:34:56"}'
api 200 '"vcpu_count":2' GET /machine-config
api 400 'SendCtrlAltDel: there is no VM yet' PUT /actions '{"action_type": "SendCtrlAltDel"}'
api 204 '' PUT /actions '{"action_type": "InstanceStart"}'
api 204 '' PUT /actions '{"action_type": "SendCtrlAltDel"}'
api 200 '"cmdline":"console=ttyS0 root=/dev/vda rw"' GET /vm/config
api 200 '"mac":"52:54:00:12:34:56"' GET /vm/config
api 200 '"state":"Running"' GET /
api 400 'pre-boot configuration is closed' PUT /boot-source "{\"kernel_image_path\": \"$tmp/bzImage\"}"

# doppel ctl.
ctl 0 '^$' pause
ctl 0 '"state": "Paused"' info
ctl 0 '"vcpu_exits": 42' metrics
ctl 0 '^$' snapshot "$tmp/snap"
[[ -d "$tmp/snap" ]] && passes=$((passes + 1)) || fail "ctl snapshot did not create $tmp/snap"
ctl 0 '^$' snapshot "$tmp/snap" --diff
ctl 0 '^$' resume
ctl 0 '^$' ctrl-alt-del
ctl 1 '^doppel: the VM is not paused$' resume
ctl 1 '^doppel: the VM must be paused to snapshot it$' snapshot "$tmp/snap2"
"$doppel" ctl --sock "$tmp/nobody.sock" info >"$tmp/out" 2>&1
rc=$?
if [[ $rc -eq 1 ]] && grep -q "^doppel: api socket $tmp/nobody.sock: connect: No such file or directory$" "$tmp/out"; then
  passes=$((passes + 1))
else
  fail "ctl against a missing socket -> exit $rc: $(cat "$tmp/out")"
fi

# Stopping the server removes its socket.
kill "$pid"
wait "$pid"
rc=$?
pid=
if [[ $rc -eq 0 && ! -e "$sock" ]]; then passes=$((passes + 1)); else fail "server exit $rc, socket left: $(ls "$sock" 2>&1)"; fi

echo "api_curl_test: $passes passed, $failures failed"
[[ $failures -eq 0 ]]
