// virtio-console to a file and to a Unix socket.
#include "devices/virtio/virtio_console.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>

#include "devices/virtio/virtio_test_util.h"

namespace doppel::virtio {
namespace {

std::string slurp(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

template <typename Pred>
bool wait_for(Pred pred) {
  for (int i = 0; i < 500; i++) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return pred();
}

TEST(VirtioConsoleTest, TransmitGoesToFile) {
  auto mem = testing::make_ram();
  const std::string path = "/tmp/doppel-console-" + std::to_string(getpid()) + ".txt";
  auto stream = ConsoleStream::open_file(path);
  ASSERT_TRUE(stream.ok()) << stream.error().message();
  auto dev = VirtioConsole::create(*mem, stream.release_value(), "virtio-console");
  ASSERT_TRUE(dev.ok());
  testing::RecordingIrq irq;
  VirtioMmio mmio(dev.release_value(), irq);
  testing::TestDriver drv(mmio, *mem);
  EXPECT_EQ(drv.reg(MmioReg::kDeviceId), 3u);
  ASSERT_TRUE(drv.init(kFVersion1));
  const std::string a = "hello ", b = "console\n";
  const uint64_t ga = drv.alloc(a.size()), gb = drv.alloc(b.size());
  ASSERT_TRUE(mem->write(ga, std::span(reinterpret_cast<const uint8_t*>(a.data()), a.size())));
  ASSERT_TRUE(mem->write(gb, std::span(reinterpret_cast<const uint8_t*>(b.data()), b.size())));
  drv.add_chain(VirtioConsole::kTransmitQ, {{ga, static_cast<uint32_t>(a.size()), false},
                                            {gb, static_cast<uint32_t>(b.size()), false}});
  drv.notify(VirtioConsole::kTransmitQ);
  EXPECT_EQ(drv.used_idx(VirtioConsole::kTransmitQ), 1u);
  EXPECT_EQ(slurp(path), "hello console\n");
  ::unlink(path.c_str());
}

TEST(VirtioConsoleTest, SocketCarriesBothDirectionsAndWaitsForBuffers) {
  auto mem = testing::make_ram();
  const std::string path = "/tmp/doppel-console-" + std::to_string(getpid()) + ".sock";
  auto stream = ConsoleStream::listen_unix(path);
  ASSERT_TRUE(stream.ok()) << stream.error().message();
  auto dev = VirtioConsole::create(*mem, stream.release_value(), "virtio-console");
  ASSERT_TRUE(dev.ok());
  testing::RecordingIrq irq;
  VirtioMmio mmio(dev.release_value(), irq);
  testing::TestDriver drv(mmio, *mem);
  ASSERT_TRUE(drv.init(kFVersion1 | kFEventIdx));

  UniqueFd client(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::copy(path.begin(), path.end(), addr.sun_path);
  ASSERT_EQ(::connect(client.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);

  // Host -> guest: sent before the guest posts a buffer; delivered once it does.
  ASSERT_EQ(::write(client.get(), "ping", 4), 4);
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(drv.used_idx(VirtioConsole::kReceiveQ), 0u);
  const uint64_t rx = drv.alloc(64);
  drv.add_chain(VirtioConsole::kReceiveQ, {{rx, 64, true}});
  drv.notify(VirtioConsole::kReceiveQ);
  ASSERT_TRUE(wait_for([&] { return drv.used_idx(VirtioConsole::kReceiveQ) == 1; }));
  EXPECT_EQ(drv.used_len(VirtioConsole::kReceiveQ, 0), 4u);
  const auto got = drv.bytes(rx, 4);
  EXPECT_EQ(std::string(got.begin(), got.end()), "ping");

  // Guest -> host.
  const uint64_t tx = drv.alloc(4);
  ASSERT_TRUE(mem->write(tx, std::span(reinterpret_cast<const uint8_t*>("pong"), 4)));
  drv.add_chain(VirtioConsole::kTransmitQ, {{tx, 4, false}});
  drv.notify(VirtioConsole::kTransmitQ);
  char buf[8] = {};
  pollfd pfd{client.get(), POLLIN, 0};
  ASSERT_EQ(::poll(&pfd, 1, 2000), 1);
  ASSERT_EQ(::read(client.get(), buf, sizeof buf), 4);
  EXPECT_EQ(std::string(buf, 4), "pong");
  mmio.stop();
}

TEST(ConsoleStreamTest, RefusesToReplaceARegularFileWithASocket) {
  const std::string path = "/tmp/doppel-console-" + std::to_string(getpid()) + ".reg";
  { std::ofstream(path) << "keep"; }
  auto s = ConsoleStream::listen_unix(path);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message().find("not a socket"), std::string::npos);
  EXPECT_EQ(slurp(path), "keep");
  ::unlink(path.c_str());
}

}  // namespace
}  // namespace doppel::virtio
