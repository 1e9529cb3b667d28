// libFuzzer: virtio-rng behind virtio-mmio (the transport and split queue on their own).
#include "devices/virtio/virtio_fuzz_util.h"
#include "devices/virtio/virtio_rng.h"

using namespace doppel;
using namespace doppel::virtio;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzzing::CountingIrq irq;
  VirtioMmio mmio(std::make_unique<VirtioRng>(fuzzing::ram(), "virtio-rng"), irq);
  fuzzing::run(std::span<const uint8_t>(data, size), mmio);
  return 0;
}
