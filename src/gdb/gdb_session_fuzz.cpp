// A hostile debugger: any byte stream into a GdbSession over a fake target (2 vCPUs, a
// little RAM) gets replies or errors, never a crash; stop events and the VM's end arrive
// at points the input chooses.
#include <cstddef>
#include <cstdint>

#include "gdb/gdb_fake_target.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace doppel::gdb;
  // An odd first byte: an arch whose breakpoints the session plants (x86's int3).
  FakeTarget target(2, size > 0 && (data[0] & 1) ? std::vector<uint8_t>{0xcc}
                                                 : std::vector<uint8_t>{});
  size_t sent = 0;
  GdbSession session(target, [&](std::string_view bytes) { sent += bytes.size(); });
  session.attach();
  // Chunks split at 0xff bytes; the byte after it picks an event.
  size_t start = 0;
  for (size_t i = 0; i <= size; ++i) {
    if (i < size && data[i] != 0xff) continue;
    session.receive(std::span(data + start, i - start));
    if (i + 1 < size) {
      const uint8_t e = data[i + 1];
      if (e % 4 == 0) target.event = GdbTarget::Stop{e % 2u, doppel::DebugStopKind::kStep, e};
      else if (e % 8 == 3)
        target.event = GdbTarget::Stop{e % 2u, doppel::DebugStopKind::kBreakpoint, e};
      else if (e % 4 == 1) target.event = GdbTarget::Stop{0, doppel::DebugStopKind::kWatchRead, 8};
      else if (e % 4 == 2) target.exited = e;
      session.on_target_event();
      ++i;
    }
    start = i + 1;
  }
  session.disconnect();
  return 0;
}
