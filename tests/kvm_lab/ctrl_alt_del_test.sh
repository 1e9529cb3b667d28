#!/bin/bash
# ctest: in the KVM lab, PUT /actions {"action_type": "SendCtrlAltDel"} (through
# `doppel ctl ctrl-alt-del`) reaches an x86_64 guest on doppel's KVM engine as Ctrl-Alt-Del
# typed on its i8042 keyboard: Linux restarts ("reboot: Restarting system" on its console),
# and doppel does what it does with any guest reboot: exit code 3 by default, or boot the
# guest again with --on-reboot restart. Once with the default command line (Firecracker's
# i8042 options: the keyboard is not probed), once without them (atkbd probes it).
#   tests/kvm_lab/ctrl_alt_del_test.sh DOPPEL GUEST_DIR
set -uo pipefail
source "$(dirname "$0")/test_lib.sh"
if ! grep -qx 'CONFIG_KEYBOARD_ATKBD=y' "$guest_dir/config" 2>/dev/null; then
  echo "FAIL: the guest kit in $guest_dir has no AT keyboard driver (guest/x86_64/kernel.config)"; exit 1
fi
lab_run --script "$here/ctrl_alt_del_l1.sh" --timeout 1000
for run in cad1 cad2; do
  expect "LAB: $run ready" "$run: the guest booted"
  expect "L2-$run| .*N: Name=\"AT Raw Set 2 keyboard\"" "$run: Linux found the i8042's keyboard (untranslated set 2)"
  expect "LAB: $run sent" "$run: PUT /actions SendCtrlAltDel answered 204 (doppel ctl ctrl-alt-del)"
  expect "L2-$run| .*reboot: Restarting system" "$run: the guest's kernel restarted on Ctrl-Alt-Del"
done
expect "L2-cad1| .*the guest rebooted" "cad1: doppel says the guest rebooted"
expect "LAB: cad1 exit=3" "cad1: doppel ends with the reboot exit code 3 (--on-reboot exit)"
expect "L2-cad2| .*the guest rebooted; starting it again" "cad2: doppel says it starts the guest again"
expect "LAB: cad2 booted again" "cad2: with --on-reboot restart the guest boots again"
expect "LAB: cad2 info says Running" "cad2: the API socket serves the new boot"
expect "LAB: cad2 shell answers after the reboot" "cad2: the rebooted guest runs commands"
expect "LAB: cad2 exit=0" "cad2: the rebooted guest powers off with exit 0"
[ $fail = 0 ] && echo "PASS: KVM SendCtrlAltDel" || echo "FAIL: KVM SendCtrlAltDel"
exit $fail
