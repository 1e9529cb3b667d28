#include "backends/slirp.h"

#if DOPPEL_HAVE_SLIRP

#include <arpa/inet.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <deque>
#include <list>
#include <thread>

#include <slirp/libslirp.h>

#include "base/log.h"
#include "base/unique_fd.h"
#include "base/thread_seal.h"

namespace doppel {

namespace {

int64_t now_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

struct Timer {
  SlirpTimerCb cb;
  void* cb_opaque;
  int64_t expire_ms = -1;  // -1: not armed
};

// Frames queued for the device while its end of the socketpair is full.
constexpr size_t kMaxPending = 4096;
// The largest frame slirp sends (its MRU plus the Ethernet header) and a guest may send.
constexpr size_t kMaxFrame = 65536;

}  // namespace

struct SlirpNet::Impl {
  std::string name = "user";
  UniqueFd device_end;  // the device's: read and written by VirtioNet
  UniqueFd stack_end;   // ours: read and written by the loop thread only
  UniqueFd wake;        // eventfd: stop, or slirp's notify()
  Slirp* slirp = nullptr;
  std::thread thread;
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> rx_dropped{0};
  // Loop thread only:
  std::list<Timer> timers;
  std::deque<std::vector<uint8_t>> pending;
  std::vector<pollfd> fds;

  ~Impl() {
    if (thread.joinable()) {
      stop = true;
      const uint64_t one = 1;
      (void)!::write(wake.get(), &one, sizeof one);
      thread.join();
    }
    if (slirp) slirp_cleanup(slirp);
  }

  // slirp -> guest: the frame behind a zeroed virtio_net_hdr (no offloads: the stack's
  // checksums are complete).
  ssize_t send_to_device(const void* buf, size_t len) {
    std::vector<uint8_t> pkt(kVnetHdrSize + len);
    std::memcpy(pkt.data() + kVnetHdrSize, buf, len);
    if (pending.empty() && ::send(stack_end.get(), pkt.data(), pkt.size(), MSG_DONTWAIT) >= 0)
      return static_cast<ssize_t>(len);
    if (pending.size() >= kMaxPending) {
      rx_dropped++;  // the guest is not taking frames; TCP will retransmit
      return static_cast<ssize_t>(len);
    }
    pending.push_back(std::move(pkt));
    return static_cast<ssize_t>(len);
  }

  void flush_pending() {
    while (!pending.empty()) {
      const auto& pkt = pending.front();
      if (::send(stack_end.get(), pkt.data(), pkt.size(), MSG_DONTWAIT) < 0) {
        if (errno == EAGAIN || errno == EINTR) return;
        rx_dropped++;  // EMSGSIZE and the like: this frame can never go
      }
      pending.pop_front();
    }
  }

  void read_from_device() {
    std::vector<uint8_t> buf(kVnetHdrSize + kMaxFrame);
    // A bounded batch, so slirp's sockets get their turn under a guest flood.
    for (int i = 0; i < 64; i++) {
      const ssize_t n = ::recv(stack_end.get(), buf.data(), buf.size(), MSG_DONTWAIT);
      if (n < 0) return;
      if (n <= static_cast<ssize_t>(kVnetHdrSize)) continue;  // a runt: nothing to route
      slirp_input(slirp, buf.data() + kVnetHdrSize, static_cast<int>(n - static_cast<ssize_t>(kVnetHdrSize)));
    }
  }

  void run_timers() {
    const int64_t now = now_ns() / 1'000'000;
    for (auto& t : timers) {
      if (t.expire_ms >= 0 && t.expire_ms <= now) {
        t.expire_ms = -1;
        t.cb(t.cb_opaque);
      }
    }
  }

  int next_timer_ms(int cap) const {
    const int64_t now = now_ns() / 1'000'000;
    int64_t best = cap;
    for (const auto& t : timers)
      if (t.expire_ms >= 0) best = std::min(best, std::max<int64_t>(0, t.expire_ms - now));
    return static_cast<int>(best);
  }

  void loop() {
    enter_thread(ThreadKind::kSlirp);
    while (!stop) {
      fds.clear();
      fds.push_back({wake.get(), POLLIN, 0});
      fds.push_back({stack_end.get(), static_cast<short>(POLLIN | (pending.empty() ? 0 : POLLOUT)), 0});
      uint32_t timeout = 1000;
      slirp_pollfds_fill(slirp, &timeout, &Impl::add_poll, this);
      const int wait = next_timer_ms(static_cast<int>(std::min<uint32_t>(timeout, 1000)));
      const int n = ::poll(fds.data(), fds.size(), wait);
      if (n < 0 && errno != EINTR) spdlog::warn("{}: poll: {}", name, std::strerror(errno));
      if (fds[0].revents & POLLIN) {
        uint64_t v;
        (void)!::read(wake.get(), &v, sizeof v);
      }
      if (fds[1].revents & POLLOUT) flush_pending();
      if (fds[1].revents & POLLIN) read_from_device();
      slirp_pollfds_poll(slirp, n < 0, &Impl::get_revents, this);
      run_timers();
    }
  }

  // ---- libslirp callbacks (all on the loop thread, or on create()'s before it starts) ----
  static Impl& self(void* opaque) { return *static_cast<Impl*>(opaque); }
  static ssize_t cb_send_packet(const void* buf, size_t len, void* opaque) {
    return self(opaque).send_to_device(buf, len);
  }
  static void cb_guest_error(const char* msg, void* opaque) {
    spdlog::debug("{}: guest error: {}", self(opaque).name, msg);
  }
  static int64_t cb_clock_get_ns(void*) { return now_ns(); }
  static void* cb_timer_new(SlirpTimerCb cb, void* cb_opaque, void* opaque) {
    auto& timers = self(opaque).timers;
    timers.push_back(Timer{cb, cb_opaque});
    return &timers.back();
  }
  static void cb_timer_free(void* timer, void* opaque) {
    self(opaque).timers.remove_if([&](const Timer& t) { return &t == timer; });
  }
  static void cb_timer_mod(void* timer, int64_t expire_ms, void*) {
    static_cast<Timer*>(timer)->expire_ms = expire_ms;
  }
  static void cb_register_poll_fd(int, void*) {}
  static void cb_unregister_poll_fd(int, void*) {}
  static void cb_notify(void* opaque) {
    const uint64_t one = 1;
    (void)!::write(self(opaque).wake.get(), &one, sizeof one);
  }
  static int add_poll(int fd, int events, void* opaque) {
    short ev = 0;
    if (events & SLIRP_POLL_IN) ev |= POLLIN;
    if (events & SLIRP_POLL_OUT) ev |= POLLOUT;
    if (events & SLIRP_POLL_PRI) ev |= POLLPRI;
    auto& fds = self(opaque).fds;
    fds.push_back({fd, ev, 0});
    return static_cast<int>(fds.size() - 1);
  }
  static int get_revents(int idx, void* opaque) {
    auto& fds = self(opaque).fds;
    if (idx < 0 || static_cast<size_t>(idx) >= fds.size()) return 0;
    const short r = fds[static_cast<size_t>(idx)].revents;
    int out = 0;
    if (r & POLLIN) out |= SLIRP_POLL_IN;
    if (r & POLLOUT) out |= SLIRP_POLL_OUT;
    if (r & POLLPRI) out |= SLIRP_POLL_PRI;
    if (r & POLLERR) out |= SLIRP_POLL_ERR;
    if (r & POLLHUP) out |= SLIRP_POLL_HUP;
    return out;
  }
};

namespace {
const SlirpCb kCallbacks = {
    .send_packet = &SlirpNet::Impl::cb_send_packet,
    .guest_error = &SlirpNet::Impl::cb_guest_error,
    .clock_get_ns = &SlirpNet::Impl::cb_clock_get_ns,
    .timer_new = &SlirpNet::Impl::cb_timer_new,
    .timer_free = &SlirpNet::Impl::cb_timer_free,
    .timer_mod = &SlirpNet::Impl::cb_timer_mod,
    .register_poll_fd = &SlirpNet::Impl::cb_register_poll_fd,
    .unregister_poll_fd = &SlirpNet::Impl::cb_unregister_poll_fd,
    .notify = &SlirpNet::Impl::cb_notify,
    .init_completed = nullptr,
    .timer_new_opaque = nullptr,
};
}  // namespace

Result<std::unique_ptr<SlirpNet>> SlirpNet::create(const std::vector<HostFwd>& forwards) {
  auto impl = std::make_unique<Impl>();
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0)
    return Error::from_errno("user network: socketpair");
  impl->device_end.reset(sv[0]);
  impl->stack_end.reset(sv[1]);
  // Room for a burst of full-size frames each way before either side has to wait.
  for (int fd : sv) {
    const int size = 4 << 20;
    (void)::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
  }
  impl->wake.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!impl->wake.valid()) return Error::from_errno("user network: eventfd");

  SlirpConfig cfg{};
  cfg.version = 4;
  cfg.restricted = 0;
  cfg.in_enabled = true;
  ::inet_pton(AF_INET, kUserNetNetwork, &cfg.vnetwork);
  ::inet_pton(AF_INET, kUserNetMask, &cfg.vnetmask);
  ::inet_pton(AF_INET, kUserNetGateway, &cfg.vhost);
  ::inet_pton(AF_INET, kUserNetGuest, &cfg.vdhcp_start);
  ::inet_pton(AF_INET, kUserNetDns, &cfg.vnameserver);
  cfg.in6_enabled = false;
  cfg.vhostname = "doppel";
  cfg.if_mtu = 0;  // slirp's defaults (1500)
  cfg.if_mru = 0;
  cfg.disable_host_loopback = false;  // 10.0.2.2 reaches the host's 127.0.0.1, as in QEMU
  impl->slirp = slirp_new(&cfg, &kCallbacks, impl.get());
  if (!impl->slirp) return Error("user network: libslirp could not start its stack");

  for (const auto& f : forwards) {
    errno = 0;
    if (slirp_add_hostfwd(impl->slirp, f.udp ? 1 : 0, f.host_addr, f.host_port, f.guest_addr,
                          f.guest_port) < 0) {
      const int e = errno;
      return Error(fmt::format("user network: hostfwd={}: cannot listen on the host port{}",
                               to_string(f), e ? fmt::format(": {}", std::strerror(e)) : std::string()),
                   e);
    }
  }
  Impl* raw = impl.get();
  impl->thread = std::thread([raw] { raw->loop(); });
  return std::unique_ptr<SlirpNet>(new SlirpNet(std::move(impl)));
}

SlirpNet::SlirpNet(std::unique_ptr<Impl> impl) : m_impl(std::move(impl)) {}
SlirpNet::~SlirpNet() = default;
int SlirpNet::fd() const { return m_impl->device_end.get(); }
const std::string& SlirpNet::name() const { return m_impl->name; }
uint64_t SlirpNet::rx_dropped() const { return m_impl->rx_dropped.load(); }
bool slirp_available() { return true; }

}  // namespace doppel

#else  // !DOPPEL_HAVE_SLIRP

namespace doppel {

struct SlirpNet::Impl {};

Result<std::unique_ptr<SlirpNet>> SlirpNet::create(const std::vector<HostFwd>&) {
  return Error("user network: this doppel was built without libslirp (a DOPPEL_STATIC build: "
               "Debian ships no static libslirp); use a TAP, or the dynamic build");
}
SlirpNet::SlirpNet(std::unique_ptr<Impl> impl) : m_impl(std::move(impl)) {}
SlirpNet::~SlirpNet() = default;
int SlirpNet::fd() const { return -1; }
const std::string& SlirpNet::name() const {
  static const std::string kName = "user";
  return kName;
}
uint64_t SlirpNet::rx_dropped() const { return 0; }
bool slirp_available() { return false; }

}  // namespace doppel

#endif
