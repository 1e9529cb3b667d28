// User-mode networking's port forwards, written the way QEMU's `-nic user,hostfwd=` writes
// them: "[tcp|udp]:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT". An empty host address listens
// on every host address (0.0.0.0, as QEMU); an empty guest address is the guest's DHCP
// address, 10.0.2.15.
//
// Threads: plain functions.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include <netinet/in.h>

#include "base/result.h"

namespace doppel {

// The user network's fixed layout (QEMU's defaults): 10.0.2.0/24, the gateway (the host, as
// the guest sees it) at .2, the DNS forwarder at .3, DHCP handing out .15 onwards.
inline constexpr const char* kUserNetNetwork = "10.0.2.0";
inline constexpr const char* kUserNetMask = "255.255.255.0";
inline constexpr const char* kUserNetGateway = "10.0.2.2";
inline constexpr const char* kUserNetDns = "10.0.2.3";
inline constexpr const char* kUserNetGuest = "10.0.2.15";

struct HostFwd {
  bool udp = false;
  in_addr host_addr{};   // INADDR_ANY when the text left it empty
  uint16_t host_port = 0;
  in_addr guest_addr{};  // kUserNetGuest when the text left it empty
  uint16_t guest_port = 0;
  bool operator==(const HostFwd& o) const {
    return udp == o.udp && host_addr.s_addr == o.host_addr.s_addr && host_port == o.host_port &&
           guest_addr.s_addr == o.guest_addr.s_addr && guest_port == o.guest_port;
  }
};

// Parses one forward; errors name the text and what is wrong with it. Ports are 1 to 65535;
// the guest address must be inside 10.0.2.0/24 and not one of the user network's own.
Result<HostFwd> parse_hostfwd(std::string_view text);
// The canonical text ("tcp:127.0.0.1:8080-10.0.2.15:80"); parse_hostfwd reads it back equal.
std::string to_string(const HostFwd& fwd);

}  // namespace doppel
