#include "devices/virtio/virtio_rng.h"

#include <sys/random.h>

#include <algorithm>
#include <cerrno>

namespace doppel::virtio {

void VirtioRng::process_queue(unsigned q) {
  if (q != 0) return;
  while (auto chain = pop(0)) {
    uint32_t filled = 0;
    if (chain->error == ChainError::kNone) {
      for (const auto& b : chain->writable) {
        uint32_t done = 0;
        while (done < b.len && filled < kMaxRequestBytes) {
          const size_t want = std::min<size_t>(b.len - done, kMaxRequestBytes - filled);
          const ssize_t n = getrandom(b.host + done, want, 0);
          if (n < 0) {
            if (errno == EINTR) continue;
            break;
          }
          done += static_cast<uint32_t>(n);
          filled += static_cast<uint32_t>(n);
        }
        if (done < b.len) break;
      }
    }
    complete(0, chain->head, filled);
  }
}

}  // namespace doppel::virtio
