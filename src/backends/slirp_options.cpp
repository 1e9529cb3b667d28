#include "backends/slirp_options.h"

#include <arpa/inet.h>

#include <charconv>

namespace doppel {

namespace {

Result<uint16_t> parse_port(std::string_view text, std::string_view what) {
  unsigned v = 0;
  const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc() || ptr != text.data() + text.size() || v < 1 || v > 65535)
    return Error::format("{} '{}' is not a port number (1 to 65535)", what, text);
  return static_cast<uint16_t>(v);
}

Result<in_addr> parse_addr(std::string_view text, std::string_view what) {
  in_addr a{};
  // inet_pton takes only the dotted quad (no "1", no hex, no octal): what QEMU documents.
  const std::string s(text);
  if (s.find('\0') != std::string::npos || ::inet_pton(AF_INET, s.c_str(), &a) != 1)
    return Error::format("{} '{}' is not an IPv4 address", what, text);
  return a;
}

}  // namespace

Result<HostFwd> parse_hostfwd(std::string_view text) {
  const auto fail = [&](std::string_view why) {
    return Error::format("hostfwd '{}': {} (tcp:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT)", text, why);
  };
  HostFwd fwd;
  std::string_view rest = text;
  if (rest.starts_with("tcp:")) {
    rest.remove_prefix(4);
  } else if (rest.starts_with("udp:")) {
    fwd.udp = true;
    rest.remove_prefix(4);
  } else if (rest.starts_with(":")) {
    rest.remove_prefix(1);  // QEMU: the protocol may be left out, meaning tcp
  } else {
    return fail("the protocol must be tcp or udp");
  }
  const size_t dash = rest.find('-');
  if (dash == std::string_view::npos) return fail("no '-' between the host and the guest side");
  const std::string_view host = rest.substr(0, dash), guest = rest.substr(dash + 1);
  const size_t hcolon = host.find(':'), gcolon = guest.find(':');
  if (hcolon == std::string_view::npos || host.find(':', hcolon + 1) != std::string_view::npos)
    return fail("the host side must be [HOSTADDR]:HOSTPORT");
  if (gcolon == std::string_view::npos || guest.find(':', gcolon + 1) != std::string_view::npos)
    return fail("the guest side must be [GUESTADDR]:GUESTPORT");

  fwd.host_addr.s_addr = htonl(INADDR_ANY);
  if (hcolon > 0) {
    auto a = parse_addr(host.substr(0, hcolon), "host address");
    if (!a) return fail(a.error().message());
    fwd.host_addr = *a;
  }
  auto hp = parse_port(host.substr(hcolon + 1), "host port");
  if (!hp) return fail(hp.error().message());
  fwd.host_port = *hp;

  in_addr net{}, mask{}, gw{}, dns{};
  ::inet_pton(AF_INET, kUserNetNetwork, &net);
  ::inet_pton(AF_INET, kUserNetMask, &mask);
  ::inet_pton(AF_INET, kUserNetGateway, &gw);
  ::inet_pton(AF_INET, kUserNetDns, &dns);
  ::inet_pton(AF_INET, kUserNetGuest, &fwd.guest_addr);
  if (gcolon > 0) {
    auto a = parse_addr(guest.substr(0, gcolon), "guest address");
    if (!a) return fail(a.error().message());
    const uint32_t host_part = ntohl(a->s_addr) & ~ntohl(mask.s_addr);
    if ((a->s_addr & mask.s_addr) != net.s_addr)
      return fail(fmt::format("guest address {} is outside the user network {}/24",
                              guest.substr(0, gcolon), kUserNetNetwork));
    if (a->s_addr == gw.s_addr || a->s_addr == dns.s_addr || host_part == 0 || host_part == 255)
      return fail(fmt::format("guest address {} belongs to the user network itself",
                              guest.substr(0, gcolon)));
    fwd.guest_addr = *a;
  }
  auto gp = parse_port(guest.substr(gcolon + 1), "guest port");
  if (!gp) return fail(gp.error().message());
  fwd.guest_port = *gp;
  return fwd;
}

std::string to_string(const HostFwd& fwd) {
  char host[INET_ADDRSTRLEN] = {}, guest[INET_ADDRSTRLEN] = {};
  ::inet_ntop(AF_INET, &fwd.host_addr, host, sizeof host);
  ::inet_ntop(AF_INET, &fwd.guest_addr, guest, sizeof guest);
  const bool any = fwd.host_addr.s_addr == htonl(INADDR_ANY);
  return fmt::format("{}:{}:{}-{}:{}", fwd.udp ? "udp" : "tcp", any ? "" : host, fwd.host_port, guest,
                     fwd.guest_port);
}

}  // namespace doppel
