#include "backends/tap.h"

#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <cstring>

#include "base/log.h"

namespace doppel {

namespace {

// The processes attached to TAP `name`: a tun file descriptor's fdinfo says "iff:\tNAME".
std::string tap_holders(const std::string& name) try {
  std::string out;
  std::error_code ec;
  for (const auto& proc : std::filesystem::directory_iterator("/proc", ec)) {
    const std::string pid = proc.path().filename().string();
    if (pid.empty() || !std::isdigit(static_cast<unsigned char>(pid[0]))) continue;
    std::error_code ec2;
    for (const auto& fd : std::filesystem::directory_iterator(proc.path() / "fdinfo", ec2)) {
      std::ifstream in(fd.path());
      std::string line;
      bool found = false;
      while (std::getline(in, line))
        if (line == "iff:\t" + name) found = true;
      if (!found) continue;
      std::ifstream comm_in(proc.path() / "comm");
      std::string comm;
      std::getline(comm_in, comm);
      out += fmt::format("{}pid {} ({})", out.empty() ? "" : ", ", pid, comm);
      break;
    }
  }
  return out;
} catch (const std::exception&) {
  return {};  // /proc changed under us: no name, just the reason
}

}  // namespace

Result<std::unique_ptr<Tap>> Tap::open(const std::string& name) {
  const std::string what = fmt::format("tap '{}'", name);
  if (name.empty() || name.size() >= IFNAMSIZ)
    return Error::format("{}: interface names are 1 to {} characters", what, IFNAMSIZ - 1);
  auto tap = std::unique_ptr<Tap>(new Tap());
  tap->m_name = name;
  tap->m_is_tap = true;
  tap->m_fd.reset(::open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC));
  if (!tap->m_fd.valid()) return Error::from_errno(fmt::format("{}: /dev/net/tun", what));
  unsigned features = 0;
  if (::ioctl(tap->fd(), TUNGETFEATURES, &features) != 0)
    return Error::from_errno(fmt::format("{}: TUNGETFEATURES", what));
  if (!(features & IFF_VNET_HDR))
    return Error::format("{}: the host's tun driver lacks IFF_VNET_HDR", what);
  ifreq ifr{};
  std::copy(name.begin(), name.end(), ifr.ifr_name);
  ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
  if (::ioctl(tap->fd(), TUNSETIFF, &ifr) != 0) {
    const int e = errno;
    std::string hint;
    if (e == EBUSY) {
      const std::string holders = tap_holders(name);
      hint = fmt::format("another process has it open{}; each VM needs its own TAP",
                         holders.empty() ? "" : fmt::format(" ({})", holders));
    } else if (e == EINVAL) {
      hint = "an interface of that name exists and is not a TAP doppel can use (a TUN device, or "
             "one made without vnet headers?)";
    } else {
      hint = fmt::format("creating a TAP needs CAP_NET_ADMIN; or create it first with `ip tuntap "
                         "add {} mode tap user $USER`",
                         name);
    }
    return Error(fmt::format("{}: TUNSETIFF: {} ({})", what, std::strerror(e), hint), e);
  }
  int hdr = static_cast<int>(kVnetHdrSize);
  if (::ioctl(tap->fd(), TUNSETVNETHDRSZ, &hdr) != 0)
    return Error::from_errno(fmt::format("{}: TUNSETVNETHDRSZ", what));
  // Probe: can the host hand us checksum-less and TSO frames?
  const unsigned all = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN;
  tap->m_offloads = ::ioctl(tap->fd(), TUNSETOFFLOAD, all) == 0;
  (void)::ioctl(tap->fd(), TUNSETOFFLOAD, 0);
  // Best effort: bring the link up (needs CAP_NET_ADMIN; a pre-made TAP may be up already).
  UniqueFd sock(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (sock.valid() && ::ioctl(sock.get(), SIOCGIFFLAGS, &ifr) == 0 && !(ifr.ifr_flags & IFF_UP)) {
    ifr.ifr_flags = static_cast<short>(ifr.ifr_flags | IFF_UP);
    if (::ioctl(sock.get(), SIOCSIFFLAGS, &ifr) != 0)
      spdlog::info("{}: could not bring the link up ({}); do it with `ip link set {} up`", what,
                   std::strerror(errno), name);
  }
  return tap;
}

std::unique_ptr<Tap> Tap::from_fd(UniqueFd fd, std::string name) {
  auto tap = std::unique_ptr<Tap>(new Tap());
  tap->m_fd = std::move(fd);
  tap->m_name = std::move(name);
  return tap;
}

Result<void> Tap::set_offloads(unsigned tun_flags) {
  if (!m_is_tap) return {};
  if (::ioctl(m_fd.get(), TUNSETOFFLOAD, tun_flags) != 0)
    return Error::from_errno(fmt::format("tap '{}': TUNSETOFFLOAD {:#x}", m_name, tun_flags));
  return {};
}

}  // namespace doppel
