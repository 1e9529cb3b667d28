#include "vmm/vmm_service.h"

#include <pthread.h>
#include <unistd.h>

#include <filesystem>

#include <nlohmann/json.hpp>

#include "base/bits.h"
#include "base/log.h"
#include "backends/endpoint.h"
#include "devices/virtio/virtio_blk.h"
#include "devices/virtio/virtio_net.h"
#include "vmm/exit_codes.h"
#include "vmm/state_codec.h"

namespace doppel {

namespace fs = std::filesystem;

SnapshotFiles snapshot_dir_files(const std::string& dir) {
  return {(fs::path(dir) / "state").string(), (fs::path(dir) / "memory").string(), {}};
}

Result<VmConfig> snapshot_config(const SnapshotLoadRequest& request) {
  const StateFile state =
      TRY(read_state_file(request.snapshot_path, request.expect_arch, request.expect_engine));
  return snapshot_config(state, request);
}

Result<VmConfig> snapshot_config(const StateFile& state, const SnapshotLoadRequest& request) {
  VmConfig config = TRY(Machine::config_from_state(state, request.snapshot_path));
  if (request.disks) {
    if (request.disks->size() != config.disks.size())
      return Error::format("{}: the snapshot has {} disks; {} were given to replace them",
                           request.snapshot_path, config.disks.size(), request.disks->size());
    config.disks = *request.disks;
  }
  if (request.nets) {
    if (request.nets->size() != config.nets.size())
      return Error::format("{}: the snapshot has {} network interfaces; {} were given to "
                           "replace them",
                           request.snapshot_path, config.nets.size(), request.nets->size());
    for (size_t i = 0; i < config.nets.size(); ++i) {
      // A new TAP keeps the snapshot's MAC unless a new one is given: the guest's driver
      // has the old one in its state.
      const auto old_mac = config.nets[i].mac;
      config.nets[i] = (*request.nets)[i];
      if (!config.nets[i].mac) config.nets[i].mac = old_mac;
    }
  }
  if (request.vsock) {
    if (!config.vsock)
      return Error::format("{}: the snapshot has no vsock device to give --vsock to", request.snapshot_path);
    config.vsock = *request.vsock;  // a new CID is fine: the transport reset re-reads it
  }
  TRY(validate(config, 0));
  return config;
}

Result<void> merge_snapshot(const std::string& dir) {
  const SnapshotFiles files = snapshot_dir_files(dir);
  const StateFile state = TRY(read_state_file(files.state_path, std::nullopt, std::nullopt));
  const std::vector<std::string> chain = TRY(Machine::memory_chain_from_state(state, files.state_path));
  if (chain.size() < 2)
    return Error::format("{}: a full snapshot already; there is nothing to merge", dir);
  // Copy the base, fold every diff into the copy, then make the copy this directory's
  // memory and the state file say so: the base stays as it was.
  const std::string tmp = files.mem_path + ".merge.tmp";
  std::error_code ec;
  fs::copy_file(chain.front(), tmp, fs::copy_options::overwrite_existing, ec);
  if (ec) return Error::format("{}: copying {}: {}", dir, chain.front(), ec.message());
  for (size_t i = 1; i < chain.size(); ++i) {
    if (auto r = merge_diff_into(tmp, chain[i]); !r.ok()) {
      fs::remove(tmp, ec);
      return r.error().context(dir);
    }
  }
  StateFile merged = state;
  Machine::set_memory_chain(merged, files.state_path, {files.mem_path});
  fs::rename(tmp, files.mem_path, ec);
  if (ec) {
    fs::remove(tmp, ec);
    return Error::format("{}: {}", files.mem_path, ec.message());
  }
  TRY(write_state_file(files.state_path, merged));
  fs::remove(fs::path(dir) / "memory.diff", ec);
  return ok();
}

Result<std::unique_ptr<VmmService>> VmmService::create(const Options& options) {
  // Threads get 512 KiB stacks instead of glibc's 8 MiB: doppel's threads are shallow, and
  // an 8 MiB stack can hold a transparent huge page, 2 MiB of RSS for the few KiB a thread
  // uses, on hosts with THP "always".
  pthread_attr_t attr;
  if (pthread_attr_init(&attr) == 0) {
    if (pthread_attr_setstacksize(&attr, 512 * KiB) == 0) pthread_setattr_default_np(&attr);
    pthread_attr_destroy(&attr);
  }
  std::unique_ptr<VmmService> s(new VmmService(options));
  s->m_console = TRY(Console::create(
      {options.interactive_console ? STDIN_FILENO : -1, STDOUT_FILENO, true}));
  return s;
}

VmmService::~VmmService() {
  if (m_console) m_console->stop_input();
}

void VmmService::route_input_to(Machine* machine) {
  std::lock_guard lock(m_input_mutex);
  m_input_machine = machine;
  if (machine && m_quit) machine->request_stop(kExitQuit, "quit from the console (Ctrl-A x)");
}

Result<std::unique_ptr<Machine>> VmmService::make_machine(const Pending& pending) {
  if (pending.boot && pending.migrate_from) {
    const Endpoint endpoint = TRY(parse_endpoint(*pending.migrate_from).context("--migrate-from"));
    UniqueFd listener = TRY(listen_endpoint(endpoint).context("--migrate-from"));
    spdlog::info("waiting for a migration on {}", endpoint.text);
    UniqueFd connection = TRY(accept_one(listener.get(), endpoint).context("--migrate-from"));
    return Machine::incoming(*pending.boot, *m_console, std::move(connection));
  }
  if (pending.boot) return Machine::create(*pending.boot, *m_console);
  const SnapshotLoadRequest& request = *pending.restore;
  // One read of the state file: the config, the memory chain and the devices' state.
  const StateFile state =
      TRY(read_state_file(request.snapshot_path, request.expect_arch, request.expect_engine));
  const VmConfig config = TRY(snapshot_config(state, request));
  std::vector<std::string> chain = TRY(Machine::memory_chain_from_state(state, request.snapshot_path));
  // The memory file given is the snapshot's own (the last of its chain): it may have moved.
  if (!request.mem_file_path.empty()) chain.back() = request.mem_file_path;
  SnapshotFiles files{request.snapshot_path, chain.front(), {chain.begin() + 1, chain.end()}};
  return Machine::restore(config, *m_console, state, files, request.resume_vm);
}

Result<int> VmmService::run_incoming(const VmConfig& config, const std::string& endpoint) {
  {
    std::lock_guard lock(m_mutex);
    m_pending = Pending{config, std::nullopt, endpoint};
  }
  return run_pending(false);
}

Result<int> VmmService::run(std::optional<VmConfig> boot,
                            std::optional<SnapshotLoadRequest> restore) {
  const bool from_api = !boot && !restore;
  {
    std::lock_guard lock(m_mutex);
    if (!from_api) m_pending = Pending{std::move(boot), std::move(restore), std::nullopt};
  }
  return run_pending(from_api);
}

Result<int> VmmService::run_pending(bool from_api) {
  if (m_options.interactive_console) {
    m_console->start_input(
        [this](std::span<const uint8_t> bytes) -> size_t {
          std::lock_guard lock(m_input_mutex);
          return m_input_machine ? m_input_machine->board().uart().receive(bytes) : 0;
        },
        [this] {
          {
            std::lock_guard lock(m_input_mutex);
            m_quit = true;
            if (m_input_machine)
              m_input_machine->request_stop(kExitQuit, "quit from the console (Ctrl-A x)");
          }
          std::lock_guard lock(m_mutex);
          m_cv.notify_all();
        });
  }

  for (;;) {
    Pending pending;
    {
      std::unique_lock lock(m_mutex);
      m_cv.wait(lock, [&] {
        std::lock_guard input(m_input_mutex);
        return m_pending.has_value() || m_quit;
      });
      if (!m_pending) {
        m_stopped = true;
        m_console->stop_input();
        return kExitQuit;
      }
      pending = std::move(*m_pending);
      m_pending.reset();
    }
    m_console->forget_kernel_panic();
    auto machine = make_machine(pending);
    {
      std::lock_guard lock(m_mutex);
      m_start_done = true;
      if (!machine.ok()) {
        m_pending_error = machine.error().message();
      } else {
        m_pending_error.clear();
        m_machine = machine->get();
        m_config = (*machine)->config();
        m_started = true;
      }
    }
    m_cv.notify_all();
    if (!machine.ok()) {
      if (from_api) continue;  // the API call reports it; wait for the next one
      m_console->stop_input();
      return machine.release_error();
    }
    route_input_to(machine->get());
    // Input that arrived before there was a UART: offer it now, so the UART remembers the
    // refusal and asks for it again once the guest's driver enables receive interrupts.
    m_console->notify_room();
    Result<int> code = kExitError;
    if (auto hooked = m_options.before_run ? m_options.before_run(**machine) : ok(); !hooked.ok())
      code = hooked.release_error();
    else
      code = (*machine)->run(m_options.seal_main_thread &&
                             (*machine)->config().on_reboot != OnReboot::kRestart);
    if (m_options.after_run) m_options.after_run(code.ok() ? *code : kExitError);
    route_input_to(nullptr);
    {
      std::unique_lock lock(m_mutex);
      m_cv.wait(lock, [&] { return m_busy == 0; });
      m_machine = nullptr;
    }
    const VmConfig config = (*machine)->config();
    machine->reset();
    if (!code.ok() || *code != kExitReboot || config.on_reboot != OnReboot::kRestart) {
      std::lock_guard lock(m_mutex);
      m_stopped = true;
      m_console->stop_input();
      return code;
    }
    spdlog::info("{}: the guest rebooted; starting it again (--on-reboot=restart)",
                 to_string(config.arch));
    std::lock_guard lock(m_mutex);
    m_pending = Pending{config, std::nullopt, std::nullopt};
  }
}

template <typename F>
auto VmmService::with_machine(std::string_view what, F&& f)
    -> decltype(f(std::declval<Machine&>())) {
  Machine* machine;
  {
    std::lock_guard lock(m_mutex);
    if (!m_machine)
      return Error::format("{}: {}", what,
                           m_stopped ? "the VM has stopped" : "there is no VM yet");
    machine = m_machine;
    ++m_busy;
  }
  auto result = f(*machine);
  {
    std::lock_guard lock(m_mutex);
    --m_busy;
  }
  m_cv.notify_all();
  return result;
}

InstanceInfo VmmService::info() {
  InstanceInfo i;
  i.id = m_options.id;
  i.vmm_version = m_options.version;
  std::lock_guard lock(m_mutex);
  if (m_machine) i.state = m_machine->state();
  else if (m_stopped) i.state = VmState::kStopped;
  else i.state = VmState::kNotStarted;
  return i;
}

nlohmann::json VmmService::vm_config() {
  std::lock_guard lock(m_mutex);
  return m_config ? to_json(*m_config) : nlohmann::json::object();
}

Result<void> VmmService::start(const VmConfig& config) {
  return post(Pending{config, std::nullopt, std::nullopt}, "InstanceStart");
}

Result<void> VmmService::load_snapshot(const SnapshotLoadRequest& request) {
  return post(Pending{std::nullopt, request, std::nullopt}, "snapshot/load");
}

Result<void> VmmService::post(Pending pending, std::string_view what) {
  std::unique_lock lock(m_mutex);
  if (m_started || m_pending || m_machine)
    return Error::format("{}: a VM was started in this process already", what);
  m_pending = std::move(pending);
  m_start_done = false;
  m_cv.notify_all();
  m_cv.wait(lock, [&] { return m_start_done; });
  if (!m_pending_error.empty()) return Error::format("{}: {}", what, m_pending_error);
  return ok();
}

Result<void> VmmService::check_not_migrating(std::string_view what) const {
  if (m_migration.get().state == MigrationStatus::State::kActive)
    return Error::format("{}: a live migration is under way", what);
  return ok();
}

Result<void> VmmService::pause() {
  TRY(check_not_migrating("pause"));
  return with_machine("pause", [](Machine& m) { return m.pause(); });
}

Result<void> VmmService::resume() {
  TRY(check_not_migrating("resume"));
  return with_machine("resume", [](Machine& m) { return m.resume(); });
}

Result<void> VmmService::create_snapshot(const SnapshotCreateRequest& request) {
  SnapshotCreateRequest r = request;
  // The directory convention (DIR/state): the VM file goes beside it as DIR/vm.json.
  if (r.config_path.empty() && fs::path(r.snapshot_path).filename() == "state")
    r.config_path = (fs::path(r.snapshot_path).parent_path() / "vm.json").string();
  TRY(check_not_migrating("snapshot/create"));
  return with_machine("snapshot/create", [&](Machine& m) { return m.create_snapshot(r); });
}

Result<MigrationStatus> VmmService::migrate(const MigrationRequest& request) {
  const Endpoint endpoint = TRY(parse_endpoint(request.destination).context("migrate: destination"));
  // Claimed here, so that a second request is refused at once rather than waiting.
  bool claimed = false;
  m_migration.update([&](MigrationStatus& s) {
    if (s.state == MigrationStatus::State::kActive) return;
    s = MigrationStatus{};
    s.state = MigrationStatus::State::kActive;
    s.destination = request.destination;
    claimed = true;
  });
  if (!claimed) return Error("migrate: a live migration is under way already");
  auto result = with_machine("migrate", [&](Machine& m) -> Result<MigrationStatus> {
    UniqueFd connection = TRY(connect_endpoint(endpoint).context("migrate"));
    return m.migrate_to(connection.get(), request, m_migration);
  });
  if (!result.ok()) {
    m_migration.update([&](MigrationStatus& s) {
      if (s.state == MigrationStatus::State::kFailed) return;  // migrate_to said why
      s.state = MigrationStatus::State::kFailed;
      s.error = result.error().message();
    });
  }
  return result;
}

MigrationStatus VmmService::migration_status() { return m_migration.get(); }

Result<void> VmmService::send_ctrl_alt_del() {
  // The board's refusal (riscv64, a full keyboard buffer) is named after the action too.
  return with_machine("SendCtrlAltDel", [](Machine& m) -> Result<void> {
    if (auto sent = m.board().send_ctrl_alt_del(); !sent.ok())
      return sent.release_error().context("SendCtrlAltDel");
    return ok();
  });
}

nlohmann::json VmmService::metrics() {
  Machine* machine = nullptr;
  {
    std::lock_guard lock(m_mutex);
    if (m_machine) {
      machine = m_machine;
      ++m_busy;
    }
  }
  nlohmann::json j = machine ? machine->metrics() : nlohmann::json::object();
  if (machine) {
    std::lock_guard lock(m_mutex);
    --m_busy;
  }
  m_cv.notify_all();
  j["state"] = std::string(to_string(info().state));
  return j;
}

Result<void> VmmService::update_rate_limiters(const RateLimiterUpdate& update) {
  Machine* machine = nullptr;
  {
    std::lock_guard lock(m_mutex);
    if (!m_machine) return Error("no VM is running");
    machine = m_machine;
    ++m_busy;
  }
  // The index-th disk or network interface among the board's virtio devices.
  const bool disk = update.kind == RateLimiterUpdate::Kind::kDisk;
  size_t seen = 0;
  bool found = false;
  for (const auto& mmio : machine->board().virtio()) {
    auto& dev = mmio->device();
    if (disk) {
      if (auto* blk = dynamic_cast<virtio::VirtioBlk*>(&dev); blk && seen++ == update.index) {
        blk->set_rate_limiter(update.disk);
        found = true;
        break;
      }
    } else if (auto* net = dynamic_cast<virtio::VirtioNet*>(&dev); net && seen++ == update.index) {
      net->set_rate_limiters(update.rx, update.tx);
      found = true;
      break;
    }
  }
  {
    std::lock_guard lock(m_mutex);
    --m_busy;
    // GET /vm/config shows the limits in effect (as a snapshot records them).
    if (found && m_config) {
      if (disk && update.index < m_config->disks.size()) {
        auto& limits = m_config->disks[update.index].rate_limiter;
        limits = patched(limits, update.disk);
      } else if (!disk && update.index < m_config->nets.size()) {
        auto& n = m_config->nets[update.index];
        n.rx_rate_limiter = patched(n.rx_rate_limiter, update.rx);
        n.tx_rate_limiter = patched(n.tx_rate_limiter, update.tx);
      }
    }
  }
  m_cv.notify_all();
  if (!found)
    return Error::format("the VM has no {} #{}", disk ? "disk" : "network interface", update.index + 1);
  return {};
}

}  // namespace doppel
