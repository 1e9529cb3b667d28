// Builds the VM a VmConfig describes, runs it to the end, and returns the process exit code
// (vmm/exit_codes.h).
#pragma once

#include "base/result.h"
#include "vmm/vm_config.h"

namespace doppel {

Result<int> run_vm(const VmConfig& config);

}  // namespace doppel
