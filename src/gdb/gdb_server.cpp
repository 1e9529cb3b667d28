#include "gdb/gdb_server.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <condition_variable>
#include <cstring>

#include "base/log.h"
#include "gdb/gdb_session.h"
#include "vmm/exit_codes.h"
#include "base/thread_seal.h"

namespace doppel::gdb {

namespace {

// The session's view of the current Machine. Every call is made on the server's thread
// with the server's mutex held.
class MachineTarget final : public GdbTarget {
 public:
  Machine* machine = nullptr;
  std::optional<int> exited;  // the last machine's exit code, once it ended
  DebugArch debug_arch;

  unsigned vcpu_count() override {
    return machine ? machine->board().vcpu_count() : 1;
  }
  const DebugArch& arch() override { return debug_arch; }
  Result<void> stop() override {
    TRY(live());
    return machine->debug_stop();
  }
  Result<void> resume(const std::vector<DebugControl>& controls) override {
    TRY(live());
    return machine->debug_resume(controls);
  }
  std::optional<Stop> stop_event() override {
    if (!machine) return std::nullopt;
    const auto s = machine->last_debug_stop();
    if (!s) return std::nullopt;
    return Stop{s->vcpu, s->kind, s->addr};
  }
  std::optional<int> exit_code() override { return machine ? std::nullopt : exited; }
  Result<std::vector<uint8_t>> read_registers(unsigned vcpu) override {
    return TRY(stopped_vcpu(vcpu))->debug_read_registers();
  }
  Result<void> write_register(unsigned vcpu, unsigned index,
                              std::span<const uint8_t> value) override {
    return TRY(stopped_vcpu(vcpu))->debug_write_register(index, value);
  }
  Result<uint64_t> translate(unsigned vcpu, uint64_t va) override {
    return TRY(stopped_vcpu(vcpu))->debug_translate(va);
  }
  Result<void> read_physical(uint64_t pa, std::span<uint8_t> out) override {
    TRY(stopped_vcpu(0));
    const uint8_t* p = machine->board().memory().host_ptr(pa, out.size());
    if (!p) return Error::format("{:#x}: {} bytes not in guest RAM", pa, out.size());
    std::memcpy(out.data(), p, out.size());
    return ok();
  }
  Result<void> write_physical(uint64_t pa, std::span<const uint8_t> data) override {
    TRY(stopped_vcpu(0));
    uint8_t* p = machine->board().memory().host_ptr_for_write(pa, data.size());
    if (!p) return Error::format("{:#x}: {} bytes not in guest RAM", pa, data.size());
    std::memcpy(p, data.data(), data.size());
    for (unsigned i = 0; i < machine->board().vcpu_count(); ++i)
      machine->board().vcpu(i).debug_memory_written();
    return ok();
  }
  std::string describe(unsigned vcpu) override {
    auto v = stopped_vcpu(vcpu);
    if (!v.ok()) return v.error().message() + "\n";
    return (*v)->debug_describe();
  }
  std::string status() override {
    if (!machine) return exited ? fmt::format("ended (exit code {})", *exited) : "no VM";
    return machine->state() == VmState::kPaused ? "paused" : "running";
  }
  void kill() override {
    if (machine) machine->request_stop(kExitQuit, "killed by the debugger (gdb kill)");
  }

 private:
  Result<void> live() {
    if (!machine) return Error("the VM has ended");
    return ok();
  }
  // The vCPU, if the VM is paused (a debugger never touches a running vCPU).
  Result<Vcpu*> stopped_vcpu(unsigned index) {
    TRY(live());
    if (machine->state() != VmState::kPaused) return Error("the VM is not stopped");
    if (index >= machine->board().vcpu_count())
      return Error::format("vCPU {} does not exist", index);
    return &machine->board().vcpu(index);
  }
};

bool write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

void drain(int eventfd) {
  uint64_t v;
  [[maybe_unused]] const ssize_t n = ::read(eventfd, &v, sizeof v);
}

}  // namespace

struct GdbServer::Impl {
  Endpoint endpoint;
  UniqueFd listener;
  UniqueFd notify;  // eventfd: the machine stopped for the debugger, or changed
  UniqueFd quit;    // eventfd: the server is closing
  bool wait = false;
  std::thread thread;

  std::mutex mutex;
  std::condition_variable cv;
  MachineTarget target;  // GUARDED_BY(mutex)
  bool machine_seen = false;  // GUARDED_BY(mutex): a machine was attached once
  bool closing = false;       // GUARDED_BY(mutex)

  void run();
  void serve(int fd);
  void signal(int fd) {
    const uint64_t one = 1;
    [[maybe_unused]] const ssize_t n = ::write(fd, &one, sizeof one);
  }
};

GdbServer::GdbServer(std::unique_ptr<Impl> impl) : m_impl(std::move(impl)) {}

Result<std::unique_ptr<GdbServer>> GdbServer::create(const std::string& endpoint, bool wait) {
  auto impl = std::make_unique<Impl>();
  impl->endpoint = TRY(parse_endpoint(endpoint));
  impl->listener = TRY(listen_endpoint(impl->endpoint));
  impl->notify = UniqueFd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  impl->quit = UniqueFd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!impl->notify.valid() || !impl->quit.valid()) return Error::from_errno("gdb: eventfd");
  impl->wait = wait;
  spdlog::info("gdb: waiting for a debugger on {}{}", endpoint,
               wait ? " (the VM starts when it continues)" : "");
  Impl* raw = impl.get();
  impl->thread = std::thread([raw] { raw->run(); });
  return std::unique_ptr<GdbServer>(new GdbServer(std::move(impl)));
}

GdbServer::~GdbServer() {
  {
    std::lock_guard lock(m_impl->mutex);
    m_impl->closing = true;
  }
  m_impl->cv.notify_all();
  m_impl->signal(m_impl->quit.get());
  if (m_impl->thread.joinable()) m_impl->thread.join();
  if (m_impl->endpoint.kind == Endpoint::Kind::kUnix) ::unlink(m_impl->endpoint.path.c_str());
}

Result<void> GdbServer::attach_machine(Machine& machine) {
  const DebugArch* arch = machine.board().vcpu(0).debug_arch();
  if (!arch)
    return Error::format("--gdb: the {} engine has no debugger support yet",
                         to_string(machine.config().engine));
  bool hold = false;
  {
    std::lock_guard lock(m_impl->mutex);
    hold = m_impl->wait && !m_impl->machine_seen;
  }
  if (hold) TRY(machine.hold_at_start());
  machine.set_debug_notify_fd(m_impl->notify.get());
  {
    std::lock_guard lock(m_impl->mutex);
    m_impl->target.machine = &machine;
    m_impl->target.exited.reset();
    m_impl->target.debug_arch = *arch;
    m_impl->machine_seen = true;
  }
  m_impl->cv.notify_all();
  m_impl->signal(m_impl->notify.get());
  return ok();
}

void GdbServer::detach_machine(int exit_code) {
  {
    std::lock_guard lock(m_impl->mutex);
    if (!m_impl->target.machine) return;
    m_impl->target.machine->set_debug_notify_fd(-1);
    m_impl->target.machine = nullptr;
    m_impl->target.exited = exit_code;
  }
  m_impl->signal(m_impl->notify.get());
}

void GdbServer::Impl::run() {
  enter_thread(ThreadKind::kGdb);
  for (;;) {
    pollfd fds[2] = {{listener.get(), POLLIN, 0}, {quit.get(), POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      spdlog::error("gdb: poll: {}", std::strerror(errno));
      return;
    }
    if (fds[1].revents) return;
    if (!fds[0].revents) continue;
    auto conn = accept_one(listener.get(), endpoint);
    if (!conn.ok()) {
      spdlog::warn("gdb: {}", conn.error().message());
      continue;
    }
    spdlog::info("gdb: a debugger connected on {}", endpoint.text);
    serve(conn->get());
    spdlog::info("gdb: the debugger disconnected");
  }
}

void GdbServer::Impl::serve(int fd) {
  std::unique_lock lock(mutex);
  // A debugger that connects before the VM exists waits for it.
  cv.wait(lock, [&] { return closing || target.machine || target.exited; });
  if (closing) return;
  bool connected = true;
  GdbSession session(target, [&](std::string_view bytes) {
    if (connected && !write_all(fd, bytes)) connected = false;
  });
  session.attach();
  std::vector<uint8_t> buf(4096);
  while (connected && !session.finished()) {
    lock.unlock();
    pollfd fds[3] = {{fd, POLLIN, 0}, {notify.get(), POLLIN, 0}, {quit.get(), POLLIN, 0}};
    const int n = ::poll(fds, 3, -1);
    lock.lock();
    if (n < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (fds[1].revents) {
      drain(notify.get());
      session.on_target_event();
    }
    if (fds[0].revents) {
      const ssize_t got = ::recv(fd, buf.data(), buf.size(), 0);
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) break;
      session.receive(std::span(buf.data(), static_cast<size_t>(got)));
    }
    if (fds[2].revents) break;
  }
  if (!session.finished()) session.disconnect();
}

}  // namespace doppel::gdb
