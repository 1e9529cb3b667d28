#!/usr/bin/env bash
# Runs build/doppel with good and bad command lines and checks exit codes and messages.
set -uo pipefail
doppel=${1:?usage: cli_test.sh path/to/doppel}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0 passes=0

# expect CODE PATTERN ARGS...: doppel ARGS exits with CODE and its output matches PATTERN.
expect() {
  local code=$1 pattern=$2
  shift 2
  local out rc
  out=$("$doppel" "$@" 2>&1 </dev/null)
  rc=$?
  if [[ $rc -ne $code ]] || ! grep -qE -- "$pattern" <<<"$out"; then
    echo "FAIL: doppel $* -> exit $rc (want $code), output:"
    sed 's/^/    /' <<<"$out"
    echo "    (want a line matching: $pattern)"
    failures=$((failures + 1))
  else
    passes=$((passes + 1))
  fi
}

touch "$tmp/kernel" "$tmp/fw.bin"
k=(--kernel "$tmp/kernel" --firmware "$tmp/fw.bin")

expect 0 '^doppel [0-9]+\.[0-9]+\.[0-9]+$' version
expect 0 'run +Boot a VM' --help
expect 0 -- '--disk TEXT' run --help
expect 1 'A subcommand is required|requires? .*subcommand' 
expect 1 '^doppel: --cpus 0: must be between 1 and 8$' run --cpus 0 "${k[@]}"
expect 1 '^doppel: --cpus 9: must be between 1 and 8$' run --cpus 9 "${k[@]}"
expect 1 '^doppel: --memory: 0 bytes is too little' run --memory 0 "${k[@]}"
expect 1 "^doppel: --memory: [0-9]+ MiB is more than the host's [0-9]+ MiB$" run --memory 100000G "${k[@]}"
expect 1 "^doppel: --memory: '12Q' has an unknown suffix 'Q'" run --memory 12Q "${k[@]}"
expect 1 "^doppel: --engine: unknown engine 'xen' \(emu, kvm\)$" run --engine xen "${k[@]}"
expect 1 "^doppel: --arch: unknown architecture 'arm'" run --arch arm "${k[@]}"
expect 1 '^doppel: --kernel /nonexistent/Image: No such file or directory$' run --kernel /nonexistent/Image --firmware "$tmp/fw.bin"
expect 1 '^doppel: --initrd /nonexistent/initrd: No such file or directory$' run "${k[@]}" --initrd /nonexistent/initrd
expect 1 '^doppel: --disk /x.img: No such file or directory$' run "${k[@]}" --disk /x.img
expect 1 "^doppel: --disk: '/x.img,bogus': unknown option 'bogus'" run "${k[@]}" --disk /x.img,bogus
expect 1 "^doppel: --net: tap=t0,mac=zz: 'zz' is not a MAC address" run "${k[@]}" --net tap=t0,mac=zz
expect 1 "^doppel: --disk: /x.img,bw=fast: 'fast' is not SIZE/MS\[\+BURST\]" run "${k[@]}" --disk /x.img,bw=fast
expect 1 "^doppel: --net: tap=t0,tx_ops=5/0x: refill time '0x' is not a number of milliseconds" run "${k[@]}" --net tap=t0,tx_ops=5/0x
expect 1 '^doppel: --engine kvm runs x86_64 guests' run "${k[@]}" --engine kvm
# What a kernel or a NIC would take silently and get wrong (issue 14).
expect 1 '^doppel: --cpus -1: must be between 1 and 8$' run --cpus -1 "${k[@]}"
# Resource limits (README "Resource limits and the jailer"): bad values name the flag.
expect 1 "^doppel: --cpu-quota: 'fast': expected a share of one CPU such as 50% or 12.5%$" run "${k[@]}" --cpu-quota fast
expect 1 "^doppel: --cpu-quota: '0%': must be between 1% and 800%$" run "${k[@]}" --cpu-quota 0%
expect 1 "^doppel: --memory-limit: '1K': must be at least 4M$" run "${k[@]}" --memory-limit 1K
expect 1 "^doppel: --io-limit: 'speed=3': unknown key 'speed'" run "${k[@]}" --io-limit speed=3
expect 1 "^doppel: --pids-limit: '2': must be between 8 and" run "${k[@]}" --pids-limit 2
expect 0 '"cpu_quota": "12.5%"' run "${k[@]}" --cpu-quota 12.5% --print-config
expect 1 "^doppel: --net: tap=t0,mac=00:00:00:00:00:00: '00:00:00:00:00:00' is the all-zero MAC address" \
  run "${k[@]}" --net tap=t0,mac=00:00:00:00:00:00
expect 1 "is a multicast MAC address" run "${k[@]}" --net tap=t0,mac=ff:ff:ff:ff:ff:ff
expect 1 '^doppel: --cmdline: 1100 bytes is too long: a riscv64 Linux kernel reads at most 1023 \(COMMAND_LINE_SIZE 1024\)$' \
  run "${k[@]}" --cmdline "$(printf 'a%.0s' $(seq 1100))"
expect 1 "^doppel: --firmware $tmp/fw.bin: riscv64 only; an x86_64 kernel is booted directly" \
  run --arch x86_64 "${k[@]}"
# User networking and vsock: what they print, and what is wrong in them.
expect 0 '"hostfwd": \[$' run "${k[@]}" --net user,hostfwd=tcp:127.0.0.1:8080-:80 --print-config
expect 0 '"tcp:127.0.0.1:8080-10.0.2.15:80"' run "${k[@]}" --net user,hostfwd=tcp:127.0.0.1:8080-:80 --print-config
expect 1 "^doppel: --net: user,hostfwd=tcp::0-:80: hostfwd 'tcp::0-:80': host port '0' is not a port number" \
  run "${k[@]}" --net user,hostfwd=tcp::0-:80
expect 1 "forwarded twice" run "${k[@]}" --net user,hostfwd=tcp::8080-:80 --net user,hostfwd=tcp:127.0.0.1:8080-:81
expect 0 '"guest_cid": 7' run "${k[@]}" --vsock cid=7,uds=/tmp/v.sock --print-config
expect 1 '^doppel: --vsock: cid=2,uds=/tmp/v.sock: cid 2 is reserved' run "${k[@]}" --vsock cid=2,uds=/tmp/v.sock
# The riscv64 JIT: on by default (x86-64), --jit / DOPPEL_JIT / --jit-cache, bad values named.
expect 0 '"jit": "off"' run "${k[@]}" --jit off --print-config
expect 0 '"jit_cache": "8192K"' run "${k[@]}" --jit-cache 8M --print-config
expect 1 "^doppel: --jit: 'fast': must be on or off$" run "${k[@]}" --jit fast
expect 1 '^doppel: --jit-cache: 4096 bytes: the JIT cache must be between 1M and 1G$' run "${k[@]}" --jit-cache 4K
# Boot anything (riscv64): firmware none, boot from a disk.
expect 0 '"firmware": "none"' run --kernel "$tmp/kernel" --firmware none --print-config
expect 1 "^doppel: --boot: unknown boot source 'floppy' \(kernel, disk\)$" run "${k[@]}" --boot floppy
expect 1 '^doppel: --boot disk: no disk to boot from; give --disk PATH$' run --firmware "$tmp/fw.bin" --boot disk
expect 1 "^doppel: --boot disk: U-Boot runs in S-mode and needs firmware" run --firmware none --boot disk --disk "$tmp/kernel"
expect 1 '^doppel: guest disk: --arch x86_64: only riscv64 boots from a disk' guest disk --arch x86_64

# A VM file and flags build the same configuration; flags override the file.
cat >"$tmp/vm.json" <<JSON
{"machine": {"cpus": 2, "memory": "128M"},
 "boot": {"kernel": "kernel", "firmware": "fw.bin", "cmdline": "console=ttyS0"}}
JSON
from_file=$("$doppel" run --config "$tmp/vm.json" --print-config)
from_flags=$("$doppel" run "${k[@]}" --cpus 2 --memory 128M --cmdline console=ttyS0 --print-config)
if [[ "$from_file" == "$from_flags" ]]; then passes=$((passes + 1)); else
  echo "FAIL: --config and flags differ:"; diff <(echo "$from_file") <(echo "$from_flags"); failures=$((failures + 1)); fi
expect 0 '"cpus": 4' run --config "$tmp/vm.json" --cpus 4 --print-config
echo '{"machine": {"cpus": 0}}' >"$tmp/bad.json"
expect 1 "^doppel: $tmp/bad.json: machine.cpus: must be between 1 and 8, got 0$" run --config "$tmp/bad.json"
echo '{"machine": {"cpu": 2}}' >"$tmp/typo.json"
expect 1 "--seccomp maybe: expected on or off" run --seccomp maybe
expect 1 "--seccomp nah: expected on or off" restore /nonexistent --seccomp nah
expect 1 "machine.cpu: unknown key \(known: arch, engine, cpus, memory, memory_shared, on_reboot, seccomp, jit, jit_cache\)" run --config "$tmp/typo.json"

printf '{"machine": {"cpus": 2,\n  "memory": 128M}}' >"$tmp/syntax.json"
expect 1 "^doppel: $tmp/syntax.json: not valid JSON: parse error at line 2, column 16: .*last read: .128M." run --config "$tmp/syntax.json"
printf '{"boot": {"cmdline": "console=ttyS0\\u0000 init=/x"}}' >"$tmp/nul.json"
expect 1 '^doppel: --cmdline: contains a NUL byte at offset 13' run --config "$tmp/nul.json" "${k[@]}"
# --kernel alone keeps the guest kit's initrd (when the kit is built): each flag overrides
# only its own part.
kit_initrd=$("$doppel" run --print-config 2>/dev/null | sed -n 's/.*"initrd": "\(.*\)".*/\1/p')
if [[ -n $kit_initrd ]]; then
  expect 0 "\"initrd\": \"$kit_initrd\"" run --kernel "$tmp/kernel" --print-config
  expect 0 '"initrd": ""' run --kernel "$tmp/kernel" --firmware none --print-config
  expect 0 '"initrd": ""' run --kernel "$tmp/kernel" --initrd none --print-config
fi

# Snapshots: what is missing or wrong is named, and nothing starts.
expect 1 "^doppel: $tmp/nosnap/state: No such file or directory" restore "$tmp/nosnap"
mkdir -p "$tmp/badsnap" && head -c 100 /dev/urandom >"$tmp/badsnap/state"
expect 1 "^doppel: $tmp/badsnap/state: .*(magic|not a doppel)" restore "$tmp/badsnap"
printf 'DOPPELVM' >"$tmp/badsnap/state"
expect 1 "^doppel: $tmp/badsnap/state: .*(truncated|short)" restore "$tmp/badsnap"
expect 1 "^doppel: snapshot merge: $tmp/nosnap/state: No such file or directory" snapshot merge "$tmp/nosnap"
expect 1 "^doppel: --disk: " restore "$tmp/badsnap" --disk ''
expect 1 "^doppel: api socket $tmp/none.sock: connect: No such file or directory" ctl --sock "$tmp/none.sock" info
expect 1 'A subcommand is required'

echo "$passes passed, $failures failed"
[[ $failures -eq 0 ]]
