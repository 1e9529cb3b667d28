#include "engines/kvm/kvm_vm.h"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>

#include "base/log.h"
#include "engines/kvm/cpuid.h"
#include "engines/kvm/kvm_abi.h"
#include "engines/kvm/kvm_vcpu.h"

namespace doppel::kvm {

namespace {

struct Capability {
  int id;
  const char* name;
  const char* why;
};

// Everything doppel relies on; each missing one is named in the error.
constexpr Capability kRequired[] = {
    {KVM_CAP_USER_MEMORY, "KVM_CAP_USER_MEMORY", "guest RAM as memory slots"},
    {KVM_CAP_IRQCHIP, "KVM_CAP_IRQCHIP", "in-kernel PIC, IOAPIC and local APICs"},
    {KVM_CAP_PIT2, "KVM_CAP_PIT2", "in-kernel i8254 timer"},
    {KVM_CAP_EXT_CPUID, "KVM_CAP_EXT_CPUID", "KVM_GET_SUPPORTED_CPUID"},
    {KVM_CAP_SET_TSS_ADDR, "KVM_CAP_SET_TSS_ADDR", "VMX real-mode support"},
    {KVM_CAP_SET_IDENTITY_MAP_ADDR, "KVM_CAP_SET_IDENTITY_MAP_ADDR", "VMX real-mode support"},
    {KVM_CAP_IOEVENTFD, "KVM_CAP_IOEVENTFD", "virtio queue notifications without exits"},
    {KVM_CAP_IRQFD, "KVM_CAP_IRQFD", "device interrupts from worker threads"},
    {KVM_CAP_IMMEDIATE_EXIT, "KVM_CAP_IMMEDIATE_EXIT", "stopping vCPUs without races"},
    {KVM_CAP_GET_TSC_KHZ, "KVM_CAP_GET_TSC_KHZ", "the guest's TSC frequency"},
    {KVM_CAP_MP_STATE, "KVM_CAP_MP_STATE", "vCPU state for snapshots"},
};

// KVM_GET_MSR_INDEX_LIST as the kernel numbers it: struct kvm_msr_list is a u32 count
// and a flexible array, which C++ sizes differently (see kvm_abi.h).
constexpr unsigned long kGetMsrIndexList = _IOWR(KVMIO, 0x02, uint32_t);
static_assert(kGetMsrIndexList == 0xc004ae02ul);

// The MSRs KVM can save and restore for a vCPU (KVM API: KVM_GET_MSR_INDEX_LIST, a system
// ioctl): E2BIG with the count filled in until the buffer is large enough.
Result<std::vector<uint32_t>> get_msr_index_list(int kvm_fd) {
  constexpr uint32_t kMaxMsrs = 16384;  // KVM lists a few hundred
  uint32_t n = 0;
  for (int attempt = 0; attempt < 4; ++attempt) {
    std::vector<uint32_t> buf(1 + size_t{n});
    buf[0] = n;
    if (ioctl(kvm_fd, kGetMsrIndexList, buf.data()) == 0) {
      const uint32_t count = std::min(buf[0], n);
      return std::vector<uint32_t>(buf.begin() + 1, buf.begin() + 1 + count);
    }
    if (errno != E2BIG) return Error::from_errno("KVM_GET_MSR_INDEX_LIST");
    if (buf[0] <= n || buf[0] > kMaxMsrs)
      return Error::format("KVM_GET_MSR_INDEX_LIST: KVM asks for room for {} MSRs", buf[0]);
    n = buf[0];
  }
  return Error("KVM_GET_MSR_INDEX_LIST: the list kept growing");
}

}  // namespace

void KvmIrqLine::set_level(bool high) {
  kvm_irq_level irq{};
  irq.irq = m_gsi;
  irq.level = high ? 1 : 0;
  if (ioctl(m_vm_fd, KVM_IRQ_LINE, &irq) < 0)
    DOPPEL_GUEST_WARN("KVM_IRQ_LINE gsi {}: {}", m_gsi, std::strerror(errno));
}

Result<std::unique_ptr<KvmVm>> KvmVm::create(GuestMemory& memory, const Options& options,
                                             const std::string& device) {
  UniqueFd kvm(open(device.c_str(), O_RDWR | O_CLOEXEC));
  if (!kvm.valid()) {
    const int e = errno;
    return Error::from_errno(
        fmt::format("{} (the KVM engine needs it: is the kvm module loaded and do you have "
                    "access to it?)", device),
        e);
  }
  const int version = ioctl(kvm.get(), KVM_GET_API_VERSION, 0);
  if (version != KVM_API_VERSION)
    return Error::format("{}: KVM API version {}, doppel needs {}", device, version,
                         KVM_API_VERSION);
  const int type = 0;
  UniqueFd vm(ioctl(kvm.get(), KVM_CREATE_VM, type));
  if (!vm.valid()) return Error::from_errno(fmt::format("{}: KVM_CREATE_VM", device));
  std::unique_ptr<KvmVm> self(new KvmVm(std::move(kvm), std::move(vm), memory, options));
  TRY(self->check_capabilities());
  TRY(self->set_up_vm());
  return self;
}

KvmVm::KvmVm(UniqueFd kvm, UniqueFd vm, GuestMemory& memory, const Options& options)
    : m_kvm(std::move(kvm)), m_vm(std::move(vm)), m_memory(memory), m_options(options) {}

KvmVm::~KvmVm() = default;

Result<void> KvmVm::check_capabilities() {
  std::string missing;
  for (const auto& cap : kRequired) {
    if (ioctl(m_vm.get(), KVM_CHECK_EXTENSION, cap.id) <= 0)
      missing += fmt::format("{}{} ({})", missing.empty() ? "" : ", ", cap.name, cap.why);
  }
  if (!missing.empty()) return Error::format("KVM lacks capabilities doppel needs: {}", missing);

  int max_vcpus = ioctl(m_vm.get(), KVM_CHECK_EXTENSION, KVM_CAP_MAX_VCPUS);
  if (max_vcpus <= 0) max_vcpus = ioctl(m_vm.get(), KVM_CHECK_EXTENSION, KVM_CAP_NR_VCPUS);
  if (max_vcpus > 0 && m_options.cpus > static_cast<unsigned>(max_vcpus))
    return Error::format("{} vCPUs requested, KVM allows at most {} (KVM_CAP_MAX_VCPUS)",
                         m_options.cpus, max_vcpus);
  const int slots = ioctl(m_vm.get(), KVM_CHECK_EXTENSION, KVM_CAP_NR_MEMSLOTS);
  if (slots > 0 && m_memory.regions().size() > static_cast<size_t>(slots))
    return Error::format("{} memory regions, KVM has {} slots (KVM_CAP_NR_MEMSLOTS)",
                         m_memory.regions().size(), slots);

  // Optional: coalesced port writes (the page offset of the ring, and PIO zones).
  const int coalesced_page = ioctl(m_vm.get(), KVM_CHECK_EXTENSION, KVM_CAP_COALESCED_MMIO);
  if (coalesced_page > 0 && ioctl(m_vm.get(), KVM_CHECK_EXTENSION, KVM_CAP_COALESCED_PIO) > 0)
    m_coalesced_page = coalesced_page;
  else
    spdlog::debug("kvm: no KVM_CAP_COALESCED_PIO: every console byte is an exit");

  const int run_size = ioctl(m_kvm.get(), KVM_GET_VCPU_MMAP_SIZE, 0);
  if (run_size <= 0) return Error::from_errno("KVM_GET_VCPU_MMAP_SIZE");
  m_run_size = static_cast<size_t>(run_size);
  return ok();
}

Result<void> KvmVm::set_up_vm() {
  if (ioctl(m_vm.get(), KVM_SET_TSS_ADDR, kTssAddress) < 0)
    return Error::from_errno(fmt::format("KVM_SET_TSS_ADDR {:#x}", kTssAddress));
  uint64_t identity = kIdentityMapAddress;
  if (ioctl(m_vm.get(), KVM_SET_IDENTITY_MAP_ADDR, &identity) < 0)
    return Error::from_errno(fmt::format("KVM_SET_IDENTITY_MAP_ADDR {:#x}", identity));

  uint32_t slot = 0;
  for (const auto& r : m_memory.regions()) {
    kvm_userspace_memory_region region{};
    region.slot = slot;
    region.guest_phys_addr = r.gpa;
    region.memory_size = r.size;
    region.userspace_addr = reinterpret_cast<uint64_t>(r.host);
    if (ioctl(m_vm.get(), KVM_SET_USER_MEMORY_REGION, &region) < 0)
      return Error::from_errno(
          fmt::format("KVM_SET_USER_MEMORY_REGION slot {} ({:#x}+{:#x})", slot, r.gpa, r.size));
    ++slot;
  }

  if (ioctl(m_vm.get(), KVM_CREATE_IRQCHIP, 0) < 0)
    return Error::from_errno("KVM_CREATE_IRQCHIP");
  if (m_options.create_pit) {
    kvm_pit_config pit{};
    pit.flags = KVM_PIT_SPEAKER_DUMMY;
    if (ioctl(m_vm.get(), KVM_CREATE_PIT2, &pit) < 0)
      return Error::from_errno("KVM_CREATE_PIT2");
  }

  // KVM_GET_SUPPORTED_CPUID fails with E2BIG until the buffer is large enough.
  for (uint32_t n = 64; n <= 4096; n *= 2) {
    std::vector<uint8_t> buf(sizeof(CpuidHeader) + n * sizeof(kvm_cpuid_entry2));
    auto* header = reinterpret_cast<CpuidHeader*>(buf.data());
    header->nent = n;
    if (ioctl(m_kvm.get(), kGetSupportedCpuid, buf.data()) == 0) {
      m_supported_cpuid.resize(std::min(header->nent, n));
      std::memcpy(m_supported_cpuid.data(), buf.data() + sizeof(CpuidHeader),
                  m_supported_cpuid.size() * sizeof(kvm_cpuid_entry2));
      break;
    }
    if (errno != E2BIG) return Error::from_errno("KVM_GET_SUPPORTED_CPUID");
  }
  if (m_supported_cpuid.empty()) return Error("KVM_GET_SUPPORTED_CPUID: more than 4096 entries");
  m_msr_index_list = TRY(get_msr_index_list(m_kvm.get()));
  // KVM emulates the local APIC's TSC-deadline mode but leaves the CPUID bit (leaf 0x1
  // ECX[24]) to userspace (KVM API: KVM_CAP_TSC_DEADLINE_TIMER). Arming it is one MSR write
  // that KVM handles on its fast path, cheaper than the one-shot mode's count register.
  if (ioctl(m_kvm.get(), KVM_CHECK_EXTENSION, KVM_CAP_TSC_DEADLINE_TIMER) > 0) {
    for (auto& e : m_supported_cpuid)
      if (e.function == 0x1) e.ecx |= 1u << 24;
  }
  return ok();
}

Result<std::unique_ptr<Vcpu>> KvmVm::create_vcpu(unsigned index) {
  if (index >= m_options.cpus)
    return Error::format("vCPU {}: the VM was created for {} vCPUs", index, m_options.cpus);
  UniqueFd fd(ioctl(m_vm.get(), KVM_CREATE_VCPU, static_cast<unsigned long>(index)));
  if (!fd.valid()) return Error::from_errno(fmt::format("KVM_CREATE_VCPU {}", index));
  auto vcpu = TRY(KvmVcpu::create(std::move(fd), index, m_run_size, m_msr_index_list));
  TRY(vcpu->set_cpuid(cpuid_for_vcpu(m_supported_cpuid, index, m_options.cpus)));
  TRY(vcpu->set_boot_msrs());
  TRY(vcpu->set_fpu_defaults());
  TRY(vcpu->set_lapic_lints());
  if (index == 0) {
    if (m_coalesced_page > 0)
      m_coalesced_ring = static_cast<kvm_coalesced_mmio_ring*>(vcpu->mapping_page(m_coalesced_page));
    TRY(vcpu->set_entry(m_boot_entry));
    const int khz = ioctl(vcpu->fd(), KVM_GET_TSC_KHZ, 0);
    if (khz > 0) {
      m_tsc_khz = static_cast<uint32_t>(khz);
      spdlog::debug("kvm: guest TSC at {} kHz", m_tsc_khz);
    }
  }
  return std::unique_ptr<Vcpu>(std::move(vcpu));
}

Result<void> KvmVm::set_coalesced_pio(uint16_t port, uint32_t size, bool on) {
  if (!coalesced_pio_supported()) return ok();
  kvm_coalesced_mmio_zone zone{};
  zone.addr = port;
  zone.size = size;
  zone.pio = 1;
  if (ioctl(m_vm.get(), on ? KVM_REGISTER_COALESCED_MMIO : KVM_UNREGISTER_COALESCED_MMIO, &zone) < 0)
    return Error::from_errno(fmt::format("KVM_{}REGISTER_COALESCED_MMIO port {:#x}+{}",
                                         on ? "" : "UN", port, size));
  return ok();
}

size_t KvmVm::drain_coalesced(const std::function<void(uint64_t, unsigned, uint64_t)>& write) {
  kvm_coalesced_mmio_ring* ring = m_coalesced_ring;
  if (!ring) return 0;
  // KVM's producer side: entries [first, last) are filled; KVM advances `last` after
  // writing an entry, we advance `first` after consuming one (Documentation/virt/kvm/api.rst).
  std::atomic_ref<uint32_t> last(ring->last);
  std::atomic_ref<uint32_t> first(ring->first);
  if (first.load(std::memory_order_relaxed) == last.load(std::memory_order_acquire)) return 0;
  const auto page_size = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  const auto capacity =
      static_cast<uint32_t>((page_size - sizeof(uint32_t) * 2) / sizeof(kvm_coalesced_mmio));
  auto* entries = reinterpret_cast<kvm_coalesced_mmio*>(reinterpret_cast<uint8_t*>(ring) +
                                                        sizeof(uint32_t) * 2);
  std::lock_guard lock(m_coalesced_mutex);
  size_t n = 0;
  uint32_t at = first.load(std::memory_order_relaxed);
  while (at != last.load(std::memory_order_acquire)) {
    if (at >= capacity) {  // KVM never does this; do not follow it out of the page
      DOPPEL_GUEST_WARN("kvm: coalesced ring index {} out of range", at);
      break;
    }
    const kvm_coalesced_mmio& e = entries[at];
    uint64_t value = 0;
    const unsigned len = e.len <= 8 ? e.len : 8;
    std::memcpy(&value, e.data, len);
    write(e.phys_addr, len, value);
    at = (at + 1) % capacity;
    first.store(at, std::memory_order_release);
    ++n;
  }
  return n;
}

Result<std::unique_ptr<KvmIrqLine>> KvmVm::irq_line(uint32_t gsi) {
  constexpr uint32_t kIoApicPins = 24;
  if (gsi >= kIoApicPins) return Error::format("IRQ {}: the IOAPIC has pins 0 to 23", gsi);
  return std::make_unique<KvmIrqLine>(m_vm.get(), gsi);
}

Result<void> KvmVm::add_ioeventfd(uint64_t addr, unsigned len, std::optional<uint64_t> datamatch,
                                  int eventfd, bool pio) {
  kvm_ioeventfd io{};
  io.addr = addr;
  io.len = len;
  io.fd = eventfd;
  if (pio) io.flags |= KVM_IOEVENTFD_FLAG_PIO;
  if (datamatch) {
    io.flags |= KVM_IOEVENTFD_FLAG_DATAMATCH;
    io.datamatch = *datamatch;
  }
  if (ioctl(m_vm.get(), KVM_IOEVENTFD, &io) < 0)
    return Error::from_errno(fmt::format("KVM_IOEVENTFD at {:#x} ({} bytes)", addr, len));
  return ok();
}

Result<void> KvmVm::add_irqfd(uint32_t gsi, int eventfd, std::optional<int> resample_fd) {
  kvm_irqfd irqfd{};
  irqfd.fd = static_cast<uint32_t>(eventfd);
  irqfd.gsi = gsi;
  if (resample_fd) {
    if (ioctl(m_vm.get(), KVM_CHECK_EXTENSION, KVM_CAP_IRQFD_RESAMPLE) <= 0)
      return Error("KVM lacks KVM_CAP_IRQFD_RESAMPLE (level-triggered irqfd)");
    irqfd.flags = KVM_IRQFD_FLAG_RESAMPLE;
    irqfd.resamplefd = static_cast<uint32_t>(*resample_fd);
  }
  if (ioctl(m_vm.get(), KVM_IRQFD, &irqfd) < 0)
    return Error::from_errno(fmt::format("KVM_IRQFD gsi {}", gsi));
  return ok();
}

Result<void> KvmVm::set_dirty_logging(bool on) {
  // KVM API, KVM_SET_USER_MEMORY_REGION: an existing slot's flags may be changed as long as
  // its guest address, size and userspace address stay the same (slots as set_up_vm() made
  // them: slot i is region i).
  uint32_t slot = 0;
  for (const auto& r : m_memory.regions()) {
    kvm_userspace_memory_region region{};
    region.slot = slot;
    region.flags = on ? KVM_MEM_LOG_DIRTY_PAGES : 0;
    region.guest_phys_addr = r.gpa;
    region.memory_size = r.size;
    region.userspace_addr = reinterpret_cast<uint64_t>(r.host);
    if (ioctl(m_vm.get(), KVM_SET_USER_MEMORY_REGION, &region) < 0)
      return Error::from_errno(fmt::format("KVM_SET_USER_MEMORY_REGION slot {} ({:#x}+{:#x}): "
                                           "dirty logging {}", slot, r.gpa, r.size,
                                           on ? "on" : "off"));
    ++slot;
  }
  m_dirty_logging = on;
  return ok();
}

Result<void> KvmVm::fetch_dirty_log(GuestMemory& memory) {
  constexpr uint64_t kPage = 4096;  // KVM logs guest frames; x86's are 4 KiB
  uint32_t slot = 0;
  for (const auto& r : m_memory.regions()) {
    // KVM API, KVM_GET_DIRTY_LOG: one bit per page of the slot, bit 0 the slot's first page,
    // in an array of longs (64-bit here) rounded up to whole longs.
    const uint64_t pages = r.size / kPage;
    std::vector<uint64_t> bitmap(static_cast<size_t>((pages + 63) / 64), 0);
    kvm_dirty_log log{};
    log.slot = slot;
    log.dirty_bitmap = bitmap.data();
    if (ioctl(m_vm.get(), KVM_GET_DIRTY_LOG, &log) < 0) {
      const int e = errno;
      return Error::from_errno(fmt::format("KVM_GET_DIRTY_LOG slot {} ({:#x}+{:#x}){}", slot,
                                           r.gpa, r.size,
                                           e == ENOENT ? " (is dirty logging on?)" : ""), e);
    }
    // Runs of dirty pages, each marked with one call.
    uint64_t run_start = 0, run_len = 0;
    for (uint64_t w = 0; w < bitmap.size(); ++w) {
      uint64_t bits = bitmap[w];
      if (bits == 0 && run_len == 0) continue;
      for (unsigned b = 0; b < 64; ++b) {
        const uint64_t page = w * 64 + b;
        if (page >= pages) break;
        if ((bits >> b) & 1) {
          if (run_len == 0) run_start = page;
          ++run_len;
        } else if (run_len) {
          memory.mark_dirty(r.gpa + run_start * kPage, run_len * kPage);
          run_len = 0;
          if ((bits >> b) == 0) break;  // nothing more in this word
        }
      }
    }
    if (run_len) memory.mark_dirty(r.gpa + run_start * kPage, run_len * kPage);
    ++slot;
  }
  return ok();
}

Result<KvmVmState> KvmVm::save() const {
  KvmVmState s;
  auto get_chip = [&](kvm_irqchip& chip, uint32_t id, const char* name) -> Result<void> {
    chip = {};
    chip.chip_id = id;
    if (ioctl(m_vm.get(), KVM_GET_IRQCHIP, &chip) < 0)
      return Error::from_errno(fmt::format("KVM_GET_IRQCHIP ({})", name));
    return ok();
  };
  TRY(get_chip(s.pic_master, KVM_IRQCHIP_PIC_MASTER, "PIC master"));
  TRY(get_chip(s.pic_slave, KVM_IRQCHIP_PIC_SLAVE, "PIC slave"));
  TRY(get_chip(s.ioapic, KVM_IRQCHIP_IOAPIC, "IOAPIC"));
  s.has_pit = m_options.create_pit;
  if (s.has_pit && ioctl(m_vm.get(), KVM_GET_PIT2, &s.pit) < 0)
    return Error::from_errno("KVM_GET_PIT2");
  s.clock = TRY(get_clock());
  return s;
}

Result<void> KvmVm::restore(const KvmVmState& s) {
  if (s.version != KvmVmState::kVersion)
    return Error::format("kvm: VM state version {} is not supported (expected {})", s.version,
                         KvmVmState::kVersion);
  if (s.has_pit != m_options.create_pit)
    return Error::format("kvm: the saved VM {} an i8254 PIT, this one {}",
                         s.has_pit ? "had" : "had no", m_options.create_pit ? "has" : "has none");
  auto set_chip = [&](const kvm_irqchip& chip, uint32_t id, const char* name) -> Result<void> {
    if (chip.chip_id != id)
      return Error::format("kvm: saved {} state has chip id {}, expected {}", name, chip.chip_id, id);
    if (ioctl(m_vm.get(), KVM_SET_IRQCHIP, &chip) < 0)
      return Error::from_errno(fmt::format("KVM_SET_IRQCHIP ({})", name));
    return ok();
  };
  TRY(set_chip(s.pic_master, KVM_IRQCHIP_PIC_MASTER, "PIC master"));
  TRY(set_chip(s.pic_slave, KVM_IRQCHIP_PIC_SLAVE, "PIC slave"));
  TRY(set_chip(s.ioapic, KVM_IRQCHIP_IOAPIC, "IOAPIC"));
  if (s.has_pit && ioctl(m_vm.get(), KVM_SET_PIT2, &s.pit) < 0)
    return Error::from_errno("KVM_SET_PIT2");
  TRY(set_clock(s.clock));
  return ok();
}

Result<kvm_clock_data> KvmVm::get_clock() const {
  kvm_clock_data clock{};
  if (ioctl(m_vm.get(), KVM_GET_CLOCK, &clock) < 0) return Error::from_errno("KVM_GET_CLOCK");
  return clock;
}

Result<void> KvmVm::set_clock(const kvm_clock_data& clock) {
  kvm_clock_data data{};  // flags 0 (kvm_vm.h)
  data.clock = clock.clock;
  if (ioctl(m_vm.get(), KVM_SET_CLOCK, &data) < 0)
    return Error::from_errno(fmt::format("KVM_SET_CLOCK {}", clock.clock));
  return ok();
}

}  // namespace doppel::kvm
