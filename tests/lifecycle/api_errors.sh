#!/usr/bin/env bash
# The API's bad inputs against a real VM: malformed JSON, an unknown field, a wrong type,
# a snapshot of a running VM, a body over the limit, an unknown path, a wrong method, a
# load into a process that has a VM, a Ctrl-Alt-Del on riscv64 (x86_64 only). Each gets
# its 4xx and a fault_message naming the problem, and the guest keeps running. Then, on a
# doppel with no VM yet: a Ctrl-Alt-Del, a load of a missing or corrupt state file, and of
# a riscv64 snapshot after PUT /machine-config chose x86_64, are refused the same way, and
# a good load still works after them.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need curl
guest_dir >/dev/null
sock=$WORK/api.sock

# req METHOD PATH [BODY]: the status in $status, the body in $body.
req() {
  local args=(-s -o "$WORK/body" -w '%{http_code}' --unix-socket "$sock" -X "$1" "http://localhost$2")
  [[ $# -ge 3 ]] && args+=(-H 'Content-Type: application/json' --data-binary "$3")
  status=$(curl "${args[@]}") || true
  body=$(cat "$WORK/body" 2>/dev/null || true)
}
# bad STATUS PATTERN METHOD PATH [BODY]: the request is refused with STATUS and a
# fault_message matching PATTERN.
bad() {
  local want=$1 pattern=$2; shift 2
  req "$@"
  [[ $status == "$want" ]] || fail "$1 $2 -> HTTP $status (want $want): $body"
  grep -qE "\"fault_message\": *\".*$pattern" <<<"$body" || fail "$1 $2: fault_message does not match /$pattern/: $body"
}
guest_alive() {
  local tag="ALIVE-$RANDOM"
  vm_send "echo $tag-\"\"OK"
  vm_wait_for "$tag-OK"
}

vm_start vm "$(doppel_cmd --api-sock "$sock")"
vm_wait_ready
wait_sock "$sock"
bad 400 'JSON|parse' PATCH /vm '{"state": "Paused"'
bad 400 "unknown field 'colour'" PATCH /vm '{"state": "Paused", "colour": 1}'
bad 400 'state: expected a string' PATCH /vm '{"state": 3}'
bad 400 'state' PATCH /vm '{"state": "Sleeping"}'
bad 400 'paused' PUT /snapshot/create "{\"snapshot_path\": \"$WORK/s\", \"mem_file_path\": \"$WORK/m\"}"
[[ ! -e $WORK/s && ! -e $WORK/m ]] || fail "a refused snapshot left files behind"
bad 400 'snapshot_path' PUT /snapshot/create '{"mem_file_path": "/tmp/x"}'
bad 400 'already|started' PUT /snapshot/load "{\"snapshot_path\": \"$WORK/s\", \"mem_backend\": {\"backend_type\": \"File\", \"backend_path\": \"$WORK/m\"}}"
big=$(head -c 60000 /dev/zero | tr '\0' 'x')
bad 400 'too large|limit|51200' PATCH /vm "{\"state\": \"$big\"}"
req GET /no/such/thing; [[ $status == 404 ]] || fail "unknown path -> HTTP $status"
req DELETE /vm; [[ $status == 405 ]] || fail "DELETE /vm -> HTTP $status"
bad 400 'SendCtrlAltDel: not supported on riscv64' PUT /actions '{"action_type": "SendCtrlAltDel"}'
guest_alive
req GET /; [[ $status == 200 && $body == *'"Running"'* ]] || fail "GET / after the bad requests: $status $body"

# A good snapshot to load later, taken through the same API.
req PATCH /vm '{"state": "Paused"}'; [[ $status == 204 ]] || fail "pause: $status $body"
mkdir -p "$WORK/snap"
req PUT /snapshot/create "{\"snapshot_type\": \"Full\", \"snapshot_path\": \"$WORK/snap/state\", \"mem_file_path\": \"$WORK/snap/memory\"}"
[[ $status == 204 ]] || fail "snapshot/create: $status $body"
req PATCH /vm '{"state": "Resumed"}'; [[ $status == 204 ]] || fail "resume: $status $body"
guest_alive
vm_send 'poweroff -f'
vm_wait_exit 0

# A doppel with no VM: bad loads are refused, then a good one runs the guest.
"$DOPPEL" --api-sock "$sock" </dev/null >"$WORK/empty.out" 2>&1 &
empty=$!
trap 'kill $empty 2>/dev/null || true; cleanup' EXIT
wait_sock "$sock"
req GET /; [[ $body == *'"Not started"'* ]] || fail "GET / with no VM: $body"
bad 400 'SendCtrlAltDel: there is no VM yet' PUT /actions '{"action_type": "SendCtrlAltDel"}'
load() { echo "{\"snapshot_path\": \"$1\", \"mem_backend\": {\"backend_type\": \"File\", \"backend_path\": \"$2\"}, \"resume_vm\": true}"; }
bad 400 'No such file' PUT /snapshot/load "$(load "$WORK/nothing/state" "$WORK/snap/memory")"
head -c 4096 /dev/urandom >"$WORK/corrupt"
bad 400 "$WORK/corrupt" PUT /snapshot/load "$(load "$WORK/corrupt" "$WORK/snap/memory")"
cp "$WORK/snap/state" "$WORK/flipped"
printf '\x5a' | dd of="$WORK/flipped" bs=1 seek=100 conv=notrunc 2>/dev/null
bad 400 'CRC|checksum|corrupt' PUT /snapshot/load "$(load "$WORK/flipped" "$WORK/snap/memory")"
bad 400 'snapshot_path' PUT /snapshot/load '{"mem_backend": {"backend_type": "File", "backend_path": "/x"}}'
bad 400 'backend_type' PUT /snapshot/load "{\"snapshot_path\": \"$WORK/snap/state\", \"mem_backend\": {\"backend_type\": \"Uffd\", \"backend_path\": \"/x\"}}"
req PUT /machine-config '{"vcpu_count": 1, "mem_size_mib": 256, "arch": "x86_64"}'
[[ $status == 204 ]] || fail "machine-config x86_64: $status $body"
bad 400 'riscv64 snapshot.*x86_64' PUT /snapshot/load "$(load "$WORK/snap/state" "$WORK/snap/memory")"
req GET /; [[ $body == *'"Not started"'* ]] || fail "a refused load started something: $body"
kill $empty; wait $empty 2>/dev/null || true

# The same snapshot loads into a fresh doppel and the guest answers.
vm_start loaded "$DOPPEL --api-sock $sock"
wait_sock "$sock"
req PUT /snapshot/load "$(load "$WORK/snap/state" "$WORK/snap/memory")"
[[ $status == 204 ]] || fail "a good load: $status $body"
guest_alive
req GET /; [[ $body == *'"Running"'* ]] || fail "GET / after the load: $body"
vm_send 'poweroff -f'
vm_wait_exit 0
echo "PASS: the API refuses bad requests with 4xx + fault_message; the VM keeps running"
