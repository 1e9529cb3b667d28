// VmConfig: everything that describes one VM. A JSON VM file (`doppel run --config vm.json`)
// and the command-line flags both build this one struct (Firecracker's rule: one config
// struct per resource, shared by every front end).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "backends/disk_backend.h"
#include "backends/rate_limiter.h"
#include "backends/slirp_options.h"
#include "base/result.h"
#include "vmm/resource_limits.h"

namespace doppel {

enum class Arch { kRiscv64, kX86_64 };
enum class EngineKind { kEmu, kKvm };
enum class OnReboot { kExit, kRestart };
// riscv64: what the harts run after the firmware. kKernel: the kernel (and initrd) given;
// kDisk: a disk loader (by default Debian's U-Boot, kUbootSmode) that boots what it finds
// on the first virtio disk.
enum class BootFrom { kKernel, kDisk };

std::string_view to_string(Arch arch);
std::string_view to_string(EngineKind engine);
Result<Arch> parse_arch(std::string_view text);
Result<EngineKind> parse_engine(std::string_view text);

using MacAddress = std::array<uint8_t, 6>;

struct DiskConfig {
  std::string path;
  bool read_only = false;
  DiskFormat format = DiskFormat::kAuto;  // kAuto: what the image's header says
  // Image locks (backends/image_lock.h); false (,locking=off) lets another VM open it too.
  bool locking = true;
  RateLimiterConfig rate_limiter{};       // vmm/rate_limiter_config.h
};

struct NetConfig {
  std::string tap;                 // TAP interface name; created if it does not exist
  std::optional<MacAddress> mac;   // generated when absent
  RateLimiterConfig rx_rate_limiter{}, tx_rate_limiter{};
  // User-mode networking (libslirp, backends/slirp.h) instead of a TAP; tap is then empty.
  bool user = false;
  std::vector<HostFwd> hostfwds;   // user only
};

// A second console stream (virtio-console): to a file, or to a Unix socket.
struct ConsoleConfig {
  enum class Kind { kFile, kSocket } kind = Kind::kFile;
  std::string path;
};

// virtio-vsock with Firecracker's host side (devices/virtio/virtio_vsock.h).
struct VsockConfig {
  uint32_t cid = 3;   // the guest's context id: 3 to 2^32-2 (0-2 are reserved, -1 is "any")
  std::string uds;    // host Unix socket; guest connections to port P go to "<uds>_P"
};

struct VmConfig {
  Arch arch = Arch::kRiscv64;
  EngineKind engine = EngineKind::kEmu;
  std::string kernel;
  std::string initrd;       // optional: empty means none
  // riscv64: OpenSBI fw_dynamic or fw_jump, any M-mode binary or ELF, or kFirmwareNone (the
  // kernel starts in M-mode, as QEMU's -bios none).
  std::string firmware;
  BootFrom boot_from = BootFrom::kKernel;
  std::string cmdline;
  unsigned cpus = 1;
  uint64_t memory = 256ull << 20;  // bytes
  // Guest RAM is a shared memory file (GuestMemory::create's shared), so that a local live
  // update hands it to the new process instead of copying it.
  bool memory_shared = false;
  std::vector<DiskConfig> disks;
  std::vector<NetConfig> nets;
  std::optional<ConsoleConfig> console2;
  std::optional<VsockConfig> vsock;
  OnReboot on_reboot = OnReboot::kExit;
  // Enforced by a cgroup around the whole process (vmm/resource_limits.h).
  ResourceLimits limits;
  // Per-thread seccomp filters for the VMM (sandbox/vmm_seccomp.h); off only for debugging.
  bool seccomp = true;
  // riscv64 emulator: the block translator (engines/emu/riscv64/jit/), x86-64 hosts only;
  // the interpreter otherwise. jit_cache: its code cache, shared out among the harts.
#if defined(__x86_64__)
  bool jit = true;
#else
  bool jit = false;
#endif
  uint64_t jit_cache = 64ull << 20;
};

constexpr unsigned kMaxCpus = 8;
constexpr std::string_view kFirmwareNone = "none";
// Debian's u-boot-qemu: U-Boot for QEMU's virt machine, to run in S-mode after OpenSBI.
constexpr const char* kUbootSmode = "/usr/lib/u-boot/qemu-riscv64_smode/u-boot.bin";

// --jit / "jit": "on" or "off".
Result<bool> parse_jit(std::string_view text);
// The JIT's code cache: at least 1 MiB, at most 1 GiB.
Result<void> check_jit_cache(uint64_t bytes);

// The firmware path to load: empty for kFirmwareNone.
std::string firmware_to_load(const VmConfig& config);
Result<BootFrom> parse_boot_from(std::string_view text);
std::string_view to_string(BootFrom from);
// --boot disk: the kernel is the disk loader, U-Boot unless one was given; no initrd.
Result<void> apply_boot_from(VmConfig& config);
constexpr uint64_t kMinMemory = 16ull << 20;

// "--memory" syntax: a number of bytes with an optional K, M or G suffix (binary units).
// A bare number is MiB, as in QEMU's -m.
Result<uint64_t> parse_memory_size(std::string_view text);
// A disk size: a number of bytes with an optional K, M, G or T suffix (binary units). A bare
// number is bytes, as in qemu-img.
Result<uint64_t> parse_disk_size(std::string_view text);
// "--disk PATH[,ro][,format=raw|qcow2][,bw=SIZE/MS[+BURST]][,ops=N/MS[+BURST]]"
Result<DiskConfig> parse_disk_spec(std::string_view text);
// "--net tap=NAME[,mac=aa:bb:cc:dd:ee:ff][,rx_bw=..][,rx_ops=..][,tx_bw=..][,tx_ops=..]" or
// "--net user[,hostfwd=tcp:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT]...[,mac=...][,rx_bw=..]..."
Result<NetConfig> parse_net_spec(std::string_view text);
Result<MacAddress> parse_mac(std::string_view text);
// "--vsock cid=N,uds=PATH"
Result<VsockConfig> parse_vsock_spec(std::string_view text);

// Applies a JSON VM file onto `config` (keys present override). Unknown keys, wrong types
// and out-of-range values are errors naming the key path: "vm.json: machine.cpus: must be
// between 1 and 8, got 0".
Result<void> apply_json(VmConfig& config, const nlohmann::json& doc);
Result<VmConfig> load_vm_file(const std::string& path, VmConfig defaults);

// Checks counts, sizes and combinations (no files). host_memory is the host's physical
// memory in bytes (0: do not check).
Result<void> validate_ranges(const VmConfig& config, uint64_t host_memory);
// validate_ranges, and that every named file exists and is readable (writable for rw disks).
Result<void> validate(const VmConfig& config, uint64_t host_memory);

nlohmann::json to_json(const VmConfig& config);

// Each architecture's natural engine (emulation for riscv64, KVM for x86_64) and default
// kernel command line, shared by the command line and the API.
EngineKind natural_engine(Arch arch);
std::string default_cmdline(Arch arch);
// The host's physical memory in bytes (0 if unknown), for validate().
uint64_t host_memory_bytes();

}  // namespace doppel
