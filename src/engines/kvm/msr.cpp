#include "engines/kvm/msr.h"

namespace doppel::kvm {

std::vector<MsrValue> boot_msrs() {
  constexpr uint64_t kMtrrEnable = 1u << 11;
  constexpr uint64_t kMemTypeWriteBack = 6;
  return {
      {Msr::kIa32SysenterCs, 0},   {Msr::kIa32SysenterEsp, 0},
      {Msr::kIa32SysenterEip, 0},  {Msr::kStar, 0},
      {Msr::kLstar, 0},            {Msr::kCstar, 0},
      {Msr::kSyscallMask, 0},      {Msr::kKernelGsBase, 0},
      {Msr::kIa32Tsc, 0},          {Msr::kIa32MiscEnable, 1},
      {Msr::kIa32MtrrDefType, kMtrrEnable | kMemTypeWriteBack},
  };
}

}  // namespace doppel::kvm
