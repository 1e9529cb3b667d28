// User-mode networking driven through its packet fd, as virtio-net drives it: frames behind
// a 12-byte virtio_net_hdr. The stack answers ARP for the gateway, a host connection to a
// forwarded port becomes a SYN to the guest, and a host port already taken is an error that
// names the forward.
#include "backends/slirp.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cstring>
#include <vector>

#include <gtest/gtest.h>

#include "base/unique_fd.h"

namespace doppel {
namespace {

constexpr std::array<uint8_t, 6> kGuestMac{0x52, 0x54, 0x00, 0x12, 0x34, 0x56};

uint16_t free_port() {
  UniqueFd s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (::bind(s.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return 0;
  ::getsockname(s.get(), reinterpret_cast<sockaddr*>(&a), &len);
  return ntohs(a.sin_port);
}

// The next frame from the stack (without its virtio_net_hdr), or empty after 5 s.
std::vector<uint8_t> next_frame(int fd) {
  pollfd p{fd, POLLIN, 0};
  if (::poll(&p, 1, 5000) != 1) return {};
  std::vector<uint8_t> buf(70000);
  const ssize_t n = ::recv(fd, buf.data(), buf.size(), 0);
  if (n <= static_cast<ssize_t>(NetBackend::kVnetHdrSize)) return {};
  return {buf.begin() + NetBackend::kVnetHdrSize, buf.begin() + n};
}

void send_frame(int fd, const std::vector<uint8_t>& frame) {
  std::vector<uint8_t> pkt(NetBackend::kVnetHdrSize, 0);
  pkt.insert(pkt.end(), frame.begin(), frame.end());
  ASSERT_EQ(::send(fd, pkt.data(), pkt.size(), 0), static_cast<ssize_t>(pkt.size()));
}

// "Who has 10.0.2.2? Tell 10.0.2.15", from the guest.
std::vector<uint8_t> arp_request_for_gateway() {
  std::vector<uint8_t> f = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
  f.insert(f.end(), kGuestMac.begin(), kGuestMac.end());
  const uint8_t rest[] = {0x08, 0x06, 0, 1, 0x08, 0x00, 6, 4, 0, 1};
  f.insert(f.end(), std::begin(rest), std::end(rest));
  f.insert(f.end(), kGuestMac.begin(), kGuestMac.end());
  const uint8_t ips[] = {10, 0, 2, 15, 0, 0, 0, 0, 0, 0, 10, 0, 2, 2};
  f.insert(f.end(), std::begin(ips), std::end(ips));
  f.resize(60, 0);
  return f;
}

bool is_arp_reply_from_gateway(const std::vector<uint8_t>& f) {
  return f.size() >= 42 && f[12] == 0x08 && f[13] == 0x06 && f[20] == 0 && f[21] == 2 &&
         std::memcmp(&f[28], "\x0a\x00\x02\x02", 4) == 0 && std::memcmp(&f[0], kGuestMac.data(), 6) == 0;
}

TEST(SlirpNet, AnswersArpForTheGatewayAndOffersNoOffloads) {
  if (!slirp_available()) GTEST_SKIP() << "built without libslirp";
  auto net = SlirpNet::create({});
  ASSERT_TRUE(net.ok()) << net.error().message();
  EXPECT_FALSE((*net)->accepts_offloads());
  EXPECT_FALSE((*net)->supports_offloads());
  send_frame((*net)->fd(), arp_request_for_gateway());
  const auto reply = next_frame((*net)->fd());
  ASSERT_FALSE(reply.empty()) << "no answer from the stack";
  EXPECT_TRUE(is_arp_reply_from_gateway(reply));
}

TEST(SlirpNet, AHostConnectionToAForwardedPortBecomesASynToTheGuest) {
  if (!slirp_available()) GTEST_SKIP() << "built without libslirp";
  const uint16_t port = free_port();
  ASSERT_NE(port, 0);
  auto fwd = parse_hostfwd(fmt::format("tcp:127.0.0.1:{}-:80", port));
  ASSERT_TRUE(fwd.ok());
  auto net = SlirpNet::create({*fwd});
  ASSERT_TRUE(net.ok()) << net.error().message();
  const int fd = (*net)->fd();
  // The stack learns the guest's MAC from its ARP.
  send_frame(fd, arp_request_for_gateway());
  ASSERT_TRUE(is_arp_reply_from_gateway(next_frame(fd)));

  UniqueFd client(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const int r = ::connect(client.get(), reinterpret_cast<sockaddr*>(&a), sizeof a);
  ASSERT_TRUE(r == 0 || errno == EINPROGRESS) << std::strerror(errno);
  bool syn = false;
  for (int i = 0; i < 5 && !syn; i++) {
    const auto f = next_frame(fd);
    ASSERT_FALSE(f.empty()) << "no SYN within 5 s";
    // IPv4, TCP, to 10.0.2.15 port 80, SYN without ACK.
    syn = f.size() >= 54 && f[12] == 0x08 && f[13] == 0x00 && f[23] == 6 &&
          std::memcmp(&f[30], "\x0a\x00\x02\x0f", 4) == 0 && f[36] == 0 && f[37] == 80 &&
          (f[47] & 0x12) == 0x02;
  }
  EXPECT_TRUE(syn);
}

TEST(SlirpNet, AHostPortInUseIsAnErrorNamingTheForward) {
  if (!slirp_available()) GTEST_SKIP() << "built without libslirp";
  const uint16_t port = free_port();
  ASSERT_NE(port, 0);
  auto fwd = parse_hostfwd(fmt::format("tcp:127.0.0.1:{}-:22", port));
  ASSERT_TRUE(fwd.ok());
  auto first = SlirpNet::create({*fwd});
  ASSERT_TRUE(first.ok()) << first.error().message();
  auto second = SlirpNet::create({*fwd});
  ASSERT_FALSE(second.ok());
  EXPECT_NE(second.error().message().find(fmt::format("hostfwd=tcp:127.0.0.1:{}-10.0.2.15:22", port)),
            std::string::npos)
      << second.error().message();
}

}  // namespace
}  // namespace doppel
