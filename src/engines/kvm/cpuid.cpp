#include "engines/kvm/cpuid.h"

namespace doppel::kvm {

unsigned topology_shift(unsigned count) {
  unsigned shift = 0;
  while ((1u << shift) < count) ++shift;
  return shift;
}

std::vector<kvm_cpuid_entry2> cpuid_for_vcpu(const std::vector<kvm_cpuid_entry2>& supported,
                                             unsigned index, unsigned count) {
  std::vector<kvm_cpuid_entry2> out;
  out.reserve(supported.size() + 4);
  const uint32_t apic_id = index;
  const unsigned core_shift = topology_shift(count);
  bool have_0b = false;
  bool have_1f = false;
  for (kvm_cpuid_entry2 e : supported) {
    switch (e.function) {
      case 0x1:
        // EBX[31:24] initial APIC ID, [23:16] logical processors per package.
        e.ebx = (e.ebx & 0x0000ffffu) | (apic_id << 24) | ((count & 0xffu) << 16);
        if (count > 1)
          e.edx |= 1u << 28;  // HTT: the [23:16] field is valid
        e.ecx |= 1u << 31;    // hypervisor present
        break;
      case 0x4: {
        if ((e.eax & 0x1f) == 0) break;  // no more cache levels
        // EAX[31:26] cores per package - 1; [25:14] logical processors sharing this cache - 1.
        // Every cache level is private to its core here, except the last level (shared).
        const uint32_t level = (e.eax >> 5) & 7;
        const uint32_t sharing = level >= 3 ? count - 1 : 0;
        e.eax = (e.eax & 0x3fffu) | ((count - 1) << 26) | (sharing << 14);
        break;
      }
      case 0xb:
        have_0b = true;
        continue;  // written below, per subleaf
      case 0x1f:
        have_1f = true;
        continue;
      default:
        break;
    }
    out.push_back(e);
  }
  // Extended topology (0xb, and 0x1f if the host has it): level 0 SMT (1 thread per core),
  // level 1 core (count cores), level 2 invalid. EDX is the x2APIC ID at every subleaf.
  for (uint32_t fn : {0xbu, 0x1fu}) {
    if (fn == 0x1f && !have_1f) continue;
    if (fn == 0xb && !have_0b) continue;
    for (uint32_t sub = 0; sub < 3; ++sub) {
      kvm_cpuid_entry2 e{};
      e.function = fn;
      e.index = sub;
      e.flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX;
      e.edx = apic_id;
      e.ecx = sub;
      if (sub == 0) {
        e.eax = 0;       // no SMT bits
        e.ebx = 1;       // one logical processor at this level
        e.ecx |= 1u << 8;  // level type SMT
      } else if (sub == 1) {
        e.eax = core_shift;
        e.ebx = count;
        e.ecx |= 2u << 8;  // level type core
      }
      out.push_back(e);
    }
  }
  return out;
}

}  // namespace doppel::kvm
