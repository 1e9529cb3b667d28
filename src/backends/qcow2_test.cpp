// qcow2 images through the DiskBackend interface: what a guest would read and write, what
// the file holds afterwards (checked by qemu-img where it is installed), and how corrupt or
// hostile images are refused.
#include "backends/qcow2.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>

#include <gtest/gtest.h>

#include "backends/raw_disk.h"
#include "base/bits.h"

namespace doppel {
namespace {

using qcow2::CreateOptions;

bool have_qemu_img() { return std::system("qemu-img --version >/dev/null 2>&1") == 0; }

class Qcow2Test : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/doppel-qcow2-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    m_dir = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(m_dir); }

  std::string path(const std::string& name) const { return m_dir + "/" + name; }

  std::unique_ptr<DiskBackend> open(const std::string& p, bool read_only = false,
                                    DiskFormat format = DiskFormat::kAuto) {
    DiskOpenOptions o;
    o.read_only = read_only;
    o.format = format;
    auto d = open_disk(p, o);
    EXPECT_TRUE(d.ok()) << d.error().message();
    return d.ok() ? d.release_value() : nullptr;
  }
  std::string open_error(const std::string& p, bool read_only = false) {
    DiskOpenOptions o;
    o.read_only = read_only;
    auto d = open_disk(p, o);
    return d.ok() ? "" : d.error().message();
  }

  static int write(DiskBackend& d, uint64_t off, const std::vector<uint8_t>& data) {
    iovec v{const_cast<uint8_t*>(data.data()), data.size()};
    return d.write(std::span<const iovec>(&v, 1), off);
  }
  static std::vector<uint8_t> read(DiskBackend& d, uint64_t off, size_t len, int* rc = nullptr) {
    std::vector<uint8_t> out(len, 0xcc);
    // Two iovecs of unequal size, to exercise the scatter lists.
    const size_t half = len / 3;
    iovec v[2] = {{out.data(), half}, {out.data() + half, len - half}};
    const int r = d.read(std::span<const iovec>(v, 2), off);
    if (rc) *rc = r;
    else EXPECT_EQ(r, 0);
    return out;
  }
  static std::vector<uint8_t> pattern(size_t len, uint32_t seed) {
    std::vector<uint8_t> v(len);
    std::mt19937 rng(seed);
    for (auto& b : v) b = static_cast<uint8_t>(rng());
    return v;
  }
  // qemu-img check's exit code: 0 clean, 2 corruption, 3 leaks only (allowed).
  int qemu_check(const std::string& p) {
    const std::string cmd = fmt::format("qemu-img check -q '{}' >'{}' 2>&1", p, path("check.log"));
    const int status = std::system(cmd.c_str());
    const int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    if (code != 0 && code != 3) {
      std::ifstream log(path("check.log"));
      std::string line;
      while (std::getline(log, line)) ADD_FAILURE() << "qemu-img check: " << line;
    }
    return code;
  }
  void run(const std::string& cmd) { ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd; }

  void create(const std::string& p, uint64_t size, uint32_t cluster_bits = 16, uint32_t refcount_order = 4,
              const std::string& backing = "", const std::string& backing_format = "") {
    CreateOptions o;
    o.size = size;
    o.cluster_bits = cluster_bits;
    o.refcount_order = refcount_order;
    o.backing_file = backing;
    o.backing_format = backing_format;
    auto r = qcow2::create_image(p, o);
    ASSERT_TRUE(r.ok()) << r.error().message();
  }
  void patch(const std::string& p, uint64_t off, const void* bytes, size_t len) {
    const int fd = ::open(p.c_str(), O_WRONLY);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::pwrite(fd, bytes, len, static_cast<off_t>(off)), static_cast<ssize_t>(len));
    ::close(fd);
  }
  template <typename T>
  void patch_be(const std::string& p, uint64_t off, T v) {
    uint8_t b[sizeof(T)];
    store_be<T>(b, v);
    patch(p, off, b, sizeof b);
  }
  static uint64_t file_be64(const std::string& p, uint64_t off) {
    uint8_t b[8] = {};
    const int fd = ::open(p.c_str(), O_RDONLY);
    EXPECT_EQ(::pread(fd, b, 8, static_cast<off_t>(off)), 8);
    ::close(fd);
    return load_be<uint64_t>(b);
  }

  std::string m_dir;
};

TEST_F(Qcow2Test, CreatedImageIsEmptyAndClean) {
  create(path("a.qcow2"), 64 * MiB);
  auto d = open(path("a.qcow2"));
  ASSERT_TRUE(d);
  EXPECT_EQ(d->format(), DiskFormat::kQcow2);
  EXPECT_EQ(d->size(), 64 * MiB);
  EXPECT_EQ(read(*d, 0, 128 * 1024), std::vector<uint8_t>(128 * 1024, 0));
  d.reset();
  if (have_qemu_img()) {
    EXPECT_EQ(qemu_check(path("a.qcow2")), 0);
  }
}

// Writes at unaligned offsets across cluster boundaries read back, survive reopening, and
// leave an image qemu-img finds clean, for each cluster size and refcount width.
class Qcow2GeometryTest : public Qcow2Test,
                          public ::testing::WithParamInterface<std::pair<uint32_t, uint32_t>> {};

TEST_P(Qcow2GeometryTest, WritesReadBackAndCheckClean) {
  const auto [cluster_bits, refcount_order] = GetParam();
  const uint64_t cs = 1ull << cluster_bits;
  const uint64_t size = std::max<uint64_t>(64 * MiB, 8 * cs);
  create(path("g.qcow2"), size, cluster_bits, refcount_order);
  std::vector<std::pair<uint64_t, std::vector<uint8_t>>> writes = {
      {0, pattern(512, 1)},
      {cs - 512, pattern(1024, 2)},             // across a cluster boundary
      {3 * cs + 4096, pattern(cs + 8192, 3)},   // spans three clusters, partial at both ends
      {size - 4096, pattern(4096, 4)},          // the last sector
      {cs - 512, pattern(512, 5)},              // overwrite in place
  };
  {
    auto d = open(path("g.qcow2"));
    ASSERT_TRUE(d);
    for (auto& [off, data] : writes) ASSERT_EQ(write(*d, off, data), 0) << off;
    EXPECT_EQ(d->flush(), 0);
  }
  std::vector<uint8_t> model(size, 0);
  for (auto& [off, data] : writes) std::copy(data.begin(), data.end(), model.begin() + static_cast<ptrdiff_t>(off));
  auto d = open(path("g.qcow2"), true);
  ASSERT_TRUE(d);
  for (uint64_t off : {uint64_t{0}, 3 * cs, size - 4 * cs}) {
    const auto got = read(*d, off, 4 * cs);
    EXPECT_TRUE(std::equal(got.begin(), got.end(), model.begin() + static_cast<ptrdiff_t>(off))) << off;
  }
  d.reset();
  if (have_qemu_img()) {
    EXPECT_EQ(qemu_check(path("g.qcow2")), 0);
    std::ofstream(path("model.raw"), std::ios::binary).write(reinterpret_cast<const char*>(model.data()),
                                                            static_cast<std::streamsize>(model.size()));
    run(fmt::format("qemu-img compare -q -f qcow2 -F raw '{}' '{}'", path("g.qcow2"), path("model.raw")));
  }
}

INSTANTIATE_TEST_SUITE_P(Geometry, Qcow2GeometryTest,
                         ::testing::Values(std::pair{12u, 4u}, std::pair{16u, 4u}, std::pair{21u, 4u},
                                           std::pair{16u, 0u}, std::pair{16u, 3u}, std::pair{12u, 6u}),
                         [](const auto& param_info) {
                           return fmt::format("cluster{}_refcount{}", 1u << param_info.param.first,
                                              1u << param_info.param.second);
                         });

TEST_F(Qcow2Test, BackingFileShowsThroughAndIsNeverWritten) {
  const uint64_t size = 4 * MiB;
  const auto base_bytes = pattern(size - 1000, 7);  // a raw base may have any size
  std::ofstream(path("base.raw"), std::ios::binary)
      .write(reinterpret_cast<const char*>(base_bytes.data()), static_cast<std::streamsize>(base_bytes.size()));
  create(path("mid.qcow2"), size, 16, 4, "base.raw", "raw");  // relative: to the image's directory
  create(path("top.qcow2"), size, 12, 4, path("mid.qcow2"), "qcow2");
  {
    auto mid = open(path("mid.qcow2"));
    ASSERT_TRUE(mid);
    ASSERT_EQ(write(*mid, 100000, pattern(3000, 8)), 0);
  }
  std::vector<uint8_t> model(size, 0);
  std::copy(base_bytes.begin(), base_bytes.end(), model.begin());
  const auto mid_write = pattern(3000, 8);
  std::copy(mid_write.begin(), mid_write.end(), model.begin() + 100000);
  auto top = open(path("top.qcow2"));
  ASSERT_TRUE(top);
  ASSERT_NE(top->backing(), nullptr);
  ASSERT_NE(top->backing()->backing(), nullptr);
  EXPECT_EQ(top->backing()->backing()->format(), DiskFormat::kRaw);
  EXPECT_TRUE(top->backing()->read_only());
  EXPECT_EQ(read(*top, 0, size), model);  // the base's tail past its end reads as zeroes
  const auto top_write = pattern(700, 9);
  ASSERT_EQ(write(*top, 99000, top_write), 0);  // partial cluster: the rest comes from below
  std::copy(top_write.begin(), top_write.end(), model.begin() + 99000);
  EXPECT_EQ(read(*top, 0, size), model);
  // Discarding or zeroing in an overlay must hide the backing data, not expose it.
  ASSERT_EQ(top->discard(8192, 8192), 0);
  std::fill_n(model.begin() + 8192, 8192, 0);
  ASSERT_EQ(top->write_zeroes(1 * MiB, 4096 + 512, false), 0);
  std::fill_n(model.begin() + static_cast<ptrdiff_t>(1 * MiB), 4096 + 512, 0);
  EXPECT_EQ(read(*top, 0, size), model);
  top.reset();
  std::ifstream in(path("base.raw"), std::ios::binary);
  std::vector<uint8_t> still((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(still, base_bytes);
  if (have_qemu_img()) {
    EXPECT_EQ(qemu_check(path("top.qcow2")), 0);
    EXPECT_EQ(qemu_check(path("mid.qcow2")), 0);
  }
}

TEST_F(Qcow2Test, DiscardFreesClustersForReuse) {
  create(path("d.qcow2"), 16 * MiB);
  auto d = open(path("d.qcow2"));
  ASSERT_TRUE(d);
  ASSERT_EQ(write(*d, 0, pattern(4 * 65536, 1)), 0);
  ASSERT_EQ(d->flush(), 0);
  struct stat before {};
  ASSERT_EQ(stat(path("d.qcow2").c_str(), &before), 0);
  // Half-cluster discards are ignored; whole clusters read as zeroes afterwards.
  ASSERT_EQ(d->discard(1000, 2 * 65536), 0);
  auto got = read(*d, 0, 4 * 65536);
  const auto want = pattern(4 * 65536, 1);
  EXPECT_TRUE(std::equal(got.begin(), got.begin() + 65536, want.begin()));
  EXPECT_EQ(std::vector<uint8_t>(got.begin() + 65536, got.begin() + 2 * 65536), std::vector<uint8_t>(65536, 0));
  EXPECT_TRUE(std::equal(got.begin() + 2 * 65536, got.end(), want.begin() + 2 * 65536));
  ASSERT_EQ(d->flush(), 0);
  // The freed cluster is reused rather than the file growing.
  ASSERT_EQ(write(*d, 8 * MiB, pattern(65536, 2)), 0);
  ASSERT_EQ(d->flush(), 0);
  struct stat after {};
  ASSERT_EQ(stat(path("d.qcow2").c_str(), &after), 0);
  EXPECT_EQ(after.st_size, before.st_size);
  d.reset();
  if (have_qemu_img()) {
    EXPECT_EQ(qemu_check(path("d.qcow2")), 0);
  }
}

TEST_F(Qcow2Test, WriteZeroesKeepsOrFreesAllocation) {
  create(path("z.qcow2"), 16 * MiB);
  auto d = open(path("z.qcow2"));
  ASSERT_TRUE(d);
  ASSERT_EQ(write(*d, 0, pattern(3 * 65536, 3)), 0);
  ASSERT_EQ(d->write_zeroes(65536 - 512, 65536 + 1024, false), 0);  // partial, whole, partial
  ASSERT_EQ(d->write_zeroes(2 * 65536 + 1024, 65536 - 1024, true), 0);
  auto got = read(*d, 0, 3 * 65536);
  auto want = pattern(3 * 65536, 3);
  std::fill_n(want.begin() + 65536 - 512, 65536 + 1024, 0);
  std::fill_n(want.begin() + 2 * 65536 + 1024, 65536 - 1024, 0);
  EXPECT_EQ(got, want);
  // A preallocated zero cluster takes a partial write in place.
  ASSERT_EQ(write(*d, 65536 + 4096, pattern(512, 4)), 0);
  const auto p4 = pattern(512, 4);
  std::copy(p4.begin(), p4.end(), want.begin() + 65536 + 4096);
  EXPECT_EQ(read(*d, 0, 3 * 65536), want);
  d.reset();
  auto again = open(path("z.qcow2"), true);
  EXPECT_EQ(read(*again, 0, 3 * 65536), want);
  again.reset();
  if (have_qemu_img()) {
    EXPECT_EQ(qemu_check(path("z.qcow2")), 0);
  }
}

TEST_F(Qcow2Test, RefcountTableGrowsWhenTheFileOutgrowsIt) {
  // 4 KiB clusters, 16-bit refcounts: one refcount-table cluster covers 4 GiB of file, one
  // block 8 MiB. Write 8 MiB, push the file's end past 4 GiB (sparse), then write more than
  // the existing blocks have room for: the next clusters need a block beyond the table.
  create(path("r.qcow2"), 64 * MiB, 12, 4);
  const uint64_t old_table = file_be64(path("r.qcow2"), 48);
  auto d = open(path("r.qcow2"));
  ASSERT_TRUE(d);
  const auto first = pattern(8 * MiB, 5);
  ASSERT_EQ(write(*d, 0, first), 0);
  ASSERT_EQ(d->flush(), 0);
  d.reset();
  ASSERT_EQ(truncate(path("r.qcow2").c_str(), static_cast<off_t>(4 * GiB + 64 * KiB)), 0);
  d = open(path("r.qcow2"));
  ASSERT_TRUE(d);
  // More than the free room left in the blocks that exist (the first 16 MiB of the file).
  const auto second = pattern(12 * MiB, 6);
  ASSERT_EQ(write(*d, 32 * MiB, second), 0);
  ASSERT_EQ(d->flush(), 0);
  d.reset();
  EXPECT_NE(file_be64(path("r.qcow2"), 48), old_table);  // the table moved
  auto r = open(path("r.qcow2"), true);
  EXPECT_EQ(read(*r, 0, 8 * MiB), first);
  EXPECT_EQ(read(*r, 32 * MiB, 12 * MiB), second);
  r.reset();
  if (have_qemu_img()) {
    EXPECT_EQ(qemu_check(path("r.qcow2")), 0);
  }
}

TEST_F(Qcow2Test, ExplicitFormatMustMatch) {
  create(path("q.qcow2"), 1 * MiB);
  std::ofstream(path("r.raw")).write(std::string(4096, 'x').data(), 4096);
  DiskOpenOptions o;
  o.format = DiskFormat::kRaw;
  auto a = open_disk(path("q.qcow2"), o);
  ASSERT_FALSE(a.ok());
  EXPECT_NE(a.error().message().find("is a qcow2 image, not raw"), std::string::npos) << a.error().message();
  o.format = DiskFormat::kQcow2;
  auto b = open_disk(path("r.raw"), o);
  ASSERT_FALSE(b.ok());
  EXPECT_NE(b.error().message().find("is a raw image, not qcow2"), std::string::npos) << b.error().message();
  EXPECT_TRUE(open_disk(path("q.qcow2"), o).ok());
}

TEST_F(Qcow2Test, HostileHeadersAreRefusedWithTheReason) {
  struct Case {
    const char* name;
    uint64_t offset;
    uint64_t value;
    int width;
    const char* expect;
  };
  const Case cases[] = {
      {"version", 4, 1, 4, "version 1 is not supported"},
      {"cluster_bits", 20, 30, 4, "cluster_bits 30"},
      {"extended_l2", 72, 1u << 4, 8, "extended L2 entries"},
      {"unknown_incompat", 72, 1u << 9, 8, "unknown incompatible features bit 9"},
      {"external_data", 72, 1u << 2, 8, "external data file"},
      {"encrypted", 32, 1, 4, "encrypted"},
      {"l1_past_eof", 40, 1ull << 40, 8, "runs past the end of the file"},
      {"l1_unaligned", 40, 0x30100, 8, "not a cluster-aligned"},
      {"l1_too_small", 36, 0, 4, "cannot map the virtual size"},
      {"reftable_zero", 48, 0, 8, "refcount_table_offset"},
      {"reftable_huge", 56, 0xffffffff, 4, "refcount_table_clusters"},
      {"refcount_order", 96, 7, 4, "refcount_order 7"},
      {"header_length", 100, 1000000, 4, "header_length"},
      {"compression_type", 104, 0x05000000, 4, "compression type 5 does not agree"},
      {"backing_name", 8, 0x1fff0, 8, "backing file name"},
  };
  for (const auto& c : cases) {
    const std::string p = path(std::string(c.name) + ".qcow2");
    create(p, 64 * MiB);
    if (std::string(c.name) == "backing_name") patch_be<uint32_t>(p, 16, 10);
    if (c.width == 8) patch_be<uint64_t>(p, c.offset, c.value);
    else patch_be<uint32_t>(p, c.offset, static_cast<uint32_t>(c.value));
    const std::string err = open_error(p, true);
    EXPECT_NE(err.find(p), std::string::npos) << c.name << ": " << err;
    EXPECT_NE(err.find(c.expect), std::string::npos) << c.name << ": " << err;
  }
}

TEST_F(Qcow2Test, CorruptTablesFailOnlyTheRequest) {
  create(path("c.qcow2"), 64 * MiB);
  {
    auto d = open(path("c.qcow2"));
    ASSERT_EQ(write(*d, 0, pattern(65536, 1)), 0);
    ASSERT_EQ(write(*d, 1 * MiB, pattern(65536, 2)), 0);
  }
  const uint64_t l1 = file_be64(path("c.qcow2"), 40);
  const uint64_t l2 = file_be64(path("c.qcow2"), l1) & qcow2::kL1OffsetMask;
  // Guest cluster 0: points far past the end of the file. Cluster 16: reserved bits.
  patch_be<uint64_t>(path("c.qcow2"), l2, qcow2::kEntryCopied | (1ull << 50));
  patch_be<uint64_t>(path("c.qcow2"), l2 + 16 * 8, file_be64(path("c.qcow2"), l2 + 16 * 8) | 0x2);
  auto d = open(path("c.qcow2"));
  ASSERT_TRUE(d);
  int rc = 0;
  (void)read(*d, 0, 4096, &rc);
  EXPECT_EQ(rc, -EIO);
  (void)read(*d, 1 * MiB, 4096, &rc);
  EXPECT_EQ(rc, -EIO);
  EXPECT_EQ(write(*d, 0, pattern(512, 3)), -EIO);
  // Elsewhere the disk still works.
  ASSERT_EQ(write(*d, 2 * MiB, pattern(4096, 4)), 0);
  EXPECT_EQ(read(*d, 2 * MiB, 4096), pattern(4096, 4));
  // An L1 entry pointing past the file, too.
  d.reset();
  patch_be<uint64_t>(path("c.qcow2"), l1, qcow2::kEntryCopied | (1ull << 45));
  d = open(path("c.qcow2"));
  (void)read(*d, 0, 4096, &rc);
  EXPECT_EQ(rc, -EIO);
}

TEST_F(Qcow2Test, WritableOpenRefusesDirtyAndVersion2) {
  create(path("dirty.qcow2"), 1 * MiB);
  patch_be<uint64_t>(path("dirty.qcow2"), 72, qcow2::kIncompatDirty);
  EXPECT_NE(open_error(path("dirty.qcow2")).find("marked dirty"), std::string::npos);
  EXPECT_EQ(open_error(path("dirty.qcow2"), true), "");
  if (!have_qemu_img()) GTEST_SKIP() << "qemu-img not installed";
  run(fmt::format("qemu-img create -q -f qcow2 -o compat=0.10 '{}' 1M", path("v2.qcow2")));
  EXPECT_NE(open_error(path("v2.qcow2")).find("version 2"), std::string::npos);
  EXPECT_EQ(open_error(path("v2.qcow2"), true), "");
}

// Images qemu-img wrote, in the variants doppel reads: compressed (deflate and zstd),
// version 2, small and large clusters. Each reads exactly as qemu-img's raw conversion.
TEST_F(Qcow2Test, ReadsWhatQemuImgWrites) {
  if (!have_qemu_img()) GTEST_SKIP() << "qemu-img not installed";
  const uint64_t size = 8 * MiB;
  std::vector<uint8_t> raw(size, 0);
  // Compressible and incompressible stretches, and holes.
  for (uint64_t i = 0; i < 2 * MiB; i++) raw[i] = static_cast<uint8_t>(i / 1000);
  const auto noise = pattern(1 * MiB, 11);
  std::copy(noise.begin(), noise.end(), raw.begin() + static_cast<ptrdiff_t>(5 * MiB));
  std::ofstream(path("ref.raw"), std::ios::binary)
      .write(reinterpret_cast<const char*>(raw.data()), static_cast<std::streamsize>(raw.size()));
  const std::pair<const char*, const char*> variants[] = {
      {"deflate", "-c -o compression_type=zlib"},
      {"zstd", "-c -o compression_type=zstd"},
      {"v2", "-c -o compat=0.10"},
      {"c4k", "-o cluster_size=4096"},
      {"c2m", "-o cluster_size=2M"},
  };
  for (const auto& [name, opts] : variants) {
    const std::string img = path(std::string(name) + ".qcow2");
    const int status = std::system(fmt::format("qemu-img convert -q -f raw -O qcow2 {} '{}' '{}' 2>/dev/null",
                                               opts, path("ref.raw"), img).c_str());
    if (status != 0) {
      ADD_FAILURE() << "qemu-img convert " << opts << " failed";
      continue;
    }
    auto d = open(img, true);
    ASSERT_TRUE(d) << name;
    EXPECT_EQ(read(*d, 0, size), raw) << name;
    if (std::string(name) == "v2") continue;
    // Writing into a compressed cluster copies it out first.
    d.reset();  // the reader's lock first: a writer is exclusive
    d = open(img, false);
    ASSERT_TRUE(d) << name;
    ASSERT_EQ(write(*d, 100 * 1000, pattern(100, 12)), 0);
    d.reset();
    auto model = raw;
    const auto w = pattern(100, 12);
    std::copy(w.begin(), w.end(), model.begin() + 100 * 1000);
    d = open(img, true);
    EXPECT_EQ(read(*d, 0, size), model) << name;
    d.reset();
    EXPECT_EQ(qemu_check(img), 0) << name;
  }
}

TEST_F(Qcow2Test, CreateQcow2WithBackingTakesItsSizeAndFormat) {
  std::ofstream(path("base.raw")).write(std::string(3 * 512, 'b').data(), 3 * 512);
  DiskCreateOptions o;
  o.backing = "base.raw";
  ASSERT_TRUE(create_qcow2(path("clone.qcow2"), o).ok());
  auto chain = disk_info(path("clone.qcow2"));
  ASSERT_TRUE(chain.ok()) << chain.error().message();
  ASSERT_EQ(chain->size(), 2u);
  EXPECT_EQ((*chain)[0].format, DiskFormat::kQcow2);
  EXPECT_EQ((*chain)[0].virtual_size, 3u * 512);
  EXPECT_EQ((*chain)[1].format, DiskFormat::kRaw);
  EXPECT_NE((*chain)[0].details.find("backing file 'base.raw' (raw)"), std::string::npos) << (*chain)[0].details;
  // Never overwrites.
  auto again = create_qcow2(path("clone.qcow2"), o);
  ASSERT_FALSE(again.ok());
  EXPECT_NE(again.error().message().find("File exists"), std::string::npos);
  DiskCreateOptions missing;
  missing.backing = "nope.raw";
  auto m = create_qcow2(path("x.qcow2"), missing);
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.error().message().find("nope.raw"), std::string::npos);
}

TEST_F(Qcow2Test, BackingLoopIsAnError) {
  create(path("a.qcow2"), 1 * MiB, 16, 4, "b.qcow2", "qcow2");
  create(path("b.qcow2"), 1 * MiB, 16, 4, "a.qcow2", "qcow2");
  const std::string err = open_error(path("a.qcow2"), true);
  EXPECT_NE(err.find("deeper than"), std::string::npos) << err;
}

}  // namespace
}  // namespace doppel
