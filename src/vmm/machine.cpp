#include "vmm/machine.h"

namespace doppel {

Result<int> run_vm(const VmConfig& config) {
  // Each (arch, engine) pair that exists gets a case here as its engine lands.
  return Error::format("engine '{}' for {} is not available in this build",
                       to_string(config.engine), to_string(config.arch));
}

}  // namespace doppel
