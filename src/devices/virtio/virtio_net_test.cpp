// virtio-net against a SOCK_SEQPACKET socketpair standing in for a TAP (same framing:
// one 12-byte virtio_net_hdr + frame per packet).
#include "devices/virtio/virtio_net.h"

#include <arpa/inet.h>
#include <linux/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
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

class VirtioNetTest : public ::testing::Test {
 protected:
  void SetUp() override {
    int sv[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    m_peer.reset(sv[1]);
    m_mem = testing::make_ram();
    auto dev = VirtioNet::create(*m_mem, Tap::from_fd(UniqueFd(sv[0]), "fake0"),
                                 {0x02, 0x11, 0x22, 0x33, 0x44, 0x55}, "virtio-net0");
    ASSERT_TRUE(dev.ok());
    m_mmio = std::make_unique<VirtioMmio>(dev.release_value(), m_irq);
    m_drv = std::make_unique<testing::TestDriver>(*m_mmio, *m_mem);
  }
  void TearDown() override { m_mmio.reset(); }

  UniqueFd m_peer;
  std::unique_ptr<GuestMemory> m_mem;
  testing::RecordingIrq m_irq;
  std::unique_ptr<VirtioMmio> m_mmio;
  std::unique_ptr<testing::TestDriver> m_drv;
};

TEST_F(VirtioNetTest, ConfigHasMacAndLinkUp) {
  EXPECT_EQ(m_drv->reg(MmioReg::kDeviceId), 1u);
  const uint64_t f = m_drv->device_features();
  EXPECT_TRUE(f & kNetFMac);
  EXPECT_TRUE(f & kNetFCsum);
  EXPECT_FALSE(f & kNetFGuestCsum);  // the fake cannot take offloads
  EXPECT_EQ(m_mmio->read(0x100, 4), 0x33221102u);
  EXPECT_EQ(m_mmio->read(0x104, 2), 0x5544u);
  EXPECT_EQ(m_mmio->read(0x106, 2), 1u);
}

TEST_F(VirtioNetTest, TransmitWritesOneFramePerChain) {
  ASSERT_TRUE(m_drv->init(kFVersion1 | kNetFMac));
  const uint64_t hdr = m_drv->alloc(12), frame = m_drv->alloc(60);
  std::vector<uint8_t> payload(60);
  for (size_t i = 0; i < payload.size(); i++) payload[i] = static_cast<uint8_t>(i);
  ASSERT_TRUE(m_mem->write(frame, payload));
  m_drv->add_chain(VirtioNet::kTxQ, {{hdr, 12, false}, {frame, 60, false}});
  m_drv->notify(VirtioNet::kTxQ);
  EXPECT_EQ(m_drv->used_idx(VirtioNet::kTxQ), 1u);
  uint8_t buf[256];
  ASSERT_EQ(::read(m_peer.get(), buf, sizeof buf), 72);
  EXPECT_EQ(std::vector<uint8_t>(buf + 12, buf + 72), payload);
}

TEST_F(VirtioNetTest, ReceiveWaitsForBuffersThenDelivers) {
  ASSERT_TRUE(m_drv->init(kFVersion1 | kFEventIdx | kNetFMac));
  std::vector<uint8_t> pkt(12 + 100, 0);
  for (size_t i = 12; i < pkt.size(); i++) pkt[i] = static_cast<uint8_t>(0xa0 + i);
  // Two frames arrive while the guest has no buffers: nothing is lost, nothing delivered.
  ASSERT_EQ(::write(m_peer.get(), pkt.data(), pkt.size()), static_cast<ssize_t>(pkt.size()));
  pkt[20] = 0x55;
  ASSERT_EQ(::write(m_peer.get(), pkt.data(), pkt.size()), static_cast<ssize_t>(pkt.size()));
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(m_drv->used_idx(VirtioNet::kRxQ), 0u);
  const uint64_t b1 = m_drv->alloc(2048);
  m_drv->add_chain(VirtioNet::kRxQ, {{b1, 2048, true}});
  m_drv->notify(VirtioNet::kRxQ);
  ASSERT_TRUE(wait_for([&] { return m_drv->used_idx(VirtioNet::kRxQ) == 1; }));
  EXPECT_EQ(m_drv->used_len(VirtioNet::kRxQ, 0), pkt.size());
  EXPECT_EQ(*m_mem->read_le<uint16_t>(b1 + 10), 1u);  // num_buffers
  EXPECT_EQ(*m_mem->read_le<uint8_t>(b1 + 20), static_cast<uint8_t>(0xa0 + 20));
  // The second frame waits for the next buffer (split across two descriptors this time).
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(m_drv->used_idx(VirtioNet::kRxQ), 1u);
  const uint64_t h2 = m_drv->alloc(12), b2 = m_drv->alloc(1024);
  m_drv->add_chain(VirtioNet::kRxQ, {{h2, 12, true}, {b2, 1024, true}});
  m_drv->notify(VirtioNet::kRxQ);
  ASSERT_TRUE(wait_for([&] { return m_drv->used_idx(VirtioNet::kRxQ) == 2; }));
  EXPECT_EQ(*m_mem->read_le<uint8_t>(b2 + 8), 0x55);
  EXPECT_TRUE(wait_for([&] { return m_irq.level(); }));
}

TEST_F(VirtioNetTest, MalformedTxChainIsDroppedNotSent) {
  ASSERT_TRUE(m_drv->init(kFVersion1));
  m_drv->add_chain(VirtioNet::kTxQ, {{m_drv->alloc(12), 12, false}, {0x10, 60, false}});
  m_drv->notify(VirtioNet::kTxQ);
  EXPECT_EQ(m_drv->used_idx(VirtioNet::kTxQ), 1u);
  uint8_t buf[256];
  EXPECT_LT(::read(m_peer.get(), buf, sizeof buf), 0);  // nothing was sent
  auto& net = static_cast<VirtioNet&>(m_mmio->device());
  EXPECT_EQ(net.tx_dropped(), 1u);
}

TEST(TapTest, OpenErrorNamesTheInterface) {
  auto tap = Tap::open("this-name-is-far-too-long");
  ASSERT_FALSE(tap.ok());
  EXPECT_NE(tap.error().message().find("tap 'this-name-is-far-too-long'"), std::string::npos);
}

}  // namespace
}  // namespace doppel::virtio

namespace doppel::virtio {
namespace {

// A real TAP, in a network namespace of its own (so the host's network is untouched): the
// guest sends an ARP request for the TAP's address and the host kernel's ARP reply comes
// back through the RX path. Needs CAP_NET_ADMIN; skips otherwise.
TEST(VirtioNetTapTest, ArpRequestGetsTheHostKernelsReply) {
  std::string skip_reason, failure;
  std::vector<uint8_t> reply;
  std::thread t([&] {
    if (::unshare(CLONE_NEWNET) != 0) {
      skip_reason = std::string("unshare(CLONE_NEWNET): ") + std::strerror(errno);
      return;
    }
    auto tap = Tap::open("dtest0");
    if (!tap.ok()) {
      skip_reason = tap.error().message();
      return;
    }
    // 10.9.0.1/24 on the TAP, link up.
    UniqueFd sock(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    ifreq ifr{};
    std::strcpy(ifr.ifr_name, "dtest0");
    auto* sin = reinterpret_cast<sockaddr_in*>(&ifr.ifr_addr);
    sin->sin_family = AF_INET;
    sin->sin_addr.s_addr = htonl(0x0a090001);
    if (::ioctl(sock.get(), SIOCSIFADDR, &ifr) != 0) {
      failure = std::string("SIOCSIFADDR: ") + std::strerror(errno);
      return;
    }
    auto mem = testing::make_ram();
    const std::array<uint8_t, 6> mac{0x02, 0, 0, 0, 0, 0x10};
    auto dev = VirtioNet::create(*mem, tap.release_value(), mac, "virtio-net0");
    testing::RecordingIrq irq;
    VirtioMmio mmio(dev.release_value(), irq);
    testing::TestDriver drv(mmio, *mem);
    if (!drv.init(kFVersion1 | kNetFMac | kNetFCsum | kNetFGuestCsum)) {
      failure = "feature negotiation failed";
      return;
    }
    // Several RX buffers: the kernel may also send IPv6 multicast (MLD) frames.
    std::vector<uint64_t> rx;
    for (int i = 0; i < 8; i++) {
      rx.push_back(drv.alloc(2048));
      drv.add_chain(VirtioNet::kRxQ, {{rx.back(), 2048, true}});
    }
    drv.notify(VirtioNet::kRxQ);
    // virtio_net_hdr (12 zero bytes) + Ethernet + ARP request "who has 10.9.0.1".
    std::vector<uint8_t> f(12, 0);
    const uint8_t eth[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0, 0, 0, 0, 0x10, 0x08, 0x06};
    const uint8_t arp[] = {0, 1, 8, 0, 6, 4, 0, 1, 0x02, 0, 0, 0, 0, 0x10, 10, 9, 0, 2,
                           0, 0, 0, 0, 0, 0, 10, 9, 0, 1};
    f.insert(f.end(), std::begin(eth), std::end(eth));
    f.insert(f.end(), std::begin(arp), std::end(arp));
    f.resize(12 + 60, 0);
    const uint64_t tx = drv.alloc(f.size());
    (void)mem->write(tx, f);
    drv.add_chain(VirtioNet::kTxQ, {{tx, static_cast<uint32_t>(f.size()), false}});
    drv.notify(VirtioNet::kTxQ);
    auto find_arp = [&] {
      for (uint16_t i = 0; i < drv.used_idx(VirtioNet::kRxQ); i++) {
        const uint32_t id = drv.used_id(VirtioNet::kRxQ, i);  // head == buffer index here
        auto frame = drv.bytes(rx.at(id), drv.used_len(VirtioNet::kRxQ, i));
        if (frame.size() >= 12 + 14 && frame[12 + 12] == 0x08 && frame[12 + 13] == 0x06) {
          reply = frame;
          return true;
        }
      }
      return false;
    };
    if (!wait_for(find_arp)) {
      failure = "no ARP reply came back from the TAP";
      return;
    }
    mmio.stop();
  });
  t.join();
  if (!skip_reason.empty()) GTEST_SKIP() << "needs CAP_NET_ADMIN: " << skip_reason;
  ASSERT_TRUE(failure.empty()) << failure;
  ASSERT_GE(reply.size(), 12u + 14 + 28);
  EXPECT_EQ(reply[10], 1u);  // num_buffers
  const uint8_t* eth = reply.data() + 12;
  EXPECT_EQ(std::vector<uint8_t>(eth, eth + 6), (std::vector<uint8_t>{0x02, 0, 0, 0, 0, 0x10}));
  EXPECT_EQ(eth[12], 0x08);
  EXPECT_EQ(eth[13], 0x06);               // ARP
  EXPECT_EQ(eth[14 + 7], 2u);             // opcode: reply
  EXPECT_EQ(eth[14 + 14], 10u);           // sender IP 10.9.0.1
  EXPECT_EQ(eth[14 + 17], 1u);
}

}  // namespace
}  // namespace doppel::virtio
