// hostfwd= as QEMU's -nic user writes it, and what a user gets wrong in it.
#include "backends/slirp_options.h"

#include <arpa/inet.h>

#include <gtest/gtest.h>

namespace doppel {
namespace {

std::string addr(in_addr a) {
  char buf[INET_ADDRSTRLEN] = {};
  ::inet_ntop(AF_INET, &a, buf, sizeof buf);
  return buf;
}

std::string error_of(std::string_view text) {
  auto r = parse_hostfwd(text);
  return r.ok() ? std::string("(parsed)") : r.error().message();
}

TEST(HostFwd, QemuSyntaxWithDefaults) {
  auto f = parse_hostfwd("tcp:127.0.0.1:8080-:80");
  ASSERT_TRUE(f.ok()) << f.error().message();
  EXPECT_FALSE(f->udp);
  EXPECT_EQ(addr(f->host_addr), "127.0.0.1");
  EXPECT_EQ(f->host_port, 8080);
  EXPECT_EQ(addr(f->guest_addr), "10.0.2.15");  // the DHCP address
  EXPECT_EQ(f->guest_port, 80);

  f = parse_hostfwd("udp::5353-10.0.2.20:53");
  ASSERT_TRUE(f.ok()) << f.error().message();
  EXPECT_TRUE(f->udp);
  EXPECT_EQ(addr(f->host_addr), "0.0.0.0");  // every host address, as QEMU
  EXPECT_EQ(addr(f->guest_addr), "10.0.2.20");
  EXPECT_EQ(f->guest_port, 53);

  f = parse_hostfwd("::2222-:22");  // QEMU: no protocol means tcp
  ASSERT_TRUE(f.ok()) << f.error().message();
  EXPECT_FALSE(f->udp);
  EXPECT_EQ(f->host_port, 2222);
}

TEST(HostFwd, PrintsWhatItReadsBack) {
  for (const char* text : {"tcp:127.0.0.1:8080-10.0.2.15:80", "udp::1-10.0.2.100:65535", "tcp::2222-:22"}) {
    auto f = parse_hostfwd(text);
    ASSERT_TRUE(f.ok()) << text << ": " << f.error().message();
    auto again = parse_hostfwd(to_string(*f));
    ASSERT_TRUE(again.ok()) << to_string(*f);
    EXPECT_EQ(*again, *f) << text;
  }
  EXPECT_EQ(to_string(*parse_hostfwd("tcp::2222-:22")), "tcp::2222-10.0.2.15:22");
}

TEST(HostFwd, RejectsWithTheReason) {
  EXPECT_NE(error_of("sctp::1-:2").find("the protocol must be tcp or udp"), std::string::npos);
  EXPECT_NE(error_of("tcp::8080").find("no '-'"), std::string::npos);
  EXPECT_NE(error_of("tcp:8080-:80").find("the host side must be [HOSTADDR]:HOSTPORT"), std::string::npos);
  EXPECT_NE(error_of("tcp::8080-80").find("the guest side must be"), std::string::npos);
  EXPECT_NE(error_of("tcp::0-:80").find("host port '0' is not a port number"), std::string::npos);
  EXPECT_NE(error_of("tcp::65536-:80").find("host port '65536'"), std::string::npos);
  EXPECT_NE(error_of("tcp::80x-:80").find("host port '80x'"), std::string::npos);
  EXPECT_NE(error_of("tcp::-:80").find("host port ''"), std::string::npos);
  EXPECT_NE(error_of("tcp::8080-:").find("guest port ''"), std::string::npos);
  EXPECT_NE(error_of("tcp:localhost:8080-:80").find("host address 'localhost' is not an IPv4 address"),
            std::string::npos);
  EXPECT_NE(error_of("tcp:1.2.3:8080-:80").find("is not an IPv4 address"), std::string::npos);
  EXPECT_NE(error_of("tcp::8080-192.168.1.5:80").find("outside the user network"), std::string::npos);
  EXPECT_NE(error_of("tcp::8080-10.0.2.2:80").find("belongs to the user network itself"), std::string::npos);
  EXPECT_NE(error_of("tcp::8080-10.0.2.255:80").find("belongs to the user network itself"), std::string::npos);
  // The message names the whole text and shows the syntax.
  EXPECT_NE(error_of("tcp::0-:80").find("hostfwd 'tcp::0-:80'"), std::string::npos);
  EXPECT_NE(error_of("tcp::0-:80").find("tcp:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT"), std::string::npos);
}

}  // namespace
}  // namespace doppel
