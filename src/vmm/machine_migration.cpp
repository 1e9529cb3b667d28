// Live migration of a Machine: the source's pre-copy rounds and the destination's build.
// The wire format is vmm/migration_stream.h.
//
// Each round's dirty pages are taken with the vCPUs paused for an instant (pause() parks
// them and quiesces the devices): an emulated hart drops its write TLB on the new dirty
// epoch before it runs again, and no device DMA is half-way, so no write made after the
// bitmap was read can go unmarked. The guest's clock stops during those instants too.
#include <chrono>
#include <optional>
#include <thread>

#include <sys/socket.h>
#include <sys/time.h>

#include "base/log.h"
#include "vmm/exit_codes.h"
#include "vmm/machine.h"
#include "vmm/migration_stream.h"

namespace doppel {

namespace {

using Clock = std::chrono::steady_clock;
double ms_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

// Sends pages in kPages records (kPagesZstd if compressing), holding to max_bandwidth
// (bytes/s) if set.
class PageSender {
 public:
  PageSender(FdStream& out, const GuestMemory& memory, const MigrationRequest& options)
      : m_out(out), m_memory(memory), m_max_bandwidth(options.max_bandwidth), m_compress(options.compress) {}

  Result<void> send(uint64_t gpa) {
    if (!m_batch.add(m_memory, gpa)) {
      TRY(flush());
      m_batch.add(m_memory, gpa);
    }
    ++m_pages;
    return ok();
  }
  Result<void> flush() {
    if (m_batch.empty()) return ok();
    m_zero += m_batch.zero_pages();
    const std::vector<uint8_t> payload = m_batch.take();
    if (m_compress)
      TRY(write_migration_record(m_out, MigrationRecord::kPagesZstd, TRY(compress_page_batch(payload))));
    else
      TRY(write_migration_record(m_out, MigrationRecord::kPages, payload));
    if (m_max_bandwidth) {
      // Sleep until the bytes sent so far fit the budget.
      const double due_s = static_cast<double>(m_out.bytes_written()) / static_cast<double>(m_max_bandwidth);
      const auto due = m_start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(due_s));
      std::this_thread::sleep_until(due);
    }
    return ok();
  }
  uint64_t pages() const { return m_pages; }
  uint64_t zero_pages() const { return m_zero + m_batch.zero_pages(); }

 private:
  FdStream& m_out;
  const GuestMemory& m_memory;
  uint64_t m_max_bandwidth;
  bool m_compress;
  Clock::time_point m_start = Clock::now();
  PageBatch m_batch;
  uint64_t m_pages = 0, m_zero = 0;
};

bool is_unix_socket(int fd) {
  sockaddr_storage addr{};
  socklen_t len = sizeof addr;
  return ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0 && addr.ss_family == AF_UNIX;
}

// Waits until the destination has applied everything sent so far.
Result<void> sync(FdStream& stream) {
  TRY(write_migration_record(stream, MigrationRecord::kSync, {}));
  const MigrationRecordIn answer = TRY(read_migration_record(stream));
  if (answer.type == MigrationRecord::kFailed)
    return Error::format("the destination failed: {}",
                         std::string(answer.payload.begin(), answer.payload.end()));
  if (answer.type != MigrationRecord::kSynced)
    return Error::format("the destination answered record type {} to a sync",
                         static_cast<uint32_t>(answer.type));
  return ok();
}

}  // namespace

Result<std::vector<uint64_t>> Machine::pause_and_take_dirty() {
  TRY(pause_locked());
  if (auto r = m_board->collect_dirty(); !r.ok()) {
    (void)resume_locked();
    return r.error();
  }
  std::vector<uint64_t> pages = m_board->memory().dirty_pages();
  if (auto r = m_board->begin_dirty_epoch(); !r.ok()) {
    (void)resume_locked();
    return r.error();
  }
  return pages;
}

Result<MigrationStatus> Machine::migrate_to(int fd, const MigrationRequest& options,
                                            MigrationTracker& tracker) {
  std::lock_guard control(m_control_mutex);
  const auto t0 = Clock::now();
  {
    std::lock_guard lock(m_mutex);
    if (m_stopping) return Error::format("migrate: the VM has stopped");
    if (m_paused) return Error::format("migrate: the VM is paused; resume it first");
  }
  FdStream stream(fd);
  GuestMemory& memory = m_board->memory();
  const bool handover = memory.shared_fd() >= 0 && is_unix_socket(fd);
  MigrationStatus report;
  report.state = MigrationStatus::State::kActive;
  report.destination = options.destination;
  report.ram_bytes = memory.total_size();
  report.shared_memory = handover;
  std::optional<PageSender> sender;
  // What GET /migrate shows, brought up to date at each step.
  auto publish = [&] {
    report.bytes = stream.bytes_written();
    if (sender) {
      report.pages = sender->pages();
      report.zero_pages = sender->zero_pages();
    }
    report.total_ms = ms_between(t0, Clock::now());
    tracker.update([&](MigrationStatus& s) { s = report; });
  };
  publish();
  bool paused_here = false;
  bool images_released = false;
  // Any failure: the VM runs on here. A destination that refused the VM said why before it
  // closed the connection: that reason beats "Connection reset by peer".
  auto fail = [&](const Error& e) -> Error {
    if (images_released) {
      // Take the disks back before the guest runs again. If another process took one in
      // between, the guest would write to a disk someone else writes: stay paused.
      for (const auto& v : m_board->virtio()) {
        if (auto r = v->device().activate_images(); !r.ok()) {
          spdlog::error("migration failed and the disks cannot be taken back: {}; the VM stays "
                        "paused", r.error().message());
          paused_here = false;
          break;
        }
      }
    }
    if (paused_here) (void)resume_locked();
    const timeval wait{1, 0};
    (void)::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &wait, sizeof wait);
    Error error = e.context("migrate");
    if (auto answer = read_migration_record(stream);
        answer.ok() && answer->type == MigrationRecord::kFailed) {
      const std::string why(answer->payload.begin(), answer->payload.end());
      error = Error::format("migrate: the destination refused the VM: {}", why);
    }
    spdlog::warn("migration failed after {} rounds, {} bytes: {}", report.rounds,
                 stream.bytes_written(), error.message());
    report.state = MigrationStatus::State::kFailed;
    report.error = error.message();
    publish();
    return error;
  };
  auto check = [&](Result<void> r) -> Result<void> {
    if (!r.ok()) return fail(r.error());
    return ok();
  };

  TRY(check(write_migration_header(stream, {m_config.arch, m_config.engine, memory.total_size()})));
  Clock::time_point paused_at;
  if (handover) {
    // Both ends share guest RAM: no rounds. Pause, and hand the memory file over.
    TRY(check(pause_locked()));
    paused_here = true;
    paused_at = Clock::now();
    const uint64_t ram = memory.total_size();
    TRY(check(write_migration_record(stream, MigrationRecord::kMemoryFile,
                                     {reinterpret_cast<const uint8_t*>(&ram), sizeof ram},
                                     memory.shared_fd())));
  } else {
    // Round 1: all of RAM, from a fresh dirty epoch.
    {
      auto first = pause_and_take_dirty();
      if (!first.ok()) return fail(first.error());
      TRY(check(resume_locked()));
    }
    sender.emplace(stream, memory, options);
    auto round_start = Clock::now();
    uint64_t round_bytes_start = stream.bytes_written();
    report.rounds = 1;
    report.round_pages = memory.total_size() / kMigrationPageSize;
    report.round_pages_sent = 0;
    for (const auto& region : memory.regions())
      for (uint64_t off = 0; off < region.size; off += kMigrationPageSize) {
        TRY(check(sender->send(region.gpa + off)));
        if (++report.round_pages_sent % PageBatch::kMaxPages == 0) publish();
      }
    TRY(check(sender->flush()));
    TRY(check(sync(stream)));
    publish();

    for (;;) {
      const double round_s = std::max(ms_between(round_start, Clock::now()) / 1000.0, 1e-6);
      const double bandwidth = static_cast<double>(stream.bytes_written() - round_bytes_start) / round_s;
      auto dirty = pause_and_take_dirty();
      if (!dirty.ok()) return fail(dirty.error());
      paused_here = true;
      paused_at = Clock::now();
      const double left = static_cast<double>(dirty->size() * (kMigrationPageSize + 8));
      report.bandwidth = bandwidth;
      report.dirty_rate = static_cast<double>(dirty->size()) / round_s;
      report.expected_downtime_ms = bandwidth > 0 ? left / bandwidth * 1000.0 : 0;
      const bool last = report.expected_downtime_ms <= options.downtime_ms ||
                        report.rounds >= options.max_rounds;
      if (!last) {
        TRY(check(resume_locked()));
        paused_here = false;
      }
      spdlog::info("migration: round {} ended at {:.0f} MB/s; {} pages dirty, {:.1f} ms to send{}",
                   report.rounds, bandwidth / 1e6, dirty->size(), report.expected_downtime_ms,
                   last ? ": the last round, paused" : "");
      round_start = Clock::now();
      round_bytes_start = stream.bytes_written();
      ++report.rounds;
      report.round_pages = dirty->size();
      report.round_pages_sent = 0;
      publish();
      for (uint64_t gpa : *dirty) {
        TRY(check(sender->send(gpa)));
        if (++report.round_pages_sent % PageBatch::kMaxPages == 0) publish();
      }
      TRY(check(sender->flush()));
      if (last) break;
      TRY(check(sync(stream)));
    }
  }

  // Paused, devices drained: what the guest wrote to its disks reaches the (shared)
  // storage before the destination opens it; then the state, then the destination's word.
  // Where the downtime goes is logged: the last pages, the disks, the state, the destination.
  const auto pages_done = Clock::now();
  for (const auto& v : m_board->virtio()) TRY(check(v->device().flush_to_host()));
  // As QEMU inactivates its images: the destination (maybe on this host, on the same
  // files) takes the disks' image locks once it has the state; until it answers, nothing
  // here writes to them.
  for (const auto& v : m_board->virtio()) v->device().inactivate_images();
  images_released = true;
  const auto disks_done = Clock::now();
  StateFile state;
  TRY(check(save_state(state)));
  auto bytes = encode_state_file(state);
  if (!bytes.ok()) return fail(bytes.error());
  TRY(check(write_migration_record(stream, MigrationRecord::kState, *bytes)));
  TRY(check(write_migration_record(stream, MigrationRecord::kEnd, {})));
  const auto state_done = Clock::now();
  auto answer = read_migration_record(stream);
  if (!answer.ok()) return fail(answer.error().context("waiting for the destination"));
  if (answer->type == MigrationRecord::kFailed)
    return fail(Error::format("the destination refused the VM: {}",
                              std::string(answer->payload.begin(), answer->payload.end())));
  if (answer->type != MigrationRecord::kRunning)
    return fail(Error::format("the destination answered record type {}",
                              static_cast<uint32_t>(answer->type)));
  report.downtime_ms = ms_between(paused_at, Clock::now());
  spdlog::info("migration: downtime {:.1f} ms: {} {:.1f} ms, disks flushed {:.1f} ms, state "
               "({} bytes) saved and sent {:.1f} ms, the destination running {:.1f} ms later",
               report.downtime_ms, handover ? "memory file passed" : "last pages sent",
               ms_between(paused_at, pages_done), ms_between(pages_done, disks_done), bytes->size(),
               ms_between(disks_done, state_done), ms_between(state_done, Clock::now()));
  report.state = MigrationStatus::State::kCompleted;
  publish();
  spdlog::info("migrated in {:.1f} ms: {} rounds, {} pages ({} zero), {} bytes{}, downtime "
               "{:.1f} ms (expected {:.1f} ms)",
               report.total_ms, report.rounds, report.pages, report.zero_pages, report.bytes,
               handover ? ", RAM handed over as a shared memory file" : "", report.downtime_ms,
               report.expected_downtime_ms);
  request_stop(kExitPowerOff, "the VM migrated to the destination");
  return report;
}

Result<std::unique_ptr<Machine>> Machine::incoming(const VmConfig& config, Console& console,
                                                   UniqueFd connection) {
  FdStream stream(connection.get());
  auto built = [&]() -> Result<std::unique_ptr<Machine>> {
    std::unique_ptr<Machine> m(new Machine(config, console));
    TRY(m->build("", /*incoming=*/true));
    GuestMemory& memory = m->m_board->memory();
    const auto bytes = TRY(receive_migration(
        stream, stream, memory, {config.arch, config.engine, memory.total_size()}));
    m->m_restore_began = Clock::now();
    spdlog::info("migration: all of RAM and the state received");
    auto parsed = parse_state_file(bytes);
    if (!parsed.ok()) return parsed.error().context("migration stream: the VM state");
    const StateFile& state = *parsed;
    if (state.arch != config.arch || state.engine != config.engine)
      return Error::format("migration stream: the state is of a {}/{} VM", to_string(state.arch),
                           to_string(state.engine));
    TRY(m->restore_state(state));
    // The source let go of its disks before it sent the state (a disk another process holds
    // now is refused, and the source runs on).
    for (const auto& v : m->m_board->virtio()) {
      if (auto r = v->device().activate_images(); !r.ok()) {
        for (const auto& w : m->m_board->virtio()) w->device().inactivate_images();
        return r.error().context("migration");
      }
    }
    TRY(m->m_board->begin_dirty_epoch());
    for (const auto& v : m->m_board->virtio()) v->resume();
    m->m_migration_connection = std::move(connection);
    return m;
  }();
  if (!built.ok()) {
    const std::string message = built.error().message();
    (void)write_migration_record(
        stream, MigrationRecord::kFailed,
        {reinterpret_cast<const uint8_t*>(message.data()), message.size()});
  }
  return built;
}

}  // namespace doppel
