#include "vmm/board.h"

#include "vmm/board_riscv64.h"
#include "vmm/board_x86_64.h"

namespace doppel {

Result<std::unique_ptr<Board>> create_board(const VmConfig& config, BoardContext context) {
  // Each (arch, engine) pair that exists gets a case here as its engine lands.
  if (config.arch == Arch::kRiscv64 && config.engine == EngineKind::kEmu)
    return std::unique_ptr<Board>(TRY(BoardRiscv64::create(config, std::move(context))));
  if (config.arch == Arch::kX86_64 && config.engine == EngineKind::kKvm)
    return std::unique_ptr<Board>(TRY(BoardX86_64::create(config, std::move(context))));
  return Error::format("engine '{}' for {} is not available in this build",
                       to_string(config.engine), to_string(config.arch));
}

}  // namespace doppel
