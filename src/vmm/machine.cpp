#include "vmm/machine.h"

#include "vmm/machine_riscv64.h"
#include "vmm/machine_x86_64.h"

namespace doppel {

Result<int> run_vm(const VmConfig& config) {
  // Each (arch, engine) pair that exists gets a case here as its engine lands.
  if (config.arch == Arch::kRiscv64 && config.engine == EngineKind::kEmu)
    return run_riscv64_emu(config);
  if (config.arch == Arch::kX86_64 && config.engine == EngineKind::kKvm)
    return run_x86_64_kvm(config);
  return Error::format("engine '{}' for {} is not available in this build",
                       to_string(config.engine), to_string(config.arch));
}

}  // namespace doppel
