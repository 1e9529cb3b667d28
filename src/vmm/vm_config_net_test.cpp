// --net user[,hostfwd=...] and the VM file's "user"/"hostfwd": what they build and what a
// user gets wrong in them.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "vmm/vm_config.h"

namespace doppel {
namespace {

using json = nlohmann::json;

TEST(UserNetSpec, UserWithForwardsAndMac) {
  auto net = parse_net_spec("user,hostfwd=tcp:127.0.0.1:8080-:80,hostfwd=tcp::2222-:22,mac=52:54:00:00:00:01");
  ASSERT_TRUE(net.ok()) << net.error().message();
  EXPECT_TRUE(net->user);
  EXPECT_TRUE(net->tap.empty());
  ASSERT_EQ(net->hostfwds.size(), 2u);
  EXPECT_EQ(net->hostfwds[0].host_port, 8080);
  EXPECT_EQ(net->hostfwds[1].guest_port, 22);
  ASSERT_TRUE(net->mac.has_value());
  EXPECT_TRUE(parse_net_spec("user")->hostfwds.empty());
}

TEST(UserNetSpec, Errors) {
  auto r = parse_net_spec("user,hostfwd=tcp::99999-:80");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("host port '99999'"), std::string::npos) << r.error().message();
  r = parse_net_spec("user,tap=tap0");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("unknown option 'tap=tap0' for a user network"), std::string::npos);
  r = parse_net_spec("tap=tap0,hostfwd=tcp::1-:2");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("unknown option 'hostfwd=tcp::1-:2'"), std::string::npos);
  r = parse_net_spec("mac=52:54:00:00:00:01");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("tap=NAME or user is required"), std::string::npos);
}

TEST(UserNetSpec, VmFileRoundTripsAndChecks) {
  VmConfig config;
  auto r = apply_json(config, json::parse(R"({"nets": [{"user": true, "hostfwd": ["tcp::8080-:80"]},
                                                         {"tap": "tap1"}]})"));
  ASSERT_TRUE(r.ok()) << r.error().message();
  ASSERT_EQ(config.nets.size(), 2u);
  EXPECT_TRUE(config.nets[0].user);
  ASSERT_EQ(config.nets[0].hostfwds.size(), 1u);
  EXPECT_FALSE(config.nets[1].user);
  VmConfig again;
  ASSERT_TRUE(apply_json(again, to_json(config)).ok()) << to_json(config).dump();
  EXPECT_EQ(to_json(again), to_json(config));
  EXPECT_EQ(to_json(config)["nets"][0]["hostfwd"][0], "tcp::8080-10.0.2.15:80");

  const auto error_of = [](const char* text) {
    VmConfig c;
    auto e = apply_json(c, json::parse(text));
    return e.ok() ? std::string("(ok)") : e.error().message();
  };
  EXPECT_NE(error_of(R"({"nets": [{"user": true, "tap": "t"}]})").find("nets[0]: needs exactly one of"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"nets": [{"mac": "52:54:00:00:00:01"}]})").find("nets[0]: needs exactly one of"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"nets": [{"user": true, "hostfwd": "tcp::1-:2"}]})").find("nets[0].hostfwd: must be an array"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"nets": [{"user": true, "hostfwd": ["tcp::0-:2"]}]})").find("nets[0].hostfwd[0]: hostfwd 'tcp::0-:2'"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"nets": [{"tap": "t", "hostfwd": []}]})").find("only for a user network"),
            std::string::npos);
}

TEST(UserNetSpec, TwoUserNetsButNotOneHostPortTwice) {
  VmConfig config;
  config.nets = {*parse_net_spec("user,hostfwd=tcp::8080-:80"), *parse_net_spec("user")};
  EXPECT_TRUE(validate_ranges(config, 0).ok()) << validate_ranges(config, 0).error().message();
  config.nets.push_back(*parse_net_spec("user,hostfwd=tcp:127.0.0.1:8080-:81"));
  auto r = validate_ranges(config, 0);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("forwarded twice"), std::string::npos) << r.error().message();
  config.nets.back() = *parse_net_spec("user,hostfwd=udp:127.0.0.1:8080-:81");  // udp is another port
  EXPECT_TRUE(validate_ranges(config, 0).ok());
}

}  // namespace
}  // namespace doppel

namespace doppel {
namespace {

TEST(VsockSpec, CidAndUdsOnTheCommandLineAndInTheVmFile) {
  auto v = parse_vsock_spec("cid=7,uds=/tmp/v.sock");
  ASSERT_TRUE(v.ok()) << v.error().message();
  EXPECT_EQ(v->cid, 7u);
  EXPECT_EQ(v->uds, "/tmp/v.sock");
  const auto error_of = [](std::string_view text) {
    auto r = parse_vsock_spec(text);
    return r.ok() ? std::string("(ok)") : r.error().message();
  };
  EXPECT_NE(error_of("cid=2,uds=/x").find("cid 2 is reserved"), std::string::npos);
  EXPECT_NE(error_of("cid=4294967295,uds=/x").find("reserved"), std::string::npos);
  EXPECT_NE(error_of("cid=4294967296,uds=/x").find("is not a number from 3"), std::string::npos);
  EXPECT_NE(error_of("cid=x,uds=/x").find("cid 'x'"), std::string::npos);
  EXPECT_NE(error_of("uds=/x").find("needs cid=N and uds=PATH"), std::string::npos);
  EXPECT_NE(error_of("cid=3,uds=").find("the path must be 1 to 96 bytes"), std::string::npos);
  EXPECT_NE(error_of("cid=3,uds=/x,port=1").find("unknown option 'port=1'"), std::string::npos);

  VmConfig config;
  auto r = apply_json(config, json::parse(R"({"vsock": {"guest_cid": 9, "uds_path": "/run/v.sock"}})"));
  ASSERT_TRUE(r.ok()) << r.error().message();
  ASSERT_TRUE(config.vsock.has_value());
  EXPECT_EQ(config.vsock->cid, 9u);
  VmConfig again;
  ASSERT_TRUE(apply_json(again, to_json(config)).ok());
  EXPECT_EQ(to_json(again), to_json(config));
  VmConfig bad;
  r = apply_json(bad, json::parse(R"({"vsock": {"guest_cid": 1, "uds_path": "/v"}})"));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("vsock: cid 1 is reserved"), std::string::npos) << r.error().message();
  r = apply_json(bad, json::parse(R"({"vsock": {"uds_path": "/v"}})"));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("vsock.guest_cid: is required"), std::string::npos);
}

}  // namespace
}  // namespace doppel
