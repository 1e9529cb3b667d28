// libFuzzer: parse_hostfwd() on arbitrary text, as `--net user,hostfwd=` and a VM file's
// "hostfwd" give it. Beyond "no crash, no UB": what parses has ports from 1 to 65535, a
// guest address inside 10.0.2.0/24, and prints as text that parses back to the same forward.
#include <arpa/inet.h>

#include <cstdlib>
#include <string>

#include "backends/slirp_options.h"

using namespace doppel;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  auto f = parse_hostfwd(text);
  if (!f.ok()) return 0;
  if (f->host_port == 0 || f->guest_port == 0) std::abort();
  if ((ntohl(f->guest_addr.s_addr) & 0xffffff00u) != 0x0a000200u) std::abort();
  auto again = parse_hostfwd(to_string(*f));
  if (!again.ok() || !(*again == *f)) std::abort();
  return 0;
}
