// libFuzzer: the diff memory file parser (core/memory_diff.h), through the two users of a
// diff a snapshot restore or `doppel snapshot merge` hands it: GuestMemory::apply_diff_file()
// and merge_diff_into(). Each input is tried as it is and again with its checksum made right,
// so that the fuzzer gets past the checksum to the records.
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include "base/bits.h"
#include "core/guest_memory.h"
#include "core/memory_diff.h"

using namespace doppel;

namespace {

constexpr uint64_t kMaxBase = 1 * MiB;  // the largest base file a run makes for merge

// A memfd holding `bytes`, and its /proc path for the path-taking APIs.
struct MemFile {
  explicit MemFile(const char* name) : fd(memfd_create(name, MFD_CLOEXEC)) {}
  std::string path() const { return "/proc/self/fd/" + std::to_string(fd.get()); }
  UniqueFd fd;
};

void set_contents(const MemFile& f, const uint8_t* data, size_t size) {
  (void)ftruncate(f.fd.get(), 0);
  if (size) (void)memdiff::pwrite_all(f.fd.get(), {data, size}, 0, "fuzz");
}

void exercise(const uint8_t* data, size_t size) {
  // Two regions, as on x86 (low RAM and RAM above a hole), small enough for every run.
  static std::unique_ptr<GuestMemory> memory =
      GuestMemory::create({{0x0, 64 * KiB}, {0x10'0000, 32 * KiB}}).release_value();
  MemFile diff("diff");
  set_contents(diff, data, size);
  (void)memory->apply_diff_file(diff.path());

  auto reader = memdiff::Reader::open(diff.path());
  if (!reader.ok() || reader->header().ram_size > kMaxBase) return;
  MemFile base("base");
  (void)ftruncate(base.fd.get(), static_cast<off_t>(reader->header().ram_size));
  (void)merge_diff_into(base.path(), diff.path());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  exercise(data, size);
  if (size < memdiff::kHeaderSize) return 0;
  std::string fixed(reinterpret_cast<const char*>(data), size);
  auto* bytes = reinterpret_cast<uint8_t*>(fixed.data());
  memdiff::Checksum sum;
  // Whole words only, as the writer feeds it; a ragged tail makes the size check fail anyway.
  const size_t body = (size - memdiff::kHeaderSize) & ~size_t{7};
  sum.update({bytes, memdiff::kChecksumOffset});
  sum.update({bytes + memdiff::kHeaderSize, body});
  store_le<uint64_t>(bytes + memdiff::kChecksumOffset, sum.finish());
  exercise(bytes, size);
  return 0;
}
