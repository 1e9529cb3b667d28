// CPUID for one vCPU: what KVM supports, with the topology of this VM written in.
#pragma once

#include <linux/kvm.h>

#include <cstdint>
#include <vector>

namespace doppel::kvm {

// Takes KVM_GET_SUPPORTED_CPUID's entries and returns those for vCPU `index` of `count`
// vCPUs, one core per vCPU in one package: APIC ID in leaf 0x1 EBX and 0xb/0x1f EDX,
// logical processor count in 0x1 and cores in 0x4, 0xb/0x1f levels SMT=1 and core=count,
// the hypervisor bit in 0x1 ECX; on AMD also CmpLegacy (0x80000001), the core count and
// APIC ID core bits (0x80000008), TOPOEXT's 0x8000001e IDs, and cache sharing in 0x4 /
// 0x8000001d (last level shared by all). Pure function: unit-tested without /dev/kvm.
std::vector<kvm_cpuid_entry2> cpuid_for_vcpu(const std::vector<kvm_cpuid_entry2>& supported,
                                             unsigned index, unsigned count);

// Bits needed to number `count` cores (ceil(log2(count))), for the 0xb/0x1f shift fields.
unsigned topology_shift(unsigned count);

}  // namespace doppel::kvm
