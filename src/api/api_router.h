// The control API's routes: Firecracker's resources (where doppel has the concept) turned
// into VmControl calls and back into JSON. No I/O and no HTTP library here: a request is
// a method, a path and a body, so that tests and the fuzzer can drive it directly.
//
//   GET   /                          {"id","state","vmm_version","app_name"}
//   GET   /version                   {"vmm_version"}
//   GET   /vm/config                 the VM file (to_json(VmConfig)); before boot, the
//                                    configuration PUT so far
//   GET   /machine-config            {"vcpu_count","mem_size_mib","smt":false,"arch","engine"}
//   GET   /metrics                   VmControl::metrics()
//   PATCH /vm                        {"state":"Paused"|"Resumed"}
//   PUT   /snapshot/create           {"snapshot_type":"Full"|"Diff","snapshot_path","mem_file_path"}
//   PUT   /snapshot/load             {"snapshot_path","mem_backend":{"backend_type":"File",
//                                    "backend_path"} (or "mem_file_path"),"resume_vm",
//                                    doppel: "drives":[{"path_on_host","is_read_only"}],
//                                    "network_interfaces":[{"host_dev_name","guest_mac"}]}
//   GET   /migrate                   {"status":"none"|"active"|"completed"|"failed", "rounds",
//                                    "bytes_sent", "round_pages(_sent)", "dirty_pages_per_s",
//                                    "expected_downtime_ms", "downtime_ms", ... "error"}
//   PUT   /migrate                   {"destination","downtime_ms","max_bandwidth","max_rounds",
//                                    "compress":"zstd"|"none"}: answered when it is over
//                                    (200 + GET's object, or 400), others are served meanwhile
//   PUT   /actions                   {"action_type":"InstanceStart"|"SendCtrlAltDel"|"FlushMetrics"}
//   pre-boot, applied by InstanceStart:
//   PUT   /boot-source               {"kernel_image_path","initrd_path","boot_args",
//                                    doppel: "firmware_path" (or "none"),
//                                    "boot_from" ("kernel" or "disk": U-Boot boots the
//                                    first drive; no kernel_image_path then)}
//   PUT   /machine-config            {"vcpu_count","mem_size_mib","smt":false,
//                                    doppel: "arch","engine"}
//   PUT   /drives/{drive_id}         {"drive_id","path_on_host","is_read_only","is_root_device",
//                                    "rate_limiter"}
//   PUT   /network-interfaces/{id}   {"iface_id","host_dev_name","guest_mac","rx_rate_limiter",
//                                    "tx_rate_limiter"}
//   PUT   /vsock                     {"guest_cid","uds_path"} ("vsock_id" accepted, unused)
//   running:
//   PATCH /drives/{drive_id}         {"drive_id","rate_limiter"}: the buckets given replace the
//                                    drive's (full; size 0 removes a limit), others stay
//   PATCH /network-interfaces/{id}   {"iface_id","rx_rate_limiter","tx_rate_limiter"}
//
// Answers: 200 + JSON for a GET, 204 for an action, 400 {"fault_message"} for a bad request
// or a refused action, 404 for an unknown path, 405 (with Allow) for a wrong method.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "api/http.h"
#include "vmm/vm_config.h"
#include "vmm/vm_control.h"

namespace doppel {

class ApiRouter {
 public:
  explicit ApiRouter(VmControl& control) : m_control(control) {}

  // Never throws on any input (it is a parser of hostile input). Threads: one at a time
  // (the API server's thread); it holds the pre-boot configuration unguarded.
  HttpResponse handle(const HttpRequest& request);

 private:
  struct Drive {
    std::string id;
    DiskConfig disk;
    bool root = false;
  };
  struct Interface {
    std::string id;
    NetConfig net;
  };

  Result<HttpResponse> route(std::string_view method, std::string_view path, const std::string& body);

  HttpResponse get_root();
  HttpResponse get_vm_config();
  Result<HttpResponse> get_machine_config();
  Result<void> patch_vm(const std::string& body);
  Result<void> put_snapshot_create(const std::string& body);
  Result<void> put_snapshot_load(const std::string& body);
  Result<HttpResponse> put_migrate(const std::string& body);
  Result<void> put_actions(const std::string& body);
  Result<void> put_boot_source(const std::string& body);
  Result<void> put_machine_config(const std::string& body);
  Result<void> put_drive(std::string_view id, const std::string& body);
  Result<void> put_network_interface(std::string_view id, const std::string& body);
  // PATCH /drives/{id} {"drive_id","rate_limiter"}, /network-interfaces/{id}
  // {"iface_id","rx_rate_limiter","tx_rate_limiter"}: a running VM's rate limiters.
  Result<void> patch_rate_limiters(bool drive, std::string_view id, const std::string& body);
  Result<void> put_vsock(const std::string& body);

  // Fails once a VM exists (started or loaded from a snapshot).
  Result<void> check_pre_boot(std::string_view resource);
  // The pending configuration as InstanceStart hands it to VmControl::start.
  VmConfig pending_config() const;
  Result<void> instance_start();

  VmControl& m_control;
  // The pre-boot configuration (Firecracker keeps it in its VmResources).
  VmConfig m_pending;
  bool m_configured = false;  // some pre-boot PUT succeeded
  bool m_machine_config_set = false;  // PUT /machine-config succeeded: arch and engine chosen
  bool m_boot_source_set = false;
  std::vector<Drive> m_drives;          // in the order first PUT; a re-PUT replaces in place
  std::vector<Interface> m_interfaces;  // likewise
};

}  // namespace doppel
