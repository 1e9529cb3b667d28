// virtio-blk driven through the MMIO transport against a temp image file.
#include "devices/virtio/virtio_blk.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

#include <gtest/gtest.h>

#include "backends/raw_disk.h"
#include "devices/virtio/virtio_test_util.h"

namespace doppel::virtio {
namespace {

using testing::kRamBase;
using testing::Seg;

constexpr uint64_t kDiskBytes = 1 * MiB;

class VirtioBlkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/doppel-blk-XXXXXX";
    int fd = mkstemp(tmpl);
    ASSERT_GE(fd, 0);
    m_path = tmpl;
    std::vector<uint8_t> pattern(kDiskBytes);
    for (size_t i = 0; i < pattern.size(); i++) pattern[i] = static_cast<uint8_t>(i * 7 + i / 512);
    ASSERT_EQ(::write(fd, pattern.data(), pattern.size()), static_cast<ssize_t>(pattern.size()));
    ::close(fd);
    m_mem = testing::make_ram();
  }
  void TearDown() override {
    m_mmio.reset();
    ::unlink(m_path.c_str());
  }

  void open(bool read_only, uint64_t features_extra = 0, const RateLimiterConfig& limits = {}) {
    auto disk = RawDisk::open(m_path, read_only);
    ASSERT_TRUE(disk.ok()) << disk.error().message();
    m_mmio = std::make_unique<VirtioMmio>(
        std::make_unique<VirtioBlk>(*m_mem, disk.release_value(), "virtio-blk0", limits), m_irq);
    m_drv = std::make_unique<testing::TestDriver>(*m_mmio, *m_mem);
    ASSERT_TRUE(m_drv->init(kFVersion1 | features_extra));
  }

  std::vector<uint8_t> file_bytes(uint64_t off, size_t len) {
    std::vector<uint8_t> v(len);
    int fd = ::open(m_path.c_str(), O_RDONLY);
    EXPECT_EQ(::pread(fd, v.data(), len, static_cast<off_t>(off)), static_cast<ssize_t>(len));
    ::close(fd);
    return v;
  }

  uint64_t header(uint32_t type, uint64_t sector) {
    const uint64_t h = m_drv->alloc(16);
    (void)m_mem->write_le<uint32_t>(h, type);
    (void)m_mem->write_le<uint32_t>(h + 4, 0);
    (void)m_mem->write_le<uint64_t>(h + 8, sector);
    return h;
  }

  // Submits segs + a status byte; waits for completion; returns the status byte.
  uint8_t run(std::vector<Seg> segs, uint32_t* used_len = nullptr) {
    const uint64_t status = m_drv->alloc(1);
    (void)m_mem->write_le<uint8_t>(status, 0xee);
    segs.push_back({status, 1, true});
    const uint16_t before = m_drv->used_idx(0);
    m_drv->add_chain(0, segs);
    m_drv->notify(0);
    m_mmio->device().quiesce();
    EXPECT_EQ(m_drv->used_idx(0), static_cast<uint16_t>(before + 1));
    if (used_len) *used_len = m_drv->used_len(0, before);
    return *m_mem->read_le<uint8_t>(status);
  }

  std::string m_path;
  std::unique_ptr<GuestMemory> m_mem;
  testing::RecordingIrq m_irq;
  std::unique_ptr<VirtioMmio> m_mmio;
  std::unique_ptr<testing::TestDriver> m_drv;
};

TEST_F(VirtioBlkTest, ConfigReportsCapacityAndFeatures) {
  open(false);
  EXPECT_EQ(m_drv->reg(MmioReg::kDeviceId), 2u);
  EXPECT_EQ(m_mmio->read(0x100, 8), kDiskBytes / 512);
  const uint64_t f = m_drv->device_features();
  EXPECT_TRUE(f & kBlkFFlush);
  EXPECT_TRUE(f & kBlkFDiscard);
  EXPECT_TRUE(f & kBlkFWriteZeroes);
  EXPECT_FALSE(f & kBlkFRo);
  EXPECT_EQ(m_mmio->read(0x100 + 20, 4), 512u);  // blk_size
}

TEST_F(VirtioBlkTest, ReadReturnsFileContents) {
  open(false);
  const uint64_t buf = m_drv->alloc(1024);
  uint32_t len = 0;
  EXPECT_EQ(run({{header(kBlkTIn, 3), 16, false}, {buf, 1024, true}}, &len), kBlkSOk);
  EXPECT_EQ(len, 1025u);
  EXPECT_EQ(m_drv->bytes(buf, 1024), file_bytes(3 * 512, 1024));
  EXPECT_TRUE(m_irq.level());
}

TEST_F(VirtioBlkTest, WriteReachesFileAcrossSplitBuffers) {
  open(false);
  const uint64_t a = m_drv->alloc(512), b = m_drv->alloc(512);
  std::vector<uint8_t> data(1024);
  for (size_t i = 0; i < data.size(); i++) data[i] = static_cast<uint8_t>(0xa5 ^ i);
  ASSERT_TRUE(m_mem->write(a, std::span(data).subspan(0, 512)));
  ASSERT_TRUE(m_mem->write(b, std::span(data).subspan(512)));
  EXPECT_EQ(run({{header(kBlkTOut, 10), 16, false}, {a, 512, false}, {b, 512, false}}), kBlkSOk);
  EXPECT_EQ(file_bytes(10 * 512, 1024), data);
  EXPECT_EQ(run({{header(kBlkTFlush, 0), 16, false}}), kBlkSOk);
}

TEST_F(VirtioBlkTest, ReadPastEndFailsWithIoErr) {
  open(false);
  const uint64_t buf = m_drv->alloc(1024);
  EXPECT_EQ(run({{header(kBlkTIn, kDiskBytes / 512 - 1), 16, false}, {buf, 1024, true}}), kBlkSIoErr);
  EXPECT_EQ(run({{header(kBlkTIn, ~0ull), 16, false}, {buf, 512, true}}), kBlkSIoErr);
  // Not a whole sector.
  EXPECT_EQ(run({{header(kBlkTIn, 0), 16, false}, {buf, 100, true}}), kBlkSIoErr);
}

TEST_F(VirtioBlkTest, GetIdReturnsSerial) {
  open(false);
  const uint64_t buf = m_drv->alloc(20);
  uint32_t len = 0;
  EXPECT_EQ(run({{header(kBlkTGetId, 0), 16, false}, {buf, 20, true}}, &len), kBlkSOk);
  EXPECT_EQ(len, 21u);
  const auto id = m_drv->bytes(buf, 20);
  EXPECT_EQ(std::string(id.begin(), id.begin() + 7), "doppel-");
}

TEST_F(VirtioBlkTest, WriteZeroesAndDiscardClearTheRange) {
  open(false);
  const uint64_t seg = m_drv->alloc(16);
  (void)m_mem->write_le<uint64_t>(seg, 4);
  (void)m_mem->write_le<uint32_t>(seg + 8, 2);
  (void)m_mem->write_le<uint32_t>(seg + 12, 0);
  EXPECT_EQ(run({{header(kBlkTWriteZeroes, 0), 16, false}, {seg, 16, false}}), kBlkSOk);
  EXPECT_EQ(file_bytes(4 * 512, 1024), std::vector<uint8_t>(1024, 0));
  EXPECT_NE(file_bytes(6 * 512, 512), std::vector<uint8_t>(512, 0));  // untouched after
  // Discard of a block-aligned range punches a hole (reads back as zeroes on tmpfs/ext4).
  (void)m_mem->write_le<uint64_t>(seg, 64);
  (void)m_mem->write_le<uint32_t>(seg + 8, 16);
  const uint8_t s = run({{header(kBlkTDiscard, 0), 16, false}, {seg, 16, false}});
  if (s == kBlkSOk) EXPECT_EQ(file_bytes(64 * 512, 8192), std::vector<uint8_t>(8192, 0));
  else EXPECT_EQ(s, kBlkSUnsupp);  // a host file system without hole punching
  // A segment past the end fails.
  (void)m_mem->write_le<uint64_t>(seg, kDiskBytes / 512 - 1);
  EXPECT_EQ(run({{header(kBlkTWriteZeroes, 0), 16, false}, {seg, 16, false}}), kBlkSIoErr);
  // Discard with the unmap flag (reserved for discard) is unsupported.
  (void)m_mem->write_le<uint64_t>(seg, 0);
  (void)m_mem->write_le<uint32_t>(seg + 12, 1);
  EXPECT_EQ(run({{header(kBlkTDiscard, 0), 16, false}, {seg, 16, false}}), kBlkSUnsupp);
}

// The same device over a qcow2 image: the guest sees the cluster size as the discard
// alignment, and once the device is quiesced (as for a snapshot) another reader of the
// file sees every completed write, though the guest never flushed.
TEST_F(VirtioBlkTest, Qcow2ImageServesTheSameRequests) {
  const std::string img = m_path + ".qcow2";
  DiskCreateOptions create;
  create.size = kDiskBytes;
  ASSERT_TRUE(create_qcow2(img, create).ok());
  auto disk = open_disk(img, {});
  ASSERT_TRUE(disk.ok()) << disk.error().message();
  m_mmio = std::make_unique<VirtioMmio>(
      std::make_unique<VirtioBlk>(*m_mem, disk.release_value(), "virtio-blk0"), m_irq);
  m_drv = std::make_unique<testing::TestDriver>(*m_mmio, *m_mem);
  ASSERT_TRUE(m_drv->init(kFVersion1));
  EXPECT_EQ(m_mmio->read(0x100, 8), kDiskBytes / 512);
  EXPECT_EQ(m_mmio->read(0x100 + 44, 4), 65536u / 512);  // discard_sector_alignment
  EXPECT_TRUE(m_drv->device_features() & kBlkFDiscard);

  const uint64_t a = m_drv->alloc(4096);
  std::vector<uint8_t> data(4096);
  for (size_t i = 0; i < data.size(); i++) data[i] = static_cast<uint8_t>(i * 3 + 1);
  ASSERT_TRUE(m_mem->write(a, std::span<const uint8_t>(data)));
  EXPECT_EQ(run({{header(kBlkTOut, 130), 16, false}, {a, 4096, false}}), kBlkSOk);
  const uint64_t b = m_drv->alloc(4096);
  EXPECT_EQ(run({{header(kBlkTIn, 130), 16, false}, {b, 4096, true}}), kBlkSOk);
  EXPECT_EQ(m_drv->bytes(b, 4096), data);

  DiskOpenOptions ro;
  ro.read_only = true;
  ro.lock = false;  // a look from outside while the device writes (qemu-img -U)
  auto other = open_disk(img, ro);
  ASSERT_TRUE(other.ok()) << other.error().message();
  std::vector<uint8_t> seen(4096);
  iovec v{seen.data(), seen.size()};
  ASSERT_EQ((*other)->read(std::span<const iovec>(&v, 1), 130 * 512), 0);
  EXPECT_EQ(seen, data);
  m_mmio.reset();
  ::unlink(img.c_str());
}

TEST_F(VirtioBlkTest, UnknownTypeIsUnsupported) {
  open(false);
  EXPECT_EQ(run({{header(99, 0), 16, false}}), kBlkSUnsupp);
}

TEST_F(VirtioBlkTest, ReadOnlyDiskRefusesWrites) {
  open(true);
  EXPECT_TRUE(m_drv->device_features() & kBlkFRo);
  const auto before = file_bytes(0, 512);
  const uint64_t buf = m_drv->alloc(512);
  ASSERT_TRUE(m_mem->write(buf, std::vector<uint8_t>(512, 0x11)));
  EXPECT_EQ(run({{header(kBlkTOut, 0), 16, false}, {buf, 512, false}}), kBlkSIoErr);
  EXPECT_EQ(file_bytes(0, 512), before);
  const uint64_t seg = m_drv->alloc(16);
  (void)m_mem->write_le<uint64_t>(seg, 0);
  (void)m_mem->write_le<uint32_t>(seg + 8, 1);
  EXPECT_EQ(run({{header(kBlkTWriteZeroes, 0), 16, false}, {seg, 16, false}}), kBlkSIoErr);
  EXPECT_EQ(file_bytes(0, 512), before);
  // Reads still work.
  EXPECT_EQ(run({{header(kBlkTIn, 0), 16, false}, {buf, 512, true}}), kBlkSOk);
  EXPECT_EQ(m_drv->bytes(buf, 512), before);
}

TEST_F(VirtioBlkTest, MalformedChainsFailWithIoErr) {
  open(false);
  const uint64_t buf = m_drv->alloc(512);
  // Wrong direction: a readable descriptor after a writable one.
  EXPECT_EQ(run({{header(kBlkTIn, 0), 16, false}, {buf, 512, true}, {buf, 512, false}}), kBlkSIoErr);
  // A loop: no status byte can be found, so the request completes with nothing written.
  const uint16_t before = m_drv->used_idx(0);
  m_drv->write_desc(0, testing::TestDriver::desc(0), 15, buf, 512, kDescFNext | kDescFWrite, 15);
  m_drv->publish(0, 15);
  m_drv->notify(0);
  m_mmio->device().quiesce();
  EXPECT_EQ(m_drv->used_idx(0), static_cast<uint16_t>(before + 1));
  EXPECT_EQ(m_drv->used_len(0, before), 0u);
  // A data buffer outside guest RAM.
  EXPECT_EQ(run({{header(kBlkTIn, 0), 16, false}, {0x1000, 512, true}, {buf, 1, true}}), kBlkSIoErr);
  // A data buffer that runs off the end of RAM.
  EXPECT_EQ(run({{header(kBlkTIn, 0), 16, false},
                 {testing::kRamBase + testing::kRamSize - 256, 512, true},
                 {buf, 1, true}}),
            kBlkSIoErr);
  // Too short a header.
  EXPECT_EQ(run({{header(kBlkTIn, 0), 8, false}}), kBlkSIoErr);
  // The device still works afterwards.
  EXPECT_EQ(run({{header(kBlkTIn, 0), 16, false}, {buf, 512, true}}), kBlkSOk);
}

TEST_F(VirtioBlkTest, ResetWithRequestsInFlightCompletesThemCleanly) {
  open(false);
  // Fill the queue with reads, notify, and reset at once: reset waits for the worker pool,
  // so every request has finished (status written) before the rings are forgotten.
  std::vector<uint64_t> statuses;
  for (int i = 0; i < 5; i++) {  // 3 descriptors each, 16 in the table
    const uint64_t buf = m_drv->alloc(4096), status = m_drv->alloc(1);
    (void)m_mem->write_le<uint8_t>(status, 0xee);
    statuses.push_back(status);
    m_drv->add_chain(0, {{header(kBlkTIn, static_cast<uint64_t>(i) * 8), 16, false},
                         {buf, 4096, true},
                         {status, 1, true}});
  }
  m_drv->notify(0);
  m_drv->set(MmioReg::kStatus, 0);
  for (uint64_t s : statuses) EXPECT_EQ(*m_mem->read_le<uint8_t>(s), kBlkSOk);
  EXPECT_EQ(m_drv->used_idx(0), 5u);
  EXPECT_FALSE(m_irq.level());  // reset cleared the interrupt
  EXPECT_EQ(m_drv->reg(MmioReg::kQueueReady), 0u);
  // The device comes back and works.
  ASSERT_TRUE(m_drv->init(kFVersion1));
  const uint64_t buf = m_drv->alloc(512);
  EXPECT_EQ(run({{header(kBlkTIn, 0), 16, false}, {buf, 512, true}}), kBlkSOk);
}

TEST(RawDiskTest, RefusesImageNotMultipleOfSectorSize) {
  char tmpl[] = "/tmp/doppel-odd-XXXXXX";
  int fd = mkstemp(tmpl);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::ftruncate(fd, 1000), 0);
  ::close(fd);
  auto disk = RawDisk::open(tmpl, false);
  ::unlink(tmpl);
  ASSERT_FALSE(disk.ok());
  EXPECT_NE(disk.error().message().find("not a multiple of 512"), std::string::npos)
      << disk.error().message();
  auto missing = RawDisk::open("/nonexistent/x.img", false);
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().message().find("/nonexistent/x.img: No such file"), std::string::npos);
}

// Over its rate limit the device holds requests back without blocking the notifying (vCPU)
// thread, releases them in order as tokens come, and a quiesce (pause) completes them all.
TEST_F(VirtioBlkTest, RateLimitedRequestsWaitAndAreNeverDropped) {
  open(false, 0, {{}, {1, 60'000, 0}});  // one request per minute
  std::vector<uint64_t> status, bufs;
  const uint16_t before = m_drv->used_idx(0);
  for (int i = 0; i < 3; i++) {
    bufs.push_back(m_drv->alloc(512));
    status.push_back(m_drv->alloc(1));
    (void)m_mem->write_le<uint8_t>(status.back(), 0xee);
    m_drv->add_chain(0, {{header(kBlkTIn, static_cast<uint64_t>(i)), 16, false}, {bufs.back(), 512, true},
                         {status.back(), 1, true}});
  }
  m_drv->notify(0);  // returns at once: nothing here waits for tokens
  for (int tries = 0; tries < 100 && m_drv->used_idx(0) == before; tries++) usleep(10'000);
  usleep(100'000);
  EXPECT_EQ(m_drv->used_idx(0), static_cast<uint16_t>(before + 1)) << "only the first request has tokens";
  EXPECT_EQ(*m_mem->read_le<uint8_t>(status[1]), 0xee);
  m_mmio->device().quiesce();
  EXPECT_EQ(m_drv->used_idx(0), static_cast<uint16_t>(before + 3));
  for (int i = 0; i < 3; i++) {
    EXPECT_EQ(*m_mem->read_le<uint8_t>(status[static_cast<size_t>(i)]), kBlkSOk);
    EXPECT_EQ(m_drv->bytes(bufs[static_cast<size_t>(i)], 512), file_bytes(static_cast<uint64_t>(i) * 512, 512));
  }
}

}  // namespace
}  // namespace doppel::virtio
