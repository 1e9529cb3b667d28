// virtio-vsock through its registers with a test driver, against real Unix sockets on the
// host side: a guest connection to CID 2 reaches PATH_<port>, data flows both ways, a host
// CONNECT becomes a REQUEST to the guest, malformed packets are refused and counted.
#include "devices/virtio/virtio_vsock.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <thread>

#include <gtest/gtest.h>

#include "devices/virtio/virtio_test_util.h"

namespace doppel::virtio {
namespace {

template <typename Pred>
bool wait_for(Pred pred) {
  for (int i = 0; i < 500; i++) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return pred();
}

UniqueFd unix_listen(const std::string& path) {
  UniqueFd s(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strncpy(a.sun_path, path.c_str(), sizeof a.sun_path - 1);
  if (::bind(s.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(s.get(), 4) != 0) return {};
  return s;
}

UniqueFd unix_connect(const std::string& path) {
  UniqueFd s(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strncpy(a.sun_path, path.c_str(), sizeof a.sun_path - 1);
  if (::connect(s.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return {};
  return s;
}

class VirtioVsockTest : public ::testing::Test {
 protected:
  void SetUp() override {
    m_dir = std::filesystem::temp_directory_path() / fmt::format("doppel-vsock-{}", ::getpid());
    std::filesystem::create_directories(m_dir);
    m_uds = (m_dir / "v.sock").string();
    m_mem = testing::make_ram();
    auto dev = VirtioVsock::create(*m_mem, 3, m_uds, "virtio-vsock");
    ASSERT_TRUE(dev.ok()) << dev.error().message();
    m_mmio = std::make_unique<VirtioMmio>(dev.release_value(), m_irq);
    m_drv = std::make_unique<testing::TestDriver>(*m_mmio, *m_mem);
    ASSERT_TRUE(m_drv->init(kFVersion1));
  }
  void TearDown() override {
    m_mmio.reset();
    std::filesystem::remove_all(m_dir);
  }
  VirtioVsock& vsock() { return static_cast<VirtioVsock&>(m_mmio->device()); }

  // The guest sends one packet on the TX queue.
  void guest_send(VsockHeader h, std::string_view payload = {}) {
    h.src_cid = 3;
    h.dst_cid = kVsockHostCid;
    h.type = kVsockTypeStream;
    h.len = static_cast<uint32_t>(payload.size());
    h.buf_alloc = 1 << 20;
    const auto hdr = encode_vsock_header(h);
    const uint64_t a = m_drv->alloc(VsockHeader::kSize), b = m_drv->alloc(4096);
    ASSERT_TRUE(m_mem->write(a, hdr));
    std::vector<testing::Seg> segs{{a, static_cast<uint32_t>(VsockHeader::kSize), false}};
    if (!payload.empty()) {
      ASSERT_TRUE(m_mem->write(b, std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(payload.data()), payload.size())));
      segs.push_back({b, static_cast<uint32_t>(payload.size()), false});
    }
    m_drv->add_chain(VirtioVsock::kTxQ, segs);
    m_drv->notify(VirtioVsock::kTxQ);
  }

  // The next packet the device puts on the RX queue (one buffer offered per call).
  std::pair<VsockHeader, std::string> guest_receive() {
    const uint64_t buf = m_drv->alloc(4096);
    const uint16_t before = m_drv->used_idx(VirtioVsock::kRxQ);
    m_drv->add_chain(VirtioVsock::kRxQ, {{buf, 4096, true}});
    m_drv->notify(VirtioVsock::kRxQ);
    if (!wait_for([&] { return m_drv->used_idx(VirtioVsock::kRxQ) != before; })) return {};
    std::array<uint8_t, VsockHeader::kSize> raw{};
    (void)m_mem->read(buf, raw);
    const auto h = *decode_vsock_header(raw);
    std::string payload(h.len, '\0');
    (void)m_mem->read(buf + VsockHeader::kSize,
                      std::span<uint8_t>(reinterpret_cast<uint8_t*>(payload.data()), payload.size()));
    return {h, payload};
  }

  std::filesystem::path m_dir;
  std::string m_uds;
  std::unique_ptr<GuestMemory> m_mem;
  testing::RecordingIrq m_irq;
  std::unique_ptr<VirtioMmio> m_mmio;
  std::unique_ptr<testing::TestDriver> m_drv;
};

TEST_F(VirtioVsockTest, ConfigHoldsTheGuestCid) {
  EXPECT_EQ(m_drv->reg(MmioReg::kDeviceId), 19u);
  EXPECT_EQ(m_mmio->read(0x100, 4), 3u);
  EXPECT_EQ(m_mmio->read(0x104, 4), 0u);
}

TEST_F(VirtioVsockTest, GuestConnectsToTheHostsPortSocketAndDataFlowsBothWays) {
  UniqueFd ls = unix_listen(m_uds + "_5000");
  ASSERT_TRUE(ls.valid());
  VsockHeader req;
  req.src_port = 1234;
  req.dst_port = 5000;
  req.op = static_cast<uint16_t>(VsockOp::kRequest);
  guest_send(req);
  auto [resp, none] = guest_receive();
  EXPECT_EQ(resp.op, static_cast<uint16_t>(VsockOp::kResponse));
  EXPECT_EQ(resp.src_cid, kVsockHostCid);
  EXPECT_EQ(resp.dst_cid, 3u);
  EXPECT_EQ(resp.src_port, 5000u);
  EXPECT_EQ(resp.dst_port, 1234u);
  UniqueFd host(::accept(ls.get(), nullptr, nullptr));
  ASSERT_TRUE(host.valid());

  VsockHeader rw = req;
  rw.op = static_cast<uint16_t>(VsockOp::kRw);
  guest_send(rw, "from-guest");
  char buf[64] = {};
  ASSERT_EQ(::recv(host.get(), buf, sizeof buf, 0), 10);
  EXPECT_EQ(std::string(buf, 10), "from-guest");

  ASSERT_EQ(::send(host.get(), "from-host", 9, 0), 9);
  auto [data, payload] = guest_receive();
  EXPECT_EQ(data.op, static_cast<uint16_t>(VsockOp::kRw));
  EXPECT_EQ(payload, "from-host");
  EXPECT_EQ(data.fwd_cnt, 10u);  // the guest's 10 bytes reached the host

  // The host closes: the guest hears SHUTDOWN(SEND); its own SHUTDOWN then ends it with RST.
  host.reset();
  auto [shut, none2] = guest_receive();
  EXPECT_EQ(shut.op, static_cast<uint16_t>(VsockOp::kShutdown));
  EXPECT_EQ(shut.flags, kShutdownSend);
  VsockHeader bye = req;
  bye.op = static_cast<uint16_t>(VsockOp::kShutdown);
  bye.flags = kShutdownSend | kShutdownRcv;
  guest_send(bye);
  auto [rst, none3] = guest_receive();
  EXPECT_EQ(rst.op, static_cast<uint16_t>(VsockOp::kRst));
  EXPECT_EQ(vsock().connection_count(), 0u);
}

TEST_F(VirtioVsockTest, AGuestConnectToAPortNobodyListensOnIsReset) {
  VsockHeader req;
  req.src_port = 1;
  req.dst_port = 9;
  req.op = static_cast<uint16_t>(VsockOp::kRequest);
  guest_send(req);
  auto [rst, none] = guest_receive();
  EXPECT_EQ(rst.op, static_cast<uint16_t>(VsockOp::kRst));
  EXPECT_EQ(rst.dst_port, 1u);
}

TEST_F(VirtioVsockTest, HostConnectBecomesARequestAndOkFollowsTheResponse) {
  UniqueFd host = unix_connect(m_uds);
  ASSERT_TRUE(host.valid());
  ASSERT_EQ(::send(host.get(), "CONNECT 52\n", 11, 0), 11);
  auto [req, none] = guest_receive();
  ASSERT_EQ(req.op, static_cast<uint16_t>(VsockOp::kRequest));
  EXPECT_EQ(req.dst_port, 52u);
  EXPECT_GE(req.src_port, VirtioVsock::kFirstHostPort);
  VsockHeader resp;
  resp.src_port = 52;
  resp.dst_port = req.src_port;
  resp.op = static_cast<uint16_t>(VsockOp::kResponse);
  guest_send(resp);
  char buf[64] = {};
  const ssize_t n = ::recv(host.get(), buf, sizeof buf, 0);
  EXPECT_EQ(std::string(buf, static_cast<size_t>(std::max<ssize_t>(n, 0))), fmt::format("OK {}\n", req.src_port));
}

TEST_F(VirtioVsockTest, MalformedPacketsAreRefusedAndCounted) {
  // A header shorter than 44 bytes, and a len beyond the chain.
  const uint64_t a = m_drv->alloc(64);
  m_drv->add_chain(VirtioVsock::kTxQ, {{a, 20, false}});
  VsockHeader h;
  h.src_cid = 3;
  h.dst_cid = 2;
  h.len = 1000;
  h.op = static_cast<uint16_t>(VsockOp::kRw);
  const auto hdr = encode_vsock_header(h);
  const uint64_t b = m_drv->alloc(64);
  ASSERT_TRUE(m_mem->write(b, hdr));
  m_drv->add_chain(VirtioVsock::kTxQ, {{b, static_cast<uint32_t>(VsockHeader::kSize), false}});
  // A packet claiming to come from another CID.
  VsockHeader spoof;
  spoof.src_cid = 7;
  spoof.dst_cid = 2;
  const uint64_t c = m_drv->alloc(64);
  ASSERT_TRUE(m_mem->write(c, encode_vsock_header(spoof)));
  m_drv->add_chain(VirtioVsock::kTxQ, {{c, static_cast<uint32_t>(VsockHeader::kSize), false}});
  m_drv->notify(VirtioVsock::kTxQ);
  EXPECT_EQ(m_drv->used_idx(VirtioVsock::kTxQ), 3u);
  EXPECT_EQ(vsock().bad_packets(), 3u);
}

TEST(VirtioVsock, ASocketPathInUseIsRefused) {
  auto mem = testing::make_ram();
  const std::string path = fmt::format("/tmp/doppel-vsock-inuse-{}", ::getpid());
  auto first = VirtioVsock::create(*mem, 3, path, "a");
  ASSERT_TRUE(first.ok()) << first.error().message();
  auto second = VirtioVsock::create(*mem, 4, path, "b");
  ASSERT_FALSE(second.ok());
  EXPECT_NE(second.error().message().find("in use"), std::string::npos) << second.error().message();
  first->reset();
  // The first one removed its socket; a stale file would be replaced anyway.
  auto third = VirtioVsock::create(*mem, 4, path, "c");
  EXPECT_TRUE(third.ok()) << third.error().message();
}

}  // namespace
}  // namespace doppel::virtio
