// A host crash, simulated: everything doppel wrote to a qcow2 file since its last fdatasync
// may or may not have reached the disk, in any combination (the page cache writes back pages
// in any order). A Qcow2FileObserver records the file's writes and syncs; at a random moment
// the test "pulls the plug": the crashed file is the last synced bytes plus a random subset
// of the later writes, in 4 KiB pieces. qemu-img check must find no corruption (leaks are
// allowed) and every sector must read as it was at the guest's last completed flush or as
// a write issued after it. Repeated for many seeds, cluster sizes, with a backing file and
// with an internal snapshot (copy on write of shared L2 tables and clusters).
#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>

#include <gtest/gtest.h>

#include "backends/qcow2.h"
#include "backends/qemu_img_fixture.h"
#include "base/bits.h"

namespace doppel {
namespace {

constexpr uint64_t kSector = 512;
constexpr uint64_t kPage = 4096;


std::vector<uint8_t> read_file(const std::string& p) {
  std::ifstream in(p, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), {});
}

void write_file(const std::string& p, const std::vector<uint8_t>& bytes) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

// The file as the disk would hold it: synced bytes, plus what was written since, until
// crash() freezes it.
class CrashRecorder final : public Qcow2FileObserver {
 public:
  CrashRecorder(std::vector<uint8_t> durable, uint64_t crash_after_events)
      : m_durable(std::move(durable)), m_crash_after(crash_after_events) {}

  void wrote(uint64_t offset, std::span<const uint8_t> bytes) override {
    if (event()) return;
    // 4 KiB pieces, as the page cache writes them back.
    while (!bytes.empty()) {
      const uint64_t n = std::min<uint64_t>(bytes.size(), kPage - offset % kPage);
      m_pending.push_back({offset, std::vector<uint8_t>(bytes.begin(), bytes.begin() + static_cast<ptrdiff_t>(n))});
      offset += n;
      bytes = bytes.subspan(n);
    }
  }
  void synced() override {
    if (event()) return;
    for (const auto& w : m_pending) apply(m_durable, w);
    m_pending.clear();
  }
  void crash() { m_crashed = true; }
  bool crashed() const { return m_crashed; }
  // The file after the crash: each unsynced piece survives with probability 1/2.
  std::vector<uint8_t> crashed_file(std::mt19937_64& rng) const {
    std::vector<uint8_t> file = m_durable;
    for (const auto& w : m_pending)
      if (rng() & 1) apply(file, w);
    return file;
  }
  size_t pending() const { return m_pending.size(); }

 private:
  struct Write {
    uint64_t offset;
    std::vector<uint8_t> bytes;
  };
  bool event() {
    if (m_crashed) return true;
    if (++m_events >= m_crash_after) m_crashed = true;
    return m_crashed && m_events > m_crash_after;
  }
  static void apply(std::vector<uint8_t>& file, const Write& w) {
    if (file.size() < w.offset + w.bytes.size()) file.resize(w.offset + w.bytes.size());
    std::copy(w.bytes.begin(), w.bytes.end(), file.begin() + static_cast<ptrdiff_t>(w.offset));
  }

  std::vector<uint8_t> m_durable;
  std::vector<Write> m_pending;
  uint64_t m_crash_after;
  uint64_t m_events = 0;
  bool m_crashed = false;
};

// Sector contents are tagged by the operation that wrote them, so a sector read back names
// its writer: bytes 0..7 the op id, 8..15 the sector, the rest derived from both. Op 0 is
// "zeroes"; kBase is the backing file's content.
constexpr uint64_t kBase = ~0ull;

void fill_sector(uint8_t* p, uint64_t op, uint64_t sector) {
  store_le<uint64_t>(p, op);
  store_le<uint64_t>(p + 8, sector);
  uint64_t x = op * 0x9e3779b97f4a7c15ull ^ sector;
  for (uint64_t i = 16; i < kSector; i += 8) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    store_le<uint64_t>(p + i, x);
  }
}

// What each guest sector may read as after a crash: its value at the last completed flush,
// or any write issued after that flush (before the crash).
struct SectorModel {
  explicit SectorModel(uint64_t sectors, uint64_t initial) : flushed(sectors, initial), current(sectors, initial), later(sectors) {}
  void wrote(uint64_t first, uint64_t count, uint64_t op) {
    for (uint64_t s = first; s < first + count; s++) {
      current[s] = op;
      later[s].push_back(op);
    }
  }
  void flushed_now() {
    flushed = current;
    for (auto& l : later) l.clear();
  }
  bool allowed(uint64_t s, uint64_t op) const {
    if (flushed[s] == op) return true;
    for (uint64_t o : later[s])
      if (o == op) return true;
    return false;
  }
  std::vector<uint64_t> flushed, current;
  std::vector<std::vector<uint64_t>> later;
};

class Qcow2CrashTest : public testing::QemuImgFixture {
 protected:

  enum class Variant { kPlain, kBacking, kSnapshot };

  // One crash: a fresh image, a random workload cut at a random file event, then the checks.
  void crash_once(uint64_t seed, uint64_t cs, Variant variant) {
    SCOPED_TRACE(fmt::format("seed {}, cluster size {}, variant {}", seed, cs, static_cast<int>(variant)));
    std::mt19937_64 rng(seed);
    const uint64_t size = 4 * MiB, sectors = size / kSector;
    const std::string img = path("crash.qcow2");
    std::filesystem::remove(img);
    uint64_t initial = 0;
    if (variant == Variant::kBacking) {
      std::vector<uint8_t> base(size);
      for (uint64_t s = 0; s < sectors; s++) fill_sector(&base[s * kSector], kBase, s);
      write_file(path("base.raw"), base);
      ASSERT_EQ(shell(fmt::format("qemu-img create -f qcow2 -o cluster_size={} -b base.raw -F raw '{}'", cs, img)), 0)
          << log();
      initial = kBase;
    } else {
      ASSERT_EQ(shell(fmt::format("qemu-img create -f qcow2 -o cluster_size={} '{}' {}", cs, img, size)), 0) << log();
    }
    SectorModel model(sectors, initial);
    uint64_t op = 1;
    auto do_write = [&](Qcow2Disk& d, uint64_t first, uint64_t count) {
      std::vector<uint8_t> data(count * kSector);
      for (uint64_t i = 0; i < count; i++) fill_sector(&data[i * kSector], op, first + i);
      iovec v{data.data(), data.size()};
      return d.write(std::span<const iovec>(&v, 1), first * kSector);
    };
    if (variant == Variant::kSnapshot) {
      // Fill part of the disk, snapshot it with qemu-img: those clusters are shared now.
      auto d = Qcow2Disk::open(img, {});
      ASSERT_TRUE(d.ok()) << d.error().message();
      for (int i = 0; i < 64; i++, op++) {
        const uint64_t count = 1 + rng() % (2 * cs / kSector);
        const uint64_t first = rng() % (sectors - count);
        ASSERT_EQ(do_write(**d, first, count), 0);
        model.wrote(first, count, op);
      }
      d->reset();
      model.flushed_now();
      ASSERT_EQ(shell(fmt::format("qemu-img snapshot -c snap '{}'", img)), 0) << log();
    }

    auto opened = Qcow2Disk::open(img, {});
    ASSERT_TRUE(opened.ok()) << opened.error().message();
    auto disk = opened.release_value();
    CrashRecorder rec(read_file(img), 1 + rng() % 600);
    disk->set_observer(&rec);
    for (int i = 0; i < 300 && !rec.crashed(); i++, op++) {
      const uint64_t kind = rng() % 20;
      if (kind < 14) {
        const uint64_t count = 1 + rng() % (3 * cs / kSector);
        const uint64_t first = rng() % (sectors - count);
        model.wrote(first, count, op);  // before: a crash inside the write may keep any part
        ASSERT_EQ(do_write(*disk, first, count), 0);
      } else if (kind < 16) {
        // Whole clusters: reads as zeroes afterwards (a zero flag over a backing file).
        const uint64_t n = 1 + rng() % 3;
        const uint64_t first = (rng() % (size / cs - n)) * cs;
        model.wrote(first / kSector, n * cs / kSector, 0);
        ASSERT_EQ(disk->discard(first, n * cs), 0);
      } else if (kind < 17) {
        const uint64_t count = 1 + rng() % (2 * cs / kSector);
        const uint64_t first = rng() % (sectors - count);
        model.wrote(first, count, 0);
        ASSERT_EQ(disk->write_zeroes(first * kSector, count * kSector, rng() & 1), 0);
      } else {
        ASSERT_EQ(disk->flush(), 0);
        if (!rec.crashed()) model.flushed_now();  // the flush completed before the plug was pulled
      }
    }
    rec.crash();
    disk->set_observer(nullptr);
    disk.reset();  // (its closing flush goes to the real file, which no longer matters)

    const std::string crashed = path("crashed.qcow2");
    write_file(crashed, rec.crashed_file(rng));
    const int code = shell(fmt::format("qemu-img check '{}'", crashed));
    ASSERT_TRUE(code == 0 || code == 3) << "qemu-img check exited " << code << "\n" << log();
    ASSERT_EQ(shell(fmt::format("qemu-img convert -f qcow2 -O raw '{}' '{}'", crashed, path("flat.raw"))), 0)
        << log();
    const auto flat = read_file(path("flat.raw"));
    ASSERT_EQ(flat.size(), size);
    int bad = 0;
    std::vector<uint8_t> want(kSector);
    for (uint64_t s = 0; s < sectors && bad < 5; s++) {
      const uint8_t* got = &flat[s * kSector];
      uint64_t who = load_le<uint64_t>(got);
      const bool zero = std::all_of(got, got + kSector, [](uint8_t b) { return b == 0; });
      if (zero) who = 0;
      if (who != 0) fill_sector(want.data(), who, s);
      const bool intact = zero || std::equal(want.begin(), want.end(), got);
      if (!intact || !model.allowed(s, who)) {
        bad++;
        ADD_FAILURE() << fmt::format("sector {}: reads as {} (flushed: op {}, {} later writes){}", s,
                                     intact ? fmt::format("op {}", who) : "garbage", model.flushed[s],
                                     model.later[s].size(), intact ? "" : ": torn or foreign bytes");
      }
    }
  }

};

// Crashes per test: the default keeps make test short; DOPPEL_CRASH_ROUNDS=N runs N times as
// many (a stress run, by hand).
uint64_t rounds(uint64_t n) {
  const char* env = std::getenv("DOPPEL_CRASH_ROUNDS");
  const uint64_t factor = env ? std::strtoull(env, nullptr, 10) : 1;
  return n * std::max<uint64_t>(factor, 1);
}

TEST_F(Qcow2CrashTest, PlainImages) {
  for (uint64_t seed = 1; seed <= rounds(24); seed++) {
    crash_once(seed, seed % 2 ? 4096 : 65536, Variant::kPlain);
    if (HasFatalFailure() || HasNonfatalFailure()) return;
  }
}

TEST_F(Qcow2CrashTest, OverABackingFile) {
  for (uint64_t seed = 100; seed < 100 + rounds(16); seed++) {
    crash_once(seed, seed % 2 ? 4096 : 65536, Variant::kBacking);
    if (HasFatalFailure() || HasNonfatalFailure()) return;
  }
}

TEST_F(Qcow2CrashTest, WithAnInternalSnapshot) {
  for (uint64_t seed = 200; seed < 200 + rounds(16); seed++) {
    crash_once(seed, seed % 2 ? 4096 : 65536, Variant::kSnapshot);
    if (HasFatalFailure() || HasNonfatalFailure()) return;
  }
}

}  // namespace
}  // namespace doppel
