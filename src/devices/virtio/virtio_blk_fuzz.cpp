// libFuzzer: virtio-blk behind virtio-mmio; guest RAM and register writes are the input.
#include <fcntl.h>
#include <unistd.h>

#include "backends/raw_disk.h"
#include "devices/virtio/virtio_blk.h"
#include "devices/virtio/virtio_fuzz_util.h"

using namespace doppel;
using namespace doppel::virtio;

static const std::string& image_path() {
  static const std::string path = [] {
    char tmpl[] = "/tmp/doppel-blk-fuzz-XXXXXX";
    const int fd = mkstemp(tmpl);
    if (fd < 0 || ftruncate(fd, 256 * 1024) != 0) abort();
    close(fd);
    return std::string(tmpl);
  }();
  return path;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto disk = RawDisk::open(image_path(), size > 0 && (data[size - 1] & 1));
  if (!disk.ok()) abort();
  fuzzing::CountingIrq irq;
  VirtioMmio mmio(std::make_unique<VirtioBlk>(fuzzing::ram(), disk.release_value(), "virtio-blk0"), irq);
  fuzzing::run(std::span<const uint8_t>(data, size), mmio);
  return 0;
}
