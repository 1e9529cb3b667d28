#include "vmm/machine.h"

#include <cstdio>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "base/log.h"
#include "vmm/exit_codes.h"
#include "vmm/migration_stream.h"
#include "vmm/state_codec.h"
#include "base/thread_seal.h"

namespace doppel {

namespace {

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point t) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}

// Writes `text` to path.tmp, then renames it over path.
Result<void> write_file_atomically(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) return Error::from_errno(tmp);
    out << text;
    out.flush();
    if (!out) {
      std::remove(tmp.c_str());
      return Error::format("{}: write failed", tmp);
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int e = errno;
    std::remove(tmp.c_str());
    return Error::from_errno(path, e);
  }
  return ok();
}

}  // namespace

std::string_view to_string(VmState state) {
  switch (state) {
    case VmState::kNotStarted: return "Not started";
    case VmState::kRunning: return "Running";
    case VmState::kPaused: return "Paused";
    case VmState::kStopped: return "Stopped";
  }
  return "?";
}

Machine::~Machine() = default;

Result<std::unique_ptr<Machine>> Machine::create(const VmConfig& config, Console& console) {
  std::unique_ptr<Machine> m(new Machine(config, console));
  TRY(m->build(""));
  return m;
}

Result<std::unique_ptr<Machine>> Machine::restore(const VmConfig& config, Console& console,
                                                  const SnapshotFiles& files, bool resume) {
  // Read and check the state file before building anything: a wrong or corrupt file is
  // refused without side effects.
  const StateFile state = TRY(read_state_file(files.state_path, config.arch, config.engine));
  return restore(config, console, state, files, resume);
}

Result<std::unique_ptr<Machine>> Machine::restore(const VmConfig& config, Console& console,
                                                  const StateFile& state,
                                                  const SnapshotFiles& files, bool resume) {
  const auto t0 = Clock::now();
  if (state.arch != config.arch || state.engine != config.engine)
    return Error::format("{}: a {} snapshot; this VM is {}", files.state_path,
                         to_string(state.arch), to_string(config.arch));
  std::unique_ptr<Machine> m(new Machine(config, console));
  m->m_restore_began = t0;
  TRY(m->build(files.mem_path));
  for (const auto& diff : files.diff_paths) TRY(m->m_board->memory().apply_diff_file(diff));
  TRY(m->restore_state(state));
  TRY(m->m_board->begin_dirty_epoch());
  if (!resume) {
    // The vCPU threads park as soon as run() starts them; resume() lets them go.
    for (const auto& v : m->m_board->virtio()) v->stop();
    TRY(m->m_board->freeze_clocks());
    m->m_target.store(Target::kPark, std::memory_order_release);
    m->m_paused = true;
  } else {
    for (const auto& v : m->m_board->virtio()) v->resume();
  }
  m->m_memory_chain.push_back(std::filesystem::absolute(files.mem_path).string());
  for (const auto& diff : files.diff_paths)
    m->m_memory_chain.push_back(std::filesystem::absolute(diff).string());
  m->m_times.restore_ms = ms_since(t0);
  spdlog::info("restored {} in {:.2f} ms", files.state_path, m->m_times.restore_ms);
  return m;
}

Result<void> Machine::build(const std::string& memory_file, bool incoming) {
  BoardContext context{
      m_console,
      [this](int code, std::string reason) { request_stop(code, std::move(reason)); },
      memory_file, incoming};
  m_board = TRY(create_board(m_config, std::move(context)));
  for (unsigned i = 0; i < m_board->vcpu_count(); ++i)
    m_counters.push_back(std::make_unique<VcpuExitCounters>());
  return ok();
}

VmState Machine::state() const {
  std::lock_guard lock(m_mutex);
  if (m_stopping) return VmState::kStopped;
  if (m_paused) return VmState::kPaused;
  return VmState::kRunning;
}

void Machine::request_stop(int exit_code, std::string reason) {
  {
    std::lock_guard lock(m_mutex);
    if (m_stopping) return;
    m_stopping = true;
    m_exit_code = exit_code;
    m_stop_reason = std::move(reason);
    m_target.store(Target::kExit, std::memory_order_release);
  }
  m_cv.notify_all();
  for (unsigned i = 0; i < m_board->vcpu_count(); ++i) m_board->vcpu(i).kick();
  notify_debugger();
}

void Machine::vcpu_thread(unsigned index) {
  Vcpu& vcpu = m_board->vcpu(index);
  enter_thread(ThreadKind::kVcpu, static_cast<int>(index));
  // A vCPU may park only after a kicked exit (or before it first runs): after an I/O exit
  // the next run() still has to complete that access inside the engine (KVM takes the
  // read's value on its next KVM_RUN), so the vCPU's state is not yet whole.
  bool at_boundary = true;
  for (;;) {
    if (at_boundary && m_target.load(std::memory_order_acquire) != Target::kRun) {
      std::unique_lock lock(m_mutex);
      if (m_target.load(std::memory_order_relaxed) == Target::kPark) {
        ++m_parked;
        m_cv.notify_all();
        m_cv.wait(lock, [&] { return m_target.load(std::memory_order_relaxed) != Target::kPark; });
        --m_parked;
      }
      if (m_target.load(std::memory_order_relaxed) == Target::kExit) break;
    }
    auto result = vcpu.run();
    if (!result.ok()) {
      request_stop(kExitCrash, fmt::format("vCPU {}: {}", index, result.error().message()));
      break;
    }
    at_boundary = result->reason == VcpuExit::Reason::kKicked ||
                  result->reason == VcpuExit::Reason::kDebug;
    m_board->before_exit(index, *result);
    handle_exit(index, vcpu, *result);
  }
  {
    std::lock_guard lock(m_mutex);
    ++m_exited;
  }
  m_cv.notify_all();
}

// The one switch on VcpuExit, for every engine.
void Machine::handle_exit(unsigned index, Vcpu& vcpu, const VcpuExit& exit) {
  VcpuExitCounters& count = *m_counters[index];
  switch (exit.reason) {
    case VcpuExit::Reason::kKicked:
      count.kicks.fetch_add(1, std::memory_order_relaxed);
      break;  // the loop decides: park, exit, or run on
    case VcpuExit::Reason::kMmioRead: {
      count.mmio_reads.fetch_add(1, std::memory_order_relaxed);
      uint64_t value = 0;
      if (!m_board->mmio().read(exit.addr, exit.size, value))
        DOPPEL_GUEST_WARN("vCPU {}: read of {} bytes at {:#x}: no device", index, exit.size,
                          exit.addr);
      vcpu.set_io_result(value);
      break;
    }
    case VcpuExit::Reason::kMmioWrite:
      count.mmio_writes.fetch_add(1, std::memory_order_relaxed);
      if (!m_board->mmio().write(exit.addr, exit.size, exit.data))
        DOPPEL_GUEST_WARN("vCPU {}: write of {} bytes at {:#x}: no device", index, exit.size,
                          exit.addr);
      break;
    case VcpuExit::Reason::kPioRead: {
      count.pio_reads.fetch_add(1, std::memory_order_relaxed);
      // Unclaimed ports read as all ones, like a floating ISA bus.
      uint64_t value = ~0ull;
      const Bus* pio = m_board->pio();
      if (!pio || !pio->read(exit.addr, exit.size, value)) value = ~0ull;
      vcpu.set_io_result(value);
      break;
    }
    case VcpuExit::Reason::kPioWrite:
      count.pio_writes.fetch_add(1, std::memory_order_relaxed);
      // Unclaimed ports (0x80 delays, probes for absent chips) ignore writes quietly.
      if (const Bus* pio = m_board->pio()) (void)pio->write(exit.addr, exit.size, exit.data);
      m_board->after_port_write(exit.addr);
      break;
    case VcpuExit::Reason::kPowerOff:
      count.power_off.fetch_add(1, std::memory_order_relaxed);
      request_stop(kExitPowerOff, "the guest powered off");
      break;
    case VcpuExit::Reason::kReset:
      count.reset.fetch_add(1, std::memory_order_relaxed);
      request_stop(kExitReboot, exit.detail == "triple fault" ? "the guest triple-faulted (reset)"
                                                              : "the guest rebooted");
      break;
    case VcpuExit::Reason::kCrash:
      count.crash.fetch_add(1, std::memory_order_relaxed);
      request_stop(kExitCrash, fmt::format("vCPU {}: {}", index, exit.detail));
      break;
    case VcpuExit::Reason::kDebug:
      on_debug_exit(index, exit);
      break;
  }
}

Result<int> Machine::run(bool seal_main_thread) {
  {
    std::lock_guard lock(m_mutex);
    m_started = true;
  }
  TRY(m_board->start());
  std::vector<std::thread> threads;
  for (unsigned i = 0; i < m_board->vcpu_count(); ++i)
    threads.emplace_back([this, i] { vcpu_thread(i); });
  // After the vCPUs exist, so that they do not inherit the main thread's filter.
  if (seal_main_thread) enter_thread(ThreadKind::kMain);
  if (m_restore_began) {
    // For bench/lifecycle: when the restored guest got its vCPUs back, on the wall clock.
    const auto wall = std::chrono::system_clock::now().time_since_epoch();
    spdlog::info("restore: vCPUs started {:.3f} ms after the restore began (wall clock {:.6f})",
                 ms_since(*m_restore_began), std::chrono::duration<double>(wall).count());
  }
  if (m_migration_connection.valid()) {
    // The source may exit now: its guest runs here.
    FdStream stream(m_migration_connection.get());
    if (auto r = write_migration_record(stream, MigrationRecord::kRunning, {}); !r.ok())
      spdlog::warn("migration: telling the source the VM runs: {}", r.error().message());
  }
  for (auto& t : threads) t.join();
  m_board->stop();
  m_migration_connection.reset();

  int code;
  std::string reason;
  {
    std::lock_guard lock(m_mutex);
    code = m_exit_code;
    reason = m_stop_reason;
  }
  // panic=-1 turns a kernel panic into a reboot: that is a dead guest, not a reboot.
  if ((code == kExitReboot || code == kExitPowerOff) && m_console.saw_kernel_panic()) {
    code = kExitCrash;
    reason = "the guest kernel panicked";
  }
  if (code == kExitCrash) {
    std::string report = fmt::format("\r\ndoppel: {}\r\ndoppel: last console lines:\r\n", reason);
    for (const auto& line : m_console.recent_lines()) report += fmt::format("  | {}\r\n", line);
    std::fputs(report.c_str(), stderr);
  } else {
    spdlog::info("{}", reason);
  }
  return code;
}

bool Machine::park_all() {
  std::unique_lock lock(m_mutex);
  if (m_stopping) return false;
  m_target.store(Target::kPark, std::memory_order_release);
  const unsigned n = m_board->vcpu_count();
  lock.unlock();
  for (unsigned i = 0; i < n; ++i) m_board->vcpu(i).kick();
  lock.lock();
  // Threads that have not started yet park as soon as they do.
  m_cv.wait(lock, [&] { return m_stopping || !m_started || m_parked + m_exited == n; });
  return !m_stopping;
}

void Machine::unpark_all() {
  {
    std::lock_guard lock(m_mutex);
    if (m_target.load(std::memory_order_relaxed) == Target::kPark)
      m_target.store(Target::kRun, std::memory_order_release);
  }
  m_cv.notify_all();
}

Result<void> Machine::pause() {
  std::lock_guard control(m_control_mutex);
  return pause_locked();
}

Result<void> Machine::resume() {
  std::lock_guard control(m_control_mutex);
  return resume_locked();
}

Result<void> Machine::pause_locked() {
  const auto t0 = Clock::now();
  {
    std::lock_guard lock(m_mutex);
    if (m_stopping) return Error::format("pause: the VM has stopped");
    if (m_paused) return Error::format("pause: the VM is already paused");
  }
  if (!park_all()) return Error::format("pause: the VM stopped while pausing");
  for (const auto& v : m_board->virtio()) v->stop();
  if (auto r = m_board->freeze_clocks(); !r.ok()) {
    for (const auto& v : m_board->virtio()) v->resume();
    unpark_all();
    return r.error().context("pause");
  }
  {
    std::lock_guard lock(m_mutex);
    m_paused = true;
  }
  const double ms = ms_since(t0);
  {
    std::lock_guard lock(m_mutex);
    m_times.pause_ms = ms;
    ++m_times.pauses;
  }
  spdlog::info("paused in {:.3f} ms", ms);
  return ok();
}

Result<void> Machine::resume_locked() {
  const auto t0 = Clock::now();
  {
    std::lock_guard lock(m_mutex);
    if (m_stopping) return Error::format("resume: the VM has stopped");
    if (!m_paused) return Error::format("resume: the VM is not paused");
  }
  if (auto r = m_board->thaw_clocks(); !r.ok()) return r.error().context("resume");
  for (const auto& v : m_board->virtio()) v->resume();
  {
    std::lock_guard lock(m_mutex);
    m_paused = false;
  }
  unpark_all();
  const double ms = ms_since(t0);
  {
    std::lock_guard lock(m_mutex);
    m_times.resume_ms = ms;
  }
  spdlog::info("resumed in {:.3f} ms", ms);
  return ok();
}

namespace {

StateSection text_section(std::string name, const std::string& text) {
  return {std::move(name), 1, std::vector<uint8_t>(text.begin(), text.end())};
}

Result<nlohmann::json> json_section(const StateFile& state, std::string_view name,
                                    const std::string& path) {
  const StateSection* s = state.find(name);
  if (!s) return Error::format("{}: no '{}' section", path, name);
  if (s->version != 1)
    return Error::format("{}: section '{}' has version {}; this doppel reads version 1", path,
                         name, s->version);
  auto j = nlohmann::json::parse(s->data.begin(), s->data.end(), nullptr, false);
  if (j.is_discarded()) return Error::format("{}: section '{}' is not valid JSON", path, name);
  return j;
}

}  // namespace

Result<VmConfig> Machine::config_from_state(const StateFile& state, const std::string& path) {
  const nlohmann::json j = TRY(json_section(state, "vm.config", path));
  VmConfig config;
  if (auto r = apply_json(config, j); !r.ok()) return r.error().context(path + ": vm.config");
  if (config.arch != state.arch || config.engine != state.engine)
    return Error::format("{}: vm.config says {}/{}, the file's header {}/{}", path,
                         to_string(config.arch), to_string(config.engine), to_string(state.arch),
                         to_string(state.engine));
  return config;
}

Result<std::vector<std::string>> Machine::memory_chain_from_state(const StateFile& state,
                                                                   const std::string& path) {
  const nlohmann::json j = TRY(json_section(state, "memory.chain", path));
  std::vector<std::string> chain;
  if (!j.is_array() || j.empty())
    return Error::format("{}: memory.chain: expected a non-empty list of files", path);
  // Relative names are relative to the state file's directory, so a snapshot tree (a base
  // and its diffs) can move, to another directory or another host, as a whole.
  const std::filesystem::path dir = std::filesystem::path(path).parent_path();
  for (const auto& e : j) {
    if (!e.is_string() || e.get<std::string>().empty())
      return Error::format("{}: memory.chain: expected file names", path);
    const std::filesystem::path file(e.get<std::string>());
    chain.push_back(file.is_absolute() ? file.string() : (dir / file).lexically_normal().string());
  }
  return chain;
}

void Machine::set_memory_chain(StateFile& state, const std::string& state_path,
                               const std::vector<std::string>& chain) {
  const std::filesystem::path dir =
      std::filesystem::absolute(state_path).parent_path().lexically_normal();
  nlohmann::json names = nlohmann::json::array();
  for (const auto& file : chain)
    names.push_back(
        std::filesystem::absolute(file).lexically_normal().lexically_relative(dir).string());
  std::erase_if(state.sections, [](const StateSection& s) { return s.name == "memory.chain"; });
  state.sections.push_back(text_section("memory.chain", names.dump()));
}

VmConfig Machine::config_in_effect() {
  VmConfig config = m_config;
  size_t disk = 0, net = 0;
  for (const auto& mmio : m_board->virtio()) {
    const auto limits = mmio->device().save_limiters();
    auto now = [&](size_t i) {
      RateLimiterConfig c{limits[i].bandwidth.config, limits[i].ops.config};
      return c;
    };
    if (limits.size() == 1 && disk < config.disks.size()) {
      config.disks[disk++].rate_limiter = now(0);
    } else if (limits.size() == 2 && net < config.nets.size()) {
      config.nets[net].rx_rate_limiter = now(0);
      config.nets[net++].tx_rate_limiter = now(1);
    }
  }
  return config;
}

Result<void> Machine::save_state(StateFile& out) {
  out.arch = m_config.arch;
  out.engine = m_config.engine;
  out.sections.push_back(text_section("vm.config", to_json(config_in_effect()).dump()));
  TRY(m_board->save(out));
  out.sections.push_back(make_section("uart", m_board->uart().save()));
  const auto virtio = m_board->virtio();
  for (size_t i = 0; i < virtio.size(); ++i) {
    out.sections.push_back(make_section(fmt::format("virtio.{}", i), virtio[i]->save()));
    virtio::VirtioLimitsState limits{.limiters = virtio[i]->device().save_limiters()};
    if (!limits.limiters.empty())
      out.sections.push_back(make_section(fmt::format("virtio.{}.limits", i), limits));
  }
  return ok();
}

Result<void> Machine::restore_state(const StateFile& in) {
  TRY(m_board->restore(in));
  TRY(m_board->uart().restore(TRY(read_section<Uart16550State>(in, "uart"))));
  const auto virtio = m_board->virtio();
  for (size_t i = 0; i < virtio.size(); ++i) {
    const std::string name = fmt::format("virtio.{}", i);
    if (!in.find(name))
      return Error::format("the snapshot has no state for virtio device {} ({}): the VM's "
                           "devices differ from the snapshot's", i, virtio[i]->name());
    TRY(virtio[i]->restore(TRY(read_section<virtio::VirtioMmioState>(in, name))));
    // Older snapshots have no limits: the device keeps the buckets vm.config gave it.
    if (const std::string limits = name + ".limits"; in.find(limits))
      TRY(virtio[i]->device().restore_limiters(
          TRY(read_section<virtio::VirtioLimitsState>(in, limits)).limiters));
  }
  if (in.find(fmt::format("virtio.{}", virtio.size())))
    return Error::format("the snapshot has more virtio devices than this VM ({})", virtio.size());
  return ok();
}

Result<void> Machine::create_snapshot(const SnapshotCreateRequest& request) {
  std::lock_guard control(m_control_mutex);
  const auto t0 = Clock::now();
  {
    std::lock_guard lock(m_mutex);
    if (m_stopping) return Error::format("snapshot: the VM has stopped");
    if (!m_paused) return Error::format("snapshot: the VM must be paused first (PATCH /vm Paused)");
  }
  if (request.snapshot_path.empty()) return Error::format("snapshot: snapshot_path is empty");
  if (request.mem_file_path.empty()) return Error::format("snapshot: mem_file_path is empty");
  const bool diff = request.type == SnapshotType::kDiff;
  if (diff && m_memory_chain.empty())
    return Error::format("snapshot: a Diff snapshot needs a base: take a Full snapshot first, or "
                         "restore from one");

  StateFile state;
  TRY(save_state(state));
  std::vector<std::string> chain;
  if (diff) chain = m_memory_chain;
  chain.push_back(std::filesystem::absolute(request.mem_file_path).string());
  set_memory_chain(state, request.snapshot_path, chain);
  GuestMemory& memory = m_board->memory();
  size_t pages = 0;
  if (diff) {
    TRY(m_board->collect_dirty());
    pages = TRY(memory.save_dirty_to_file(request.mem_file_path));
  } else {
    TRY(memory.save_to_file(request.mem_file_path));
  }
  // The memory file is complete; the state file makes the snapshot. Nothing half-made stays.
  if (auto r = write_state_file(request.snapshot_path, state); !r.ok()) {
    std::remove(request.mem_file_path.c_str());
    return r.error().context("snapshot");
  }
  if (!request.config_path.empty()) {
    if (auto r = write_file_atomically(request.config_path,
                                          to_json(config_in_effect()).dump(2) + "\n");
        !r.ok()) {
      std::remove(request.mem_file_path.c_str());
      std::remove(request.snapshot_path.c_str());
      return r.error().context("snapshot");
    }
  }
  TRY(m_board->begin_dirty_epoch());
  m_memory_chain = std::move(chain);
  const double ms = ms_since(t0);
  {
    std::lock_guard lock(m_mutex);
    m_times.snapshot_ms = ms;
    ++m_times.snapshots;
  }
  if (diff)
    spdlog::info("diff snapshot {} ({} pages) in {:.1f} ms", request.snapshot_path, pages, ms);
  else
    spdlog::info("snapshot {} in {:.1f} ms", request.snapshot_path, ms);
  return ok();
}

nlohmann::json Machine::metrics() const {
  nlohmann::json vcpus = nlohmann::json::array();
  for (size_t i = 0; i < m_counters.size(); ++i) {
    const VcpuExitCounters& c = *m_counters[i];
    nlohmann::json v = {{"vcpu", i},
                        {"exits",
                         {{"mmio_read", c.mmio_reads.load()},
                          {"mmio_write", c.mmio_writes.load()},
                          {"pio_read", c.pio_reads.load()},
                          {"pio_write", c.pio_writes.load()},
                          {"kicked", c.kicks.load()},
                          {"power_off", c.power_off.load()},
                          {"reset", c.reset.load()},
                          {"crash", c.crash.load()}}}};
    for (const Counter& counter : m_board->vcpu(static_cast<unsigned>(i)).counters())
      v[std::string(counter.name)] = counter.value;
    vcpus.push_back(std::move(v));
  }
  nlohmann::json devices = nlohmann::json::object();
  auto add_bus = [&](const Bus* bus, const char* kind) {
    if (!bus) return;
    for (const auto& m : bus->mappings()) {
      auto& d = devices[std::string(m.device->name())];
      d[std::string(kind) + "_reads"] = m.counters->reads.load(std::memory_order_relaxed);
      d[std::string(kind) + "_writes"] = m.counters->writes.load(std::memory_order_relaxed);
      for (const Counter& counter : m.device->counters()) d[std::string(counter.name)] = counter.value;
    }
  };
  add_bus(&m_board->mmio(), "mmio");
  add_bus(m_board->pio(), "pio");
  LifecycleTimes times;
  {
    std::lock_guard lock(m_mutex);
    times = m_times;
  }
  return {{"vcpus", vcpus},
          {"devices", devices},
          {"lifecycle",
           {{"pause_ms", times.pause_ms},
            {"resume_ms", times.resume_ms},
            {"snapshot_ms", times.snapshot_ms},
            {"restore_ms", times.restore_ms},
            {"pauses", times.pauses},
            {"snapshots", times.snapshots}}}};
}

}  // namespace doppel
