// libFuzzer: virtio-console writing to /dev/null (transmit path, transport, queue).
#include "devices/virtio/virtio_console.h"
#include "devices/virtio/virtio_fuzz_util.h"

using namespace doppel;
using namespace doppel::virtio;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto stream = ConsoleStream::open_file("/dev/null");
  if (!stream.ok()) abort();
  auto dev = VirtioConsole::create(fuzzing::ram(), stream.release_value(), "virtio-console");
  if (!dev.ok()) abort();
  fuzzing::CountingIrq irq;
  VirtioMmio mmio(dev.release_value(), irq);
  fuzzing::run(std::span<const uint8_t>(data, size), mmio);
  return 0;
}
