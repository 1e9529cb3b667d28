// KVM ioctls whose argument ends in a flexible array. In C++, <linux/kvm.h>'s
// __DECLARE_FLEX_ARRAY adds an empty struct (size 1), so sizeof(kvm_cpuid2) and
// sizeof(kvm_msrs) differ from the kernel's and the ioctl numbers built from them are
// wrong (the kernel answers EINVAL). These are the kernel's numbers, built from the C
// layouts: an 8-byte header followed by the entries.
#pragma once

#include <linux/kvm.h>

#include <cstdint>

namespace doppel::kvm {

struct CpuidHeader {  // struct kvm_cpuid2 without its entries
  uint32_t nent;
  uint32_t padding;
};
struct MsrsHeader {  // struct kvm_msrs without its entries
  uint32_t nmsrs;
  uint32_t pad;
};

struct XsaveArea {  // struct kvm_xsave without the KVM_GET_XSAVE2 tail
  uint32_t region[1024];
};

constexpr unsigned long kGetSupportedCpuid = _IOWR(KVMIO, 0x05, CpuidHeader);
constexpr unsigned long kSetCpuid2 = _IOW(KVMIO, 0x90, CpuidHeader);
constexpr unsigned long kGetMsrs = _IOWR(KVMIO, 0x88, MsrsHeader);
constexpr unsigned long kSetMsrs = _IOW(KVMIO, 0x89, MsrsHeader);

// KVM_GET_XSAVE/KVM_SET_XSAVE: C++ makes sizeof(kvm_xsave) 4100 (its flexible tail), C 4096.
constexpr unsigned long kGetXsave = _IOR(KVMIO, 0xa4, XsaveArea);
constexpr unsigned long kSetXsave = _IOW(KVMIO, 0xa5, XsaveArea);

static_assert(kGetSupportedCpuid == 0xc008ae05ul);
static_assert(kGetXsave == 0x9000aea4ul);
static_assert(kSetXsave == 0x5000aea5ul);
static_assert(kSetCpuid2 == 0x4008ae90ul);
static_assert(kGetMsrs == 0xc008ae88ul);
static_assert(kSetMsrs == 0x4008ae89ul);
static_assert(sizeof(kvm_cpuid_entry2) == 40);
static_assert(sizeof(kvm_msr_entry) == 16);

}  // namespace doppel::kvm
