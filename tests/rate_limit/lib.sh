# Shared by tests/rate_limit/*.sh (sourced): the virtio guest and lifecycle helpers (which
# source tests/virtio_guest/lib.sh), and the rate check.
source "$(dirname "${BASH_SOURCE[0]}")/../lifecycle/lib.sh"
TOLERANCE_PCT=${TOLERANCE_PCT:-15}

# The guest's "TAG START END" line (its /proc/uptime before and after): elapsed seconds.
guest_elapsed() {  # TAG
  local line; line=$(grep -ao "$1 [0-9.]* [0-9.]*" "$VM_OUT" | tail -n1)
  [[ -n $line ]] || fail "no '$1' timing line from the guest"
  awk '{ printf "%.2f", $3 - $2 }' <<<"$line"
}

# check_rate WHAT AMOUNT SECONDS LIMIT UNIT: AMOUNT/SECONDS must be LIMIT within TOLERANCE_PCT.
check_rate() {
  local what=$1 amount=$2 secs=$3 limit=$4 unit=$5 rate
  rate=$(awk -v a="$amount" -v s="$secs" 'BEGIN { printf "%.0f", a / s }')
  local pct; pct=$(awk -v r="$rate" -v l="$limit" 'BEGIN { printf "%.1f", (r - l) * 100 / l }')
  echo "$what: $amount $unit in $secs s = $rate $unit/s (limit $limit $unit/s, ${pct}%)"
  awk -v p="$pct" -v t="$TOLERANCE_PCT" 'BEGIN { exit !(p <= t && p >= -t) }' ||
    fail "$what: measured $rate $unit/s, limit $limit $unit/s: off by ${pct}%, more than ${TOLERANCE_PCT}%"
}
