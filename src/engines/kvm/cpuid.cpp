#include "engines/kvm/cpuid.h"

namespace doppel::kvm {

unsigned topology_shift(unsigned count) {
  unsigned shift = 0;
  while ((1u << shift) < count) ++shift;
  return shift;
}

namespace {

// Leaf 0's vendor string is "AuthenticAMD" or "HygonGenuine": the 0x8000_00xx topology
// leaves below are AMD's (reserved on Intel).
bool is_amd(const std::vector<kvm_cpuid_entry2>& supported) {
  for (const auto& e : supported) {
    if (e.function != 0) continue;
    return (e.ebx == 0x68747541 && e.edx == 0x69746e65 && e.ecx == 0x444d4163) ||  // AuthenticAMD
           (e.ebx == 0x6f677948 && e.edx == 0x6e65476e && e.ecx == 0x656e6975);    // HygonGenuine
  }
  return false;
}

// Cache leaves (0x4, 0x8000001d) EAX[25:14]: logical processors sharing this cache - 1.
// Every cache level is private to its core here, except the last level (shared).
uint32_t with_cache_sharing(uint32_t eax, unsigned count) {
  const uint32_t level = (eax >> 5) & 7;
  const uint32_t sharing = level >= 3 ? count - 1 : 0;
  return (eax & ~(0xfffu << 14)) | (sharing << 14);
}

}  // namespace

std::vector<kvm_cpuid_entry2> cpuid_for_vcpu(const std::vector<kvm_cpuid_entry2>& supported,
                                             unsigned index, unsigned count) {
  std::vector<kvm_cpuid_entry2> out;
  out.reserve(supported.size() + 4);
  const uint32_t apic_id = index;
  const unsigned core_shift = topology_shift(count);
  const bool amd = is_amd(supported);
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
      case 0x4:
        if ((e.eax & 0x1f) == 0) break;  // no more cache levels
        // EAX[31:26] cores per package - 1.
        e.eax = (with_cache_sharing(e.eax, count) & 0x03ffffffu) | ((count - 1) << 26);
        break;
      case 0xb:
        have_0b = true;
        continue;  // written below, per subleaf
      case 0x1f:
        have_1f = true;
        continue;
      case 0x80000001:
        // CmpLegacy: leaf 0x1's processor count counts cores, not threads (Linux's
        // detect_ht() would otherwise take the N vCPUs for N threads of one core).
        if (amd) e.ecx = count > 1 ? e.ecx | (1u << 1) : e.ecx & ~(1u << 1);
        break;
      case 0x80000008:
        // ECX[7:0] cores per package - 1, [15:12] APIC ID bits for the core index (how
        // Linux splits APIC IDs into package and core without TOPOEXT).
        if (amd) e.ecx = (e.ecx & ~0xf0ffu) | (core_shift << 12) | (count - 1);
        break;
      case 0x8000001d:
        if (amd && (e.eax & 0x1f) != 0) e.eax = with_cache_sharing(e.eax, count);
        break;
      case 0x8000001e:
        // TOPOEXT: EAX extended APIC ID; EBX[7:0] core ID, [15:8] threads per core - 1;
        // ECX[7:0] node ID, [10:8] nodes per package - 1. KVM reports zeros here.
        if (amd) {
          e.eax = apic_id;
          e.ebx = apic_id & 0xffu;
          e.ecx = 0;
        }
        break;
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
