// doppel's process exit codes. Both engines use the same ones (documented in README.md).
#pragma once

namespace doppel {

constexpr int kExitPowerOff = 0;  // the guest powered off
constexpr int kExitError = 1;     // doppel could not start or run the VM (bad config, host error)
constexpr int kExitReboot = 3;    // the guest rebooted (or triple-faulted) and --on-reboot=exit
constexpr int kExitCrash = 4;     // the guest died: an emulator fault, a KVM internal error
constexpr int kExitQuit = 5;      // the user quit with Ctrl-A x

}  // namespace doppel
