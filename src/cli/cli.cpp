#include "cli/cli.h"

#include <stdio.h>
#include <sys/wait.h>
#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <iostream>
#include <optional>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "backends/disk_backend.h"
#include "backends/endpoint.h"
#include "base/log.h"
#include "vmm/exit_codes.h"
#include "api/api_client.h"
#include "api/api_server.h"
#include "cli/jail_cli.h"
#include "cli/vm_limits.h"
#include "gdb/gdb_server.h"
#include "sandbox/vmm_seccomp.h"
#include "vmm/console.h"
#include "vmm/vm_config.h"
#include "vmm/vmm_service.h"

#ifndef DOPPEL_SOURCE_DIR
#define DOPPEL_SOURCE_DIR ""
#endif
#ifndef DOPPEL_VERSION
#define DOPPEL_VERSION "0.0.0"
#endif

namespace doppel {
namespace {

// Flags of `doppel run`, before they are merged into a VmConfig. Only flags the user gave
// override the VM file and the guest kit's defaults.
struct RunFlags {
  std::string config_file;
  std::optional<std::string> arch, engine, kernel, initrd, firmware, cmdline, memory, on_reboot,
      console2, boot, vsock, seccomp, jit, jit_cache;
  LimitFlags limits;  // cli/vm_limits.h
  std::optional<int64_t> cpus;  // signed: `--cpus -1` is refused as -1
  bool memory_shared = false;
  std::vector<std::string> disks, nets;
};

// What every VM-running command shares: the control plane.
struct ServeFlags {
  std::string api_sock;
  std::string id = "doppel";
  std::string migrate_from;  // `run`: the VM comes live from a source there
  std::string gdb;           // `run`: the gdb stub's endpoint
  bool gdb_wait = false;     // `run`: hold the VM until the debugger continues
  std::optional<std::string> seccomp;  // on or off; default: the VM file's, else on
};

// --seccomp on|off.
Result<bool> parse_on_off(const std::string& flag, const std::string& value) {
  if (value == "on") return true;
  if (value == "off") return false;
  return Error::format("{} {}: expected on or off", flag, value);
}

// Flags of `doppel restore DIR` (and `doppel run --restore DIR`).
struct RestoreFlags {
  std::string dir;
  std::string mem_file;  // default: the snapshot's own
  std::vector<std::string> disks, nets;
  std::optional<std::string> vsock;
  bool paused = false;
};

// The guest kit's script, from the source tree this binary was built from, or $DOPPEL_GUEST_KIT.
std::string guest_kit_script() {
  if (const char* env = getenv("DOPPEL_GUEST_KIT")) return env;
  return std::string(DOPPEL_SOURCE_DIR) + "/guest/build.sh";
}

// Runs `guest/build.sh ARGS...` and returns its last line of output (the kit directory).
Result<std::string> guest_kit_dir(Arch arch) {
  const std::string script = guest_kit_script();
  if (access(script.c_str(), X_OK) != 0) return Error::from_errno(fmt::format("guest kit {}", script));
  const std::string command =
      fmt::format("'{}' --arch {} --print-dir", script, to_string(arch));
  FILE* pipe = popen(command.c_str(), "r");
  if (!pipe) return Error::from_errno(command);
  std::string output;
  char buffer[4096];
  while (size_t n = fread(buffer, 1, sizeof buffer, pipe)) output.append(buffer, n);
  const int status = pclose(pipe);
  if (status != 0) return Error::format("{}: failed (status {})", command, status);
  while (!output.empty() && (output.back() == '\n' || output.back() == ' ')) output.pop_back();
  const size_t last = output.rfind('\n');
  return last == std::string::npos ? output : output.substr(last + 1);
}

// Fills kernel/initrd/firmware from the guest kit where neither the VM file nor a flag did:
// each flag overrides only its own part (--kernel alone keeps the kit's initrd, if the kit
// is built; a bare-metal program, --firmware none, gets none).
Result<void> apply_guest_kit_defaults(VmConfig& config) {
  // --boot disk: the kernel is U-Boot (apply_boot_from), not the kit's.
  const bool need_kernel = config.kernel.empty() && config.boot_from == BootFrom::kKernel;
  const bool need_firmware = config.arch == Arch::kRiscv64 && config.firmware.empty();
  const bool want_initrd = !need_kernel && config.initrd.empty() &&
                           config.boot_from == BootFrom::kKernel && config.firmware != kFirmwareNone;
  if (!need_kernel && !need_firmware && !want_initrd) return {};
  // The kit's fw_dynamic.bin is a copy of Debian's: without a kit, use the package's.
  constexpr const char* kDebianFwDynamic = "/usr/lib/riscv64-linux-gnu/opensbi/generic/fw_dynamic.bin";
  if (!need_kernel && !want_initrd && access(kDebianFwDynamic, R_OK) == 0) {
    config.firmware = kDebianFwDynamic;
    return {};
  }
  auto kit = guest_kit_dir(config.arch);
  if (!need_kernel && (!kit.ok() || !std::filesystem::is_regular_file(*kit + "/initrd.cpio.gz"))) {
    // --kernel alone and no kit: no initrd to keep.
    if (need_firmware && access(kDebianFwDynamic, R_OK) == 0) {
      config.firmware = kDebianFwDynamic;
      return {};
    }
    if (!need_firmware) return {};
  }
  const std::string dir = TRY(std::move(kit));
  if (!std::filesystem::is_directory(dir))
    return Error::format(
        "no --kernel given and the {0} guest kit is not built ({1}): run `build/doppel guest build "
        "--arch {0}` or give --kernel",
        to_string(config.arch), dir);
  if (need_kernel) config.kernel = dir + "/kernel";
  if ((need_kernel || want_initrd) && config.initrd.empty()) config.initrd = dir + "/initrd.cpio.gz";
  if (need_firmware) config.firmware = dir + "/fw_dynamic.bin";
  return {};
}

Result<VmConfig> build_config(const RunFlags& flags) {
  VmConfig config;
  if (!flags.config_file.empty()) config = TRY(load_vm_file(flags.config_file, config));
  const bool engine_from_file = !flags.config_file.empty() && config.engine != VmConfig{}.engine;

  if (flags.arch) config.arch = TRY([&]() -> Result<Arch> {
      auto a = parse_arch(*flags.arch);
      if (!a) return a.error().context("--arch");
      return a;
    }());
  if (flags.engine) {
    auto e = parse_engine(*flags.engine);
    if (!e) return e.error().context("--engine");
    config.engine = *e;
  } else if (!engine_from_file) {
    // Each architecture's natural engine: emulation for riscv64, KVM for x86_64.
    config.engine = natural_engine(config.arch);
  }
  if (flags.kernel) config.kernel = *flags.kernel;
  if (flags.initrd) config.initrd = *flags.initrd;
  if (flags.firmware) config.firmware = *flags.firmware;
  if (flags.boot) {
    auto from = parse_boot_from(*flags.boot);
    if (!from) return from.error().context("--boot");
    config.boot_from = *from;
  }
  if (flags.cmdline) config.cmdline = *flags.cmdline;
  if (flags.cpus) {
    if (*flags.cpus < 1 || *flags.cpus > kMaxCpus)
      return Error::format("--cpus {}: must be between 1 and {}", *flags.cpus, kMaxCpus);
    config.cpus = static_cast<unsigned>(*flags.cpus);
  }
  if (flags.memory) {
    auto m = parse_memory_size(*flags.memory);
    if (!m) return m.error().context("--memory");
    config.memory = *m;
  }
  if (flags.memory_shared) config.memory_shared = true;
  // DOPPEL_JIT=on|off: the default of --jit (the test suites run each way with it).
  if (const char* env = std::getenv("DOPPEL_JIT"); env && *env && !flags.jit)
    config.jit = TRY(parse_jit(env).context("DOPPEL_JIT"));
  if (flags.jit) config.jit = TRY(parse_jit(*flags.jit).context("--jit"));
  if (flags.jit_cache) {
    const uint64_t bytes = TRY(parse_memory_size(*flags.jit_cache).context("--jit-cache"));
    TRY(check_jit_cache(bytes).context("--jit-cache"));
    config.jit_cache = bytes;
  }
  if (flags.seccomp) config.seccomp = TRY(parse_on_off("--seccomp", *flags.seccomp));
  if (flags.on_reboot) {
    if (*flags.on_reboot == "exit") config.on_reboot = OnReboot::kExit;
    else if (*flags.on_reboot == "restart") config.on_reboot = OnReboot::kRestart;
    else return Error::format("--on-reboot {}: unknown value (exit, restart)", *flags.on_reboot);
  }
  if (!flags.disks.empty()) config.disks.clear();
  for (const auto& spec : flags.disks) {
    auto d = parse_disk_spec(spec);
    if (!d) return d.error().context("--disk");
    config.disks.push_back(*d);
  }
  if (!flags.nets.empty()) config.nets.clear();
  for (const auto& spec : flags.nets) {
    auto n = parse_net_spec(spec);
    if (!n) return n.error().context("--net");
    config.nets.push_back(*n);
  }
  if (flags.console2) {
    const std::string& s = *flags.console2;
    ConsoleConfig c;
    if (s.starts_with("file=")) c = {ConsoleConfig::Kind::kFile, s.substr(5)};
    else if (s.starts_with("socket=")) c = {ConsoleConfig::Kind::kSocket, s.substr(7)};
    else return Error::format("--console2 {}: expected file=PATH or socket=PATH", s);
    if (c.path.empty()) return Error::format("--console2 {}: the path is empty", s);
    config.console2 = c;
  }
  if (flags.vsock) {
    auto v = parse_vsock_spec(*flags.vsock);
    if (!v) return v.error().context("--vsock");
    config.vsock = *v;
  }

  TRY(apply_limit_flags(flags.limits, config.limits));

  // Check what can be checked before looking for the guest kit, so that a bad flag is
  // reported as itself.
  if (auto r = validate_ranges(config, host_memory_bytes()); !r) return r.error();
  TRY(apply_guest_kit_defaults(config));
  if (config.initrd == "none") config.initrd.clear();  // --initrd none: not even the kit's
  TRY(apply_boot_from(config));
  if (config.cmdline.empty()) config.cmdline = default_cmdline(config.arch);
  TRY(validate(config, host_memory_bytes()));
  return config;
}

// Runs the service until its VM ends: with an API server when asked for one.
int serve(const ServeFlags& serve_flags, std::optional<VmConfig> boot,
          std::optional<SnapshotLoadRequest> restore) {
  // Decided before any thread starts: every thread installs its filter as it starts.
  bool seccomp = boot ? boot->seccomp : true;
  if (serve_flags.seccomp) {
    auto on = parse_on_off("--seccomp", *serve_flags.seccomp);
    if (!on) {
      fmt::print(stderr, "doppel: {}\n", on.error().message());
      return kExitError;
    }
    seccomp = *on;
  }
  if (seccomp) {
    if (auto r = sandbox::enable_vmm_seccomp(&Console::restore_terminal_now); !r) {
      fmt::print(stderr, "doppel: {}\n", r.error().message());
      return kExitError;
    }
  } else {
    spdlog::warn("seccomp is off (--seccomp off): the VMM's threads run without filters");
  }
  VmmService::Options options{serve_flags.id, DOPPEL_VERSION, true, {}, {}, seccomp};
  std::unique_ptr<gdb::GdbServer> gdb_server;
  if (!serve_flags.gdb.empty()) {
    auto server = gdb::GdbServer::create(serve_flags.gdb, serve_flags.gdb_wait);
    if (!server) {
      fmt::print(stderr, "doppel: --gdb: {}\n", server.error().message());
      return kExitError;
    }
    gdb_server = std::move(*server);
    options.before_run = [&](Machine& m) { return gdb_server->attach_machine(m); };
    options.after_run = [&](int code) { gdb_server->detach_machine(code); };
  }
  auto service = VmmService::create(options);
  if (!service) {
    fmt::print(stderr, "doppel: {}\n", service.error().message());
    return kExitError;
  }
  std::unique_ptr<ApiServer> api;
  if (!serve_flags.api_sock.empty()) {
    auto server = ApiServer::create(serve_flags.api_sock, **service);
    if (!server) {
      fmt::print(stderr, "doppel: --api-sock: {}\n", server.error().message());
      return kExitError;
    }
    api = std::move(*server);
  }
  auto code = !serve_flags.migrate_from.empty() && boot
                  ? (*service)->run_incoming(*boot, serve_flags.migrate_from)
                  : (*service)->run(std::move(boot), std::move(restore));
  api.reset();  // no control call outlives the service
  if (!code) {
    fmt::print(stderr, "doppel: {}\n", code.error().message());
    return kExitError;
  }
  return *code;
}

int run_command(const RunFlags& flags, const ServeFlags& serve_flags, bool print_config) {
  auto config = build_config(flags);
  if (!config) {
    fmt::print(stderr, "doppel: {}\n", config.error().message());
    return kExitError;
  }
  if (print_config) {
    fmt::print("{}\n", to_json(*config).dump(2));
    return 0;
  }
  if (serve_flags.gdb_wait && serve_flags.gdb.empty()) {
    fmt::print(stderr, "doppel: --gdb-wait: needs --gdb tcp:HOST:PORT or unix:PATH\n");
    return kExitError;
  }
  if (!serve_flags.gdb.empty()) {
    if (auto e = parse_endpoint(serve_flags.gdb); !e) {
      fmt::print(stderr, "doppel: --gdb: {}\n", e.error().message());
      return kExitError;
    }
  }
  if (!serve_flags.migrate_from.empty()) {
    if (auto e = parse_endpoint(serve_flags.migrate_from); !e) {
      fmt::print(stderr, "doppel: --migrate-from: {}\n", e.error().message());
      return kExitError;
    }
  }
  if (config->limits.any()) {
    // The whole process in its own cgroup, with a small parent outside it (cli/vm_limits.h).
    auto code = run_limited(*config, fmt::format("/doppel/{}-{}", serve_flags.id, getpid()),
                            fmt::format("VM '{}'", serve_flags.id), 0, nullptr,
                            [&] { return serve(serve_flags, *config, std::nullopt); });
    if (!code) {
      fmt::print(stderr, "doppel: resource limits: {}\n", code.error().message());
      return kExitError;
    }
    return *code;
  }
  return serve(serve_flags, std::move(*config), std::nullopt);
}

int restore_command(const RestoreFlags& flags, const ServeFlags& serve_flags) {
  const SnapshotFiles files = snapshot_dir_files(flags.dir);
  SnapshotLoadRequest request;
  request.snapshot_path = files.state_path;
  request.mem_file_path = flags.mem_file;
  request.resume_vm = !flags.paused;
  auto fail = [](const Error& e) {
    fmt::print(stderr, "doppel: {}\n", e.message());
    return kExitError;
  };
  if (!flags.disks.empty()) {
    request.disks.emplace();
    for (const auto& spec : flags.disks) {
      auto d = parse_disk_spec(spec);
      if (!d) return fail(d.error().context("--disk"));
      request.disks->push_back(*d);
    }
  }
  if (!flags.nets.empty()) {
    request.nets.emplace();
    for (const auto& spec : flags.nets) {
      auto n = parse_net_spec(spec);
      if (!n) return fail(n.error().context("--net"));
      request.nets->push_back(*n);
    }
  }
  if (flags.vsock) {
    auto v = parse_vsock_spec(*flags.vsock);
    if (!v) return fail(v.error().context("--vsock"));
    request.vsock = *v;
  }
  // Check the snapshot before anything starts: a bad one is reported as itself.
  auto snapshot = snapshot_config(request);
  if (!snapshot) return fail(snapshot.error());
  if (snapshot->limits.any()) {
    // The snapshotted VM's limits hold for the restored one (cli/vm_limits.h).
    if (request.disks) snapshot->disks = *request.disks;
    auto code = run_limited(*snapshot, fmt::format("/doppel/{}-{}", serve_flags.id, getpid()),
                            fmt::format("VM '{}'", serve_flags.id), 0, nullptr,
                            [&] { return serve(serve_flags, std::nullopt, request); });
    if (!code) return fail(code.error().context("resource limits"));
    return *code;
  }
  return serve(serve_flags, std::nullopt, std::move(request));
}

int snapshot_merge_command(const std::string& dir) {
  if (auto r = merge_snapshot(dir); !r) {
    fmt::print(stderr, "doppel: snapshot merge: {}\n", r.error().message());
    return kExitError;
  }
  return 0;
}

// Flags of `doppel disk create` and `doppel disk info`.
struct DiskFlags {
  std::string path;
  std::string size;
  std::string backing;
  std::string backing_format;
};

int disk_create_command(const DiskFlags& flags) {
  auto fail = [](const Error& e) {
    fmt::print(stderr, "doppel: disk create: {}\n", e.message());
    return kExitError;
  };
  DiskCreateOptions options;
  if (!flags.size.empty()) {
    auto size = parse_disk_size(flags.size);
    if (!size) return fail(size.error().context("--size"));
    options.size = *size;
  }
  options.backing = flags.backing;
  if (!flags.backing_format.empty()) {
    auto f = parse_disk_format(flags.backing_format);
    if (!f) return fail(f.error().context("--backing-format"));
    options.backing_format = *f;
  }
  if (auto r = create_qcow2(flags.path, options); !r) return fail(r.error());
  return 0;
}

int disk_info_command(const DiskFlags& flags) {
  auto chain = disk_info(flags.path);
  if (!chain) {
    fmt::print(stderr, "doppel: disk info: {}\n", chain.error().message());
    return kExitError;
  }
  fmt::print("{}", format_disk_info(*chain));
  return 0;
}

int guest_build_command(const std::string& arch_text) {
  auto arch = parse_arch(arch_text);
  if (!arch) {
    fmt::print(stderr, "doppel: --arch: {}\n", arch.error().message());
    return kExitError;
  }
  const std::string script = guest_kit_script();
  if (access(script.c_str(), X_OK) != 0) {
    fmt::print(stderr, "doppel: guest kit {}: {}\n", script, strerror(errno));
    return kExitError;
  }
  const std::string a(to_string(*arch));
  execl(script.c_str(), script.c_str(), "--arch", a.c_str(), static_cast<char*>(nullptr));
  fmt::print(stderr, "doppel: {}: {}\n", script, strerror(errno));
  return kExitError;
}

// `doppel guest disk`: guest/disk.sh writes the image from the kit's files.
int guest_disk_command(const std::string& arch_text, const std::string& output) {
  auto fail = [](const std::string& message) {
    fmt::print(stderr, "doppel: guest disk: {}\n", message);
    return kExitError;
  };
  auto arch = parse_arch(arch_text);
  if (!arch) return fail(arch.error().context("--arch").message());
  if (*arch != Arch::kRiscv64)
    return fail(fmt::format("--arch {}: only riscv64 boots from a disk (through U-Boot)", arch_text));
  auto dir = guest_kit_dir(*arch);
  if (!dir) return fail(dir.error().message());
  if (!std::filesystem::is_regular_file(*dir + "/kernel"))
    return fail(fmt::format("the {0} guest kit is not built ({1}): run `doppel guest build --arch {0}`",
                            arch_text, *dir));
  const std::string script = std::string(DOPPEL_SOURCE_DIR) + "/guest/disk.sh";
  if (access(script.c_str(), X_OK) != 0) return fail(fmt::format("{}: {}", script, strerror(errno)));
  const std::string cmdline = default_cmdline(*arch);
  execl(script.c_str(), script.c_str(), "--kit", dir->c_str(), "--cmdline", cmdline.c_str(), "-o",
        output.c_str(), static_cast<char*>(nullptr));
  return fail(fmt::format("{}: {}", script, strerror(errno)));
}

}  // namespace

int cli_main(int argc, char** argv) {
  // A closed pipe (stdout read by `head`, a console socket's client gone) is an EPIPE the
  // writer handles, never a reason to kill the VM.
  ::signal(SIGPIPE, SIG_IGN);
  CLI::App app{
      "doppel: a virtual machine monitor.\n"
      "Runs 64-bit RISC-V guests on an emulator (--engine emu) and x86-64 guests on KVM "
      "(--engine kvm)."};
  app.require_subcommand(0, 1);
  std::string log_level = "warn";
  // `doppel --api-sock PATH` alone: no VM yet; the API builds one or loads a snapshot
  // (Firecracker's way of starting).
  ServeFlags serve_flags;
  app.add_option("--api-sock", serve_flags.api_sock,
                 "Serve the control API (HTTP on this Unix socket)");
  app.add_option("--id", serve_flags.id, "The instance id the API reports (default: doppel)");
  app.add_option("--seccomp", serve_flags.seccomp, "on (default) or off: per-thread seccomp filters on the VMM's threads (off: for debugging)");
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error or off")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "off"}));

  app.add_subcommand("version", "Print doppel's version");

  RunFlags flags;
  bool print_config = false;
  auto* run = app.add_subcommand("run", "Boot a VM");
  run->add_option("--config", flags.config_file, "A JSON VM file; flags override it")
      ->check(CLI::ExistingFile);
  run->add_option("--arch", flags.arch, "riscv64 (default) or x86_64");
  run->add_option("--engine", flags.engine, "emu (riscv64's default) or kvm (x86_64's default)");
  run->add_option("--initrd", flags.initrd, "Initial ramdisk, or none (default: the guest kit's)");
  run->add_option("--kernel", flags.kernel,
                  "Kernel: a Linux Image, an ELF or a raw binary (default: the guest kit's)");
  run->add_option("--firmware", flags.firmware,
                  "riscv64 M-mode firmware: OpenSBI fw_dynamic or fw_jump, any M-mode binary or "
                  "ELF, or none (the kernel starts in M-mode) (default: the guest kit's fw_dynamic)");
  run->add_option("--boot", flags.boot,
                  "kernel (default) or disk: riscv64 runs Debian's U-Boot after OpenSBI, which "
                  "boots extlinux.conf or EFI from the first --disk");
  run->add_option("--cmdline", flags.cmdline, "Kernel command line");
  run->add_option("--cpus", flags.cpus, "Number of vCPUs, 1 to 8 (default 1)");
  run->add_option("--memory", flags.memory, "Guest RAM, e.g. 512M or 1G (default 256M)");
  run->add_flag("--memory-shared", flags.memory_shared,
                "Guest RAM is a shared memory file: a live update over a unix: socket hands it "
                "to the new doppel instead of copying it");
  run->add_option("--disk", flags.disks,
                 "PATH[,ro][,format=raw|qcow2]: a disk image, raw or qcow2 (repeatable; the format "
                 "is read from the image unless given)");
  run->add_option("--net", flags.nets,
                  "tap=NAME[,mac=MAC] or user[,hostfwd=tcp:[HOSTADDR]:HOSTPORT-:GUESTPORT]...: a "
                  "network interface (repeatable)");
  run->add_option("--console2", flags.console2, "file=PATH or socket=PATH: a virtio console");
  run->add_option("--vsock", flags.vsock,
                  "cid=N,uds=PATH: virtio-vsock; host programs connect to PATH and write "
                  "\"CONNECT <port>\\n\", guest connections to CID 2 port P reach PATH_P");
  run->add_option("--cpu-quota", flags.limits.cpu_quota, "Share of one CPU the VM may use, e.g. 50% (a cgroup)");
  run->add_option("--memory-limit", flags.limits.memory_limit,
                  "Memory of the whole VM process (guest RAM and doppel), e.g. 512M; beyond it the "
                  "kernel ends this VM alone (exit code 6)");
  run->add_option("--io-limit", flags.limits.io_limit,
                  "bw=SIZE,iops=N (or rbw=, wbw=, riops=, wiops=): per second, on the block device "
                  "of each disk image (a cgroup)");
  run->add_option("--pids-limit", flags.limits.pids_limit, "Threads and processes of the VM process at most");
  run->add_option("--on-reboot", flags.on_reboot, "exit (default: exit code 3) or restart");
  run->add_option("--jit", flags.jit,
                  "on|off: riscv64 emulator, translate guest code to host code (default on for "
                  "x86-64 hosts; off: the interpreter)");
  run->add_option("--jit-cache", flags.jit_cache,
                  "SIZE: the JIT's code cache, 1M to 1G, shared by the harts (default 64M)");
  run->add_flag("--print-config", print_config, "Print the VM's configuration as JSON and exit");
  run->add_option("--api-sock", serve_flags.api_sock, "Serve the control API on this Unix socket");
  run->add_option("--id", serve_flags.id, "The instance id the API reports");
  run->add_option("--seccomp", flags.seccomp, "on (default) or off: per-thread seccomp filters on the VMM's threads (off: for debugging)");
  run->add_option("--gdb", serve_flags.gdb,
                  "tcp:HOST:PORT or unix:PATH: serve the GDB remote protocol there");
  run->add_flag("--gdb-wait", serve_flags.gdb_wait,
                "With --gdb: hold the VM before its first instruction until gdb continues");
  run->add_option("--migrate-from", serve_flags.migrate_from,
                  "tcp:HOST:PORT or unix:PATH: wait there for a live migration of this VM");
  RestoreFlags restore_flags;
  run->add_option("--restore", restore_flags.dir, "Restore from a snapshot directory (as `doppel restore`)");

  JailFlags jail_flags;
  auto* jail = add_jail_command(app, jail_flags);

  auto* restore = app.add_subcommand("restore", "Restore a VM from a snapshot directory and run it");
  restore->add_option("dir", restore_flags.dir, "The snapshot directory (state, memory, vm.json)")
      ->required();
  restore->add_option("--mem-file", restore_flags.mem_file,
                      "The memory file, if it moved (default: the one the snapshot names)");
  restore->add_option("--disk", restore_flags.disks,
                      "PATH[,ro][,format=raw|qcow2]: replace the snapshot's disks, in order (a clone's own copy)");
  restore->add_option("--net", restore_flags.nets,
                      "tap=NAME[,mac=MAC] or user[,hostfwd=...]: replace the snapshot's network "
                      "interfaces, in order");
  restore->add_option("--vsock", restore_flags.vsock,
                      "cid=N,uds=PATH: replace the snapshot's vsock socket (and CID)");
  restore->add_flag("--paused", restore_flags.paused, "Stay paused until resumed through the API");
  restore->add_option("--api-sock", serve_flags.api_sock, "Serve the control API on this Unix socket");
  restore->add_option("--id", serve_flags.id, "The instance id the API reports");
  restore->add_option("--seccomp", serve_flags.seccomp, "on (default) or off: per-thread seccomp filters on the VMM's threads (off: for debugging)");

  auto* snapshot = app.add_subcommand("snapshot", "Snapshot files");
  snapshot->require_subcommand(1);
  std::string merge_dir;
  auto* merge = snapshot->add_subcommand(
      "merge", "Fold a Diff snapshot and the memory it stands on into a full one (DIR/memory)");
  merge->add_option("dir", merge_dir, "The Diff snapshot's directory")->required();

  CtlOptions ctl_options;
  auto* ctl = app.add_subcommand("ctl", "Control a running doppel through its API socket");
  ctl->add_option("--sock", ctl_options.socket_path, "The socket it serves (its --api-sock)")->required();
  ctl->require_subcommand(1);
  using CtlCommand = CtlOptions::Command;
  ctl->add_subcommand("pause", "Pause the VM")->callback([&] { ctl_options.command = CtlCommand::kPause; });
  ctl->add_subcommand("resume", "Resume the paused VM")->callback([&] { ctl_options.command = CtlCommand::kResume; });
  ctl->add_subcommand("info", "Print the instance's id, state and version (JSON)")
      ->callback([&] { ctl_options.command = CtlCommand::kInfo; });
  ctl->add_subcommand("metrics", "Print the VM's counters (JSON)")
      ->callback([&] { ctl_options.command = CtlCommand::kMetrics; });
  ctl->add_subcommand("ctrl-alt-del", "Type Ctrl-Alt-Del on the guest's keyboard (x86_64)")
      ->callback([&] { ctl_options.command = CtlCommand::kCtrlAltDel; });
  auto* ctl_snapshot = ctl->add_subcommand(
      "snapshot", "Snapshot the paused VM into DIR (DIR/state and DIR/memory, or DIR/memory.diff)");
  ctl_snapshot->add_option("dir", ctl_options.snapshot_dir, "The snapshot directory (created if needed)")
      ->required();
  ctl_snapshot->add_flag("--diff", ctl_options.diff, "Only the memory changed since the last snapshot");
  ctl_snapshot->callback([&] { ctl_options.command = CtlCommand::kSnapshot; });
  auto* ctl_migrate = ctl->add_subcommand(
      "migrate", "Move the running VM live to DEST, where `doppel run --migrate-from` waits");
  ctl_migrate->add_option("dest", ctl_options.destination, "tcp:HOST:PORT or unix:PATH")->required();
  ctl_migrate->add_option("--downtime-ms", ctl_options.downtime_ms,
                          "The longest pause allowed at the switch-over (default 300)");
  ctl_migrate->add_option("--max-bandwidth", ctl_options.max_bandwidth,
                          "Bytes per second at most (default: no limit)");
  ctl_migrate->add_flag("--compress", ctl_options.compress,
                        "Send pages zstd-compressed (for slow links; costs CPU on both ends)");
  ctl_migrate->callback([&] { ctl_options.command = CtlCommand::kMigrate; });

  std::string guest_arch = "riscv64";
  auto* guest = app.add_subcommand("guest", "The guest kit: kernels and initrds built from Debian packages");
  guest->require_subcommand(1);
  auto* guest_build = guest->add_subcommand("build", "Build (or find cached) a guest; prints its directory last");
  guest_build->add_option("--arch", guest_arch, "riscv64 or x86_64");
  std::string disk_output = "doppel-riscv64-disk.img";
  auto* guest_disk = guest->add_subcommand(
      "disk", "Write a disk image with the built guest kit's kernel, initrd and extlinux.conf "
              "(for `doppel run --boot disk --disk PATH`); prints its path");
  guest_disk->add_option("--arch", guest_arch, "riscv64");
  guest_disk->add_option("-o,--output", disk_output, "The image to write (default: doppel-riscv64-disk.img)");

  DiskFlags disk_flags;
  auto* disk = app.add_subcommand("disk", "Disk images: qcow2 creation (linked clones) and inspection");
  disk->require_subcommand(1);
  auto* disk_create = disk->add_subcommand(
      "create", "Create a qcow2 image (version 3, 64 KiB clusters); with --backing, a linked clone");
  disk_create->add_option("path", disk_flags.path, "The new image (an existing file is not overwritten)")
      ->required();
  disk_create->add_option("--size", disk_flags.size,
                          "Virtual size in bytes, with an optional K, M, G or T suffix (default with "
                          "--backing: the backing file's)");
  disk_create->add_option("--backing", disk_flags.backing,
                          "Backing file (raw or qcow2), never written; a relative name is relative to "
                          "the new image's directory, as in qemu-img");
  disk_create->add_option("--backing-format", disk_flags.backing_format,
                          "raw or qcow2 (default: read from the backing file)");
  auto* disk_info_cmd = disk->add_subcommand(
      "info", "Print an image's format, virtual size, allocated size and backing chain");
  disk_info_cmd->add_option("path", disk_flags.path, "The image")->required();

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : kExitError;
  }
  log::init(log_level);
  if (serve_flags.seccomp) {  // checked before any file is read, so that it is named
    if (auto on = parse_on_off("--seccomp", *serve_flags.seccomp); !on) {
      fmt::print(stderr, "doppel: {}\n", on.error().message());
      return kExitError;
    }
  }

  if (app.got_subcommand("version")) {
    fmt::print("doppel {}\n", DOPPEL_VERSION);
    return 0;
  }
  if (app.got_subcommand(run)) {
    if (!restore_flags.dir.empty()) {
      if (flags.seccomp) serve_flags.seccomp = flags.seccomp;
      return restore_command(restore_flags, serve_flags);
    }
    return run_command(flags, serve_flags, print_config);
  }
  if (app.got_subcommand(jail)) return jail_command(jail_flags);
  if (app.got_subcommand(restore)) return restore_command(restore_flags, serve_flags);
  if (merge->parsed()) return snapshot_merge_command(merge_dir);
  if (app.get_subcommands().empty()) {
    if (serve_flags.api_sock.empty()) {
      fmt::print(stderr, "doppel: A subcommand is required (or --api-sock PATH alone, to wait for the API); see --help\n");
      return kExitError;
    }
    return serve(serve_flags, std::nullopt, std::nullopt);
  }
  if (app.got_subcommand(ctl)) return ctl_main(ctl_options);
  if (guest_build->parsed()) return guest_build_command(guest_arch);
  if (disk_create->parsed()) return disk_create_command(disk_flags);
  if (disk_info_cmd->parsed()) return disk_info_command(disk_flags);
  if (guest_disk->parsed()) return guest_disk_command(guest_arch, disk_output);
  return kExitError;
}

}  // namespace doppel
