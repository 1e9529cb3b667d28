// Image locks between two opens of one image, as two VMs would hold them, and through
// open_disk() for raw and qcow2 images and a backing chain.
#include "backends/image_lock.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>

#include <gtest/gtest.h>

#include "backends/disk_backend.h"
#include "base/unique_fd.h"

namespace doppel {
namespace {

class ImageLockTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/doppel-lock-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    m_dir = tmpl;
    UniqueFd fd(::open(path("d.img").c_str(), O_RDWR | O_CREAT, 0644));
    ASSERT_TRUE(fd.valid());
    ASSERT_EQ(ftruncate(fd.get(), 1 << 20), 0);
  }
  void TearDown() override { std::filesystem::remove_all(m_dir); }
  std::string path(const std::string& name) const { return m_dir + "/" + name; }
  Result<std::unique_ptr<DiskBackend>> open(const std::string& name, bool read_only, bool lock = true,
                                            bool inactive = false) {
    DiskOpenOptions o;
    o.read_only = read_only;
    o.lock = lock;
    o.inactive = inactive;
    return open_disk(path(name), o);
  }

  std::string m_dir;
};

TEST_F(ImageLockTest, AWriterExcludesEveryoneElse) {
  auto writer = open("d.img", false);
  ASSERT_TRUE(writer.ok()) << writer.error().message();
  auto second = open("d.img", false);
  ASSERT_FALSE(second.ok());
  EXPECT_NE(second.error().message().find("d.img: in use by another VM or program (pid " +
                                          std::to_string(getpid())),
            std::string::npos)
      << second.error().message();
  EXPECT_NE(second.error().message().find("cannot open it for writing"), std::string::npos);
  EXPECT_NE(second.error().message().find(",locking=off"), std::string::npos);
  auto reader = open("d.img", true);
  ASSERT_FALSE(reader.ok());
  EXPECT_NE(reader.error().message().find("cannot open it read-only"), std::string::npos);
  // The user's word: locking=off opens it anyway.
  EXPECT_TRUE(open("d.img", false, /*lock=*/false).ok());
  // Closing the writer frees it.
  writer->reset();
  EXPECT_TRUE(open("d.img", false).ok());
}

TEST_F(ImageLockTest, ReadersShareAndKeepWritersOut) {
  auto r1 = open("d.img", true);
  auto r2 = open("d.img", true);
  ASSERT_TRUE(r1.ok() && r2.ok());
  EXPECT_FALSE(open("d.img", false).ok());
}

TEST_F(ImageLockTest, MigrationHandsTheLockOver) {
  auto source = open("d.img", false);
  ASSERT_TRUE(source.ok());
  // The destination opens it without the lock while the source holds it...
  auto dest = open("d.img", false, true, /*inactive=*/true);
  ASSERT_TRUE(dest.ok()) << dest.error().message();
  EXPECT_FALSE((*dest)->activate().ok());
  // ... and takes it once the source let go; then the source cannot take it back.
  (*source)->inactivate();
  ASSERT_TRUE((*dest)->activate().ok());
  EXPECT_FALSE((*source)->activate().ok());
  EXPECT_FALSE(open("d.img", true).ok());
}

TEST_F(ImageLockTest, QcowOverlaysShareTheirBackingFile) {
  DiskCreateOptions c;
  c.backing = "d.img";
  ASSERT_TRUE(create_qcow2(path("c1.qcow2"), c).ok());
  ASSERT_TRUE(create_qcow2(path("c2.qcow2"), c).ok());
  auto c1 = open("c1.qcow2", false);
  auto c2 = open("c2.qcow2", false);
  ASSERT_TRUE(c1.ok()) << c1.error().message();
  ASSERT_TRUE(c2.ok()) << c2.error().message();
  // The base is read by both: nobody writes it, but anyone may read it.
  EXPECT_FALSE(open("d.img", false).ok());
  EXPECT_TRUE(open("d.img", true).ok());
  // An overlay is exclusive like any writable image; `disk info` looks without a lock.
  EXPECT_FALSE(open("c1.qcow2", true).ok());
  EXPECT_TRUE(disk_info(path("c1.qcow2")).ok());
  // An inactive overlay (a migration's destination) takes the whole chain on activate().
  c1->reset();
  auto dest = open("c1.qcow2", false, true, /*inactive=*/true);
  ASSERT_TRUE(dest.ok());
  EXPECT_TRUE(open("c1.qcow2", false).ok());  // nobody holds it yet
  ASSERT_TRUE((*dest)->activate().ok());
  EXPECT_FALSE(open("c1.qcow2", true).ok());
}

}  // namespace
}  // namespace doppel
