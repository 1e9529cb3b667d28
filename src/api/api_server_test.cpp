#include "api/api_server.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <future>
#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

#include "api/api_client.h"
#include "api/fake_vm_control.h"
#include "api/http.h"
#include "base/unique_fd.h"

namespace doppel {
namespace {

using json = nlohmann::json;

UniqueFd connect_raw(const std::string& path) {
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
  EXPECT_EQ(::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0) << std::strerror(errno);
  const timeval timeout{5, 0};  // a server that waits for more than we send fails the test, not hangs it
  ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  return fd;
}

void send_all(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t n = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n <= 0) return;
    bytes.remove_prefix(static_cast<size_t>(n));
  }
}

// Everything the server sends until it closes the connection (or 5 s pass).
std::string read_to_eof(int fd) {
  std::string text;
  char buffer[4096];
  for (;;) {
    const ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
    if (n <= 0) break;
    text.append(buffer, static_cast<size_t>(n));
  }
  return text;
}

int count(std::string_view text, std::string_view what) {
  int n = 0;
  for (size_t at = text.find(what); at != text.npos; at = text.find(what, at + 1)) ++n;
  return n;
}

class ApiServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char dir_template[] = "/tmp/doppel-api-test-XXXXXX";
    ASSERT_NE(::mkdtemp(dir_template), nullptr);
    m_dir = dir_template;
    m_socket = m_dir + "/api.sock";
    auto server = ApiServer::create(m_socket, m_control);
    ASSERT_TRUE(server.ok()) << server.error().message();
    m_server = server.release_value();
  }
  void TearDown() override {
    m_server.reset();
    std::filesystem::remove_all(m_dir);
  }

  HttpReply request(std::string_view method, std::string_view target, std::string_view body = {}) {
    auto reply = http_request(m_socket, method, target, body);
    EXPECT_TRUE(reply.ok()) << reply.error().message();
    return reply.ok() ? reply.release_value() : HttpReply{};
  }
  // The fault_message of a 400 (checked).
  std::string fault(std::string_view method, std::string_view target, std::string_view body = {}) {
    const HttpReply reply = request(method, target, body);
    EXPECT_EQ(reply.status, 400u) << reply.body;
    const json doc = json::parse(reply.body, nullptr, false);
    return doc.is_object() && doc.contains("fault_message") ? doc["fault_message"].get<std::string>()
                                                            : reply.body;
  }
  std::string raw(std::string_view bytes) {
    UniqueFd fd = connect_raw(m_socket);
    send_all(fd.get(), bytes);
    ::shutdown(fd.get(), SHUT_WR);  // the server sees EOF after the last request
    return read_to_eof(fd.get());
  }
  void expect_still_serving() {
    const HttpReply reply = request("GET", "/");
    EXPECT_EQ(reply.status, 200u);
  }
  std::string make_file(const std::string& name) {
    const std::string path = m_dir + "/" + name;
    std::ofstream(path) << "x";
    return path;
  }

  std::string m_dir, m_socket;
  FakeVmControl m_control;
  std::unique_ptr<ApiServer> m_server;
};

// ---- GET ----

TEST_F(ApiServerTest, GetRootDescribesTheInstance) {
  const HttpReply reply = request("GET", "/");
  EXPECT_EQ(reply.status, 200u);
  EXPECT_EQ(
      json::parse(reply.body),
      json(
          {{"id", "fake"}, {"state", "Not started"}, {"vmm_version", "0.1.0-test"}, {"app_name", "doppel"}}));
  m_control.set_state(VmState::kPaused);
  EXPECT_EQ(json::parse(request("GET", "/").body)["state"], "Paused");
}

TEST_F(ApiServerTest, PutVsockIsFirecrackersAndShowsInTheConfig) {
  EXPECT_EQ(request("PUT", "/vsock", R"({"vsock_id": "v", "guest_cid": 5, "uds_path": "/tmp/v.sock"})").status,
            204u);
  const auto config = json::parse(request("GET", "/vm/config").body);
  EXPECT_EQ(config["vsock"]["guest_cid"], 5);
  EXPECT_EQ(config["vsock"]["uds_path"], "/tmp/v.sock");
  EXPECT_EQ(fault("PUT", "/vsock", R"({"guest_cid": 2, "uds_path": "/tmp/v.sock"})"),
            "vsock: guest_cid: expected an integer from 3 to 4294967294, got 2");
  EXPECT_EQ(fault("PUT", "/vsock", R"({"guest_cid": 3, "uds_path": ""})"), "vsock: uds_path: is empty");
  EXPECT_EQ(request("GET", "/vsock").status, 405u);
}

TEST_F(ApiServerTest, GetVersionAndMetrics) {
  EXPECT_EQ(json::parse(request("GET", "/version").body), json({{"vmm_version", "0.1.0-test"}}));
  const HttpReply metrics = request("GET", "/metrics");
  EXPECT_EQ(metrics.status, 200u);
  EXPECT_EQ(json::parse(metrics.body), json({{"vcpu_exits", 42}}));
}

TEST_F(ApiServerTest, GetMachineConfigShowsDefaultsThenWhatWasPut) {
  EXPECT_EQ(json::parse(request("GET", "/machine-config").body), json({{"vcpu_count", 1},
                                                                       {"mem_size_mib", 256},
                                                                       {"smt", false},
                                                                       {"arch", "riscv64"},
                                                                       {"engine", "emu"}}));
  EXPECT_EQ(request("PUT", "/machine-config", R"({"vcpu_count": 4, "mem_size_mib": 1024, "arch": "x86_64"})")
                .status,
            204u);
  EXPECT_EQ(json::parse(request("GET", "/machine-config").body), json({{"vcpu_count", 4},
                                                                       {"mem_size_mib", 1024},
                                                                       {"smt", false},
                                                                       {"arch", "x86_64"},
                                                                       {"engine", "kvm"}}));
}

TEST_F(ApiServerTest, GetVmConfigIsTheControlsOnceTheVmExists) {
  EXPECT_EQ(json::parse(request("GET", "/vm/config").body), json::object());  // nothing configured
  EXPECT_EQ(request("PUT", "/machine-config", R"({"vcpu_count": 2, "mem_size_mib": 128})").status, 204u);
  EXPECT_EQ(json::parse(request("GET", "/vm/config").body)["machine"]["cpus"], 2);  // pending
  m_control.set_state(VmState::kRunning);
  EXPECT_EQ(json::parse(request("GET", "/vm/config").body), json::object());  // the control's
}

// ---- actions ----

TEST_F(ApiServerTest, PatchVmPausesAndResumes) {
  m_control.set_state(VmState::kRunning);
  EXPECT_EQ(request("PATCH", "/vm", R"({"state": "Paused"})").status, 204u);
  EXPECT_EQ(request("PATCH", "/vm", R"({"state": "Resumed"})").status, 204u);
  EXPECT_EQ(m_control.calls(), (std::vector<std::string>{"pause", "resume"}));
  EXPECT_EQ(fault("PATCH", "/vm", R"({"state": "Running"})"),
            R"(vm: state: expected "Paused" or "Resumed", got "Running")");
  EXPECT_EQ(fault("PATCH", "/vm", R"({"state": "Resumed"})"),
            "the VM is not paused");  // the control's refusal
}

TEST_F(ApiServerTest, SnapshotCreateFullByDefaultAndDiff) {
  m_control.set_state(VmState::kPaused);
  EXPECT_EQ(
      request("PUT", "/snapshot/create", R"({"snapshot_path": "/s/state", "mem_file_path": "/s/memory"})")
          .status,
      204u);
  auto created = m_control.created();
  ASSERT_TRUE(created);
  EXPECT_EQ(created->type, SnapshotType::kFull);
  EXPECT_EQ(created->snapshot_path, "/s/state");
  EXPECT_EQ(created->mem_file_path, "/s/memory");
  EXPECT_EQ(
      request("PUT", "/snapshot/create",
              R"({"snapshot_type": "Diff", "snapshot_path": "/s/state", "mem_file_path": "/s/memory.diff"})")
          .status,
      204u);
  EXPECT_EQ(m_control.created()->type, SnapshotType::kDiff);
  EXPECT_EQ(fault("PUT", "/snapshot/create",
                  R"({"snapshot_type": "Half", "snapshot_path": "a", "mem_file_path": "b"})"),
            R"(snapshot/create: snapshot_type: expected "Full" or "Diff", got "Half")");
}

TEST_F(ApiServerTest, SnapshotCreateRefusedByTheControlIs400WithItsMessage) {
  m_control.set_state(VmState::kPaused);
  m_control.fail_next("/s/memory: No space left on device");
  EXPECT_EQ(
      fault("PUT", "/snapshot/create", R"({"snapshot_path": "/s/state", "mem_file_path": "/s/memory"})"),
      "/s/memory: No space left on device");
  m_control.set_state(VmState::kRunning);
  EXPECT_EQ(
      fault("PUT", "/snapshot/create", R"({"snapshot_path": "/s/state", "mem_file_path": "/s/memory"})"),
      "the VM must be paused to snapshot it");
  expect_still_serving();
}

TEST_F(ApiServerTest, MigrateReportsTheRunAndRefusesBadFields) {
  m_control.set_state(VmState::kRunning);
  const HttpReply reply =
      request("PUT", "/migrate", R"({"destination": "tcp:10.0.0.2:4444", "downtime_ms": 50})");
  EXPECT_EQ(reply.status, 200u);
  const json report = json::parse(reply.body);
  EXPECT_EQ(report["rounds"], 3);
  EXPECT_EQ(report["bytes_sent"], 4096);
  ASSERT_TRUE(m_control.migrated());
  EXPECT_EQ(m_control.migrated()->destination, "tcp:10.0.0.2:4444");
  EXPECT_EQ(m_control.migrated()->downtime_ms, 50.0);
  EXPECT_EQ(m_control.migrated()->max_bandwidth, 0u);
  EXPECT_EQ(fault("PUT", "/migrate", R"({"downtime_ms": 50})"), "migrate: destination: is required");
  EXPECT_EQ(fault("PUT", "/migrate", R"({"destination": "tcp:a:1", "downtime_ms": "fast"})"),
            R"(migrate: downtime_ms: expected an integer, got "fast")");
  EXPECT_EQ(fault("PUT", "/migrate", R"({"destination": "tcp:a:1", "speed": 1})"),
            "migrate: unknown field 'speed' (known: destination, downtime_ms, max_bandwidth, max_rounds, "
            "compress)");
  EXPECT_EQ(fault("PUT", "/migrate", R"({"destination": "tcp:a:1", "compress": "lz4"})"),
            R"(migrate: compress: expected "zstd" or "none", got "lz4")");
  EXPECT_EQ(request("DELETE", "/migrate").status, 405u);
  EXPECT_EQ(json::parse(request("GET", "/migrate").body)["status"], "completed");
  expect_still_serving();
}

// PUT /migrate answers when the migration is over; meanwhile the server answers others,
// GET /migrate among them.
TEST_F(ApiServerTest, GetMigrateFollowsAMigrationWhilePutWaits) {
  m_control.set_state(VmState::kRunning);
  EXPECT_EQ(request("GET", "/migrate").body, R"({"status":"none"})");
  std::promise<void> entered, release;
  auto released = release.get_future();
  m_control.on_migrate = [&] {
    entered.set_value();
    released.wait();
  };
  auto put = std::async(std::launch::async, [&] {
    return http_request(m_socket, "PUT", "/migrate", R"({"destination": "unix:/x", "compress": "zstd"})");
  });
  entered.get_future().wait();
  const json during = json::parse(request("GET", "/migrate").body);
  EXPECT_EQ(during["status"], "active");
  EXPECT_EQ(during["destination"], "unix:/x");
  EXPECT_EQ(request("GET", "/").status, 200u);
  EXPECT_EQ(put.wait_for(std::chrono::milliseconds(50)), std::future_status::timeout);
  release.set_value();
  auto reply = put.get();
  ASSERT_TRUE(reply.ok()) << reply.error().message();
  EXPECT_EQ(reply->status, 200u);
  EXPECT_EQ(json::parse(reply->body)["status"], "completed");
  EXPECT_TRUE(m_control.migrated()->compress);
}

TEST_F(ApiServerTest, SnapshotLoadWithMemBackendAndOverrides) {
  EXPECT_EQ(request("PUT", "/snapshot/load", R"({
      "snapshot_path": "/s/state",
      "mem_backend": {"backend_type": "File", "backend_path": "/s/memory"},
      "resume_vm": true,
      "drives": [{"path_on_host": "/clone/rootfs.img", "is_read_only": false}, {"path_on_host": "/ro.img", "is_read_only": true}],
      "network_interfaces": [{"host_dev_name": "tap7", "guest_mac": "52:54:00:00:00:07"}]})")
                .status,
            204u);
  auto loaded = m_control.loaded();
  ASSERT_TRUE(loaded);
  EXPECT_EQ(loaded->snapshot_path, "/s/state");
  EXPECT_EQ(loaded->mem_file_path, "/s/memory");
  EXPECT_TRUE(loaded->resume_vm);
  ASSERT_TRUE(loaded->disks);
  ASSERT_EQ(loaded->disks->size(), 2u);
  EXPECT_EQ((*loaded->disks)[0].path, "/clone/rootfs.img");
  EXPECT_TRUE((*loaded->disks)[1].read_only);
  ASSERT_TRUE(loaded->nets);
  ASSERT_EQ(loaded->nets->size(), 1u);
  EXPECT_EQ((*loaded->nets)[0].tap, "tap7");
  EXPECT_EQ((*loaded->nets)[0].mac, (MacAddress{0x52, 0x54, 0, 0, 0, 7}));
  // Loading made a VM: pre-boot configuration is closed.
  EXPECT_EQ(fault("PUT", "/machine-config", R"({"vcpu_count": 1, "mem_size_mib": 128})"),
            "machine-config: the VM is already running; pre-boot configuration is closed");
}

TEST_F(ApiServerTest, SnapshotLoadAcceptsTheOlderMemFilePath) {
  EXPECT_EQ(request("PUT", "/snapshot/load", R"({"snapshot_path": "/s/state", "mem_file_path": "/s/memory"})")
                .status,
            204u);
  auto loaded = m_control.loaded();
  ASSERT_TRUE(loaded);
  EXPECT_EQ(loaded->mem_file_path, "/s/memory");
  EXPECT_FALSE(loaded->resume_vm);
  EXPECT_FALSE(loaded->disks);
  EXPECT_FALSE(loaded->nets);
}

TEST_F(ApiServerTest, SnapshotLoadErrors) {
  EXPECT_EQ(
      fault(
          "PUT", "/snapshot/load",
          R"({"snapshot_path": "s", "mem_backend": {"backend_type": "Uffd", "backend_path": "/uffd.sock"}})"),
      R"(snapshot/load: mem_backend.backend_type: "Uffd" is not supported (only "File"))");
  EXPECT_EQ(
      fault("PUT", "/snapshot/load", R"({"snapshot_path": "s", "mem_backend": {"backend_type": "File"}})"),
      "snapshot/load: mem_backend.backend_path: is required");
  EXPECT_EQ(fault("PUT", "/snapshot/load", R"({"snapshot_path": "s"})"),
            "snapshot/load: mem_backend: is required");
  EXPECT_EQ(
      fault(
          "PUT", "/snapshot/load",
          R"({"snapshot_path": "s", "mem_file_path": "m", "mem_backend": {"backend_type": "File", "backend_path": "m"}})"),
      "snapshot/load: give mem_backend or mem_file_path, not both");
  EXPECT_EQ(fault("PUT", "/snapshot/load",
                  R"({"snapshot_path": "s", "mem_file_path": "m", "drives": [{"path": "x"}]})"),
            "snapshot/load: unknown field 'drives[0].path' (known: drives[0].path_on_host, "
            "drives[0].is_read_only)");
  EXPECT_EQ(
      fault(
          "PUT", "/snapshot/load",
          R"({"snapshot_path": "s", "mem_file_path": "m", "network_interfaces": [{"host_dev_name": "t", "guest_mac": "01:00:00:00:00:00"}]})"),
      "snapshot/load: network_interfaces[0].guest_mac: '01:00:00:00:00:00' is a multicast MAC address");
  EXPECT_EQ(fault("PUT", "/snapshot/load", R"({"snapshot_path": "s", "mem_file_path": "m", "drives": {}})"),
            "snapshot/load: drives: expected an array, got an object");
  EXPECT_TRUE(m_control.calls().empty());
}

TEST_F(ApiServerTest, Actions) {
  // No VM yet: 400 with the vmm's reason.
  const auto none = request("PUT", "/actions", R"({"action_type": "SendCtrlAltDel"})");
  EXPECT_EQ(none.status, 400u);
  EXPECT_EQ(json::parse(none.body), (json{{"fault_message", "SendCtrlAltDel: there is no VM yet"}}));
  m_control.set_state(VmState::kRunning);
  const auto sent = request("PUT", "/actions", R"({"action_type": "SendCtrlAltDel"})");
  EXPECT_EQ(sent.status, 204u);
  EXPECT_EQ(sent.body, "");
  EXPECT_EQ(request("PUT", "/actions", R"({"action_type": "FlushMetrics"})").status, 204u);
  EXPECT_EQ(m_control.calls(),
            (std::vector<std::string>{"send_ctrl_alt_del", "send_ctrl_alt_del"}));
  EXPECT_EQ(
      fault("PUT", "/actions", R"({"action_type": "Reboot"})"),
      R"(actions: action_type: expected "InstanceStart", "SendCtrlAltDel" or "FlushMetrics", got "Reboot")");
  EXPECT_EQ(fault("PUT", "/actions", R"({"action_type": "SendCtrlAltDel", "keys": 3})"),
            "actions: unknown field 'keys' (known: action_type)");
  // What a riscv64 doppel answers (VmmService through the board).
  m_control.fail_next("SendCtrlAltDel: not supported on riscv64 (there is no keyboard controller)");
  EXPECT_EQ(fault("PUT", "/actions", R"({"action_type": "SendCtrlAltDel"})"),
            "SendCtrlAltDel: not supported on riscv64 (there is no keyboard controller)");
  // A guest that does not read its keyboard.
  m_control.fail_next(
      "SendCtrlAltDel: i8042: the keyboard buffer has 10 of 15 bytes taken: the guest is not "
      "reading its keyboard");
  EXPECT_TRUE(fault("PUT", "/actions", R"({"action_type": "SendCtrlAltDel"})").starts_with(
      "SendCtrlAltDel: i8042: the keyboard buffer"));
}

// ---- pre-boot configuration ----

TEST_F(ApiServerTest, PreBootSequenceHandsTheConfigToStart) {
  const std::string kernel = make_file("bzImage"), initrd = make_file("initrd"),
                    rootfs = make_file("rootfs.img"), data = make_file("data.img");
  EXPECT_EQ(
      request("PUT", "/boot-source",
              json({{"kernel_image_path", kernel}, {"initrd_path", initrd}, {"boot_args", "console=ttyS0"}})
                  .dump())
          .status,
      204u);
  EXPECT_EQ(
      request("PUT", "/machine-config",
              R"({"vcpu_count": 2, "mem_size_mib": 512, "smt": false, "arch": "x86_64", "engine": "kvm"})")
          .status,
      204u);
  // data first, then the root device; a second PUT of data replaces it in place.
  EXPECT_EQ(
      request("PUT", "/drives/data", json({{"drive_id", "data"}, {"path_on_host", data}}).dump()).status,
      204u);
  EXPECT_EQ(request("PUT", "/drives/rootfs",
                    json({{"drive_id", "rootfs"},
                          {"path_on_host", rootfs},
                          {"is_root_device", true},
                          {"is_read_only", true}})
                        .dump())
                .status,
            204u);
  EXPECT_EQ(request("PUT", "/drives/data",
                    json({{"drive_id", "data"}, {"path_on_host", data}, {"is_read_only", true}}).dump())
                .status,
            204u);
  EXPECT_EQ(request("PUT", "/network-interfaces/eth0",
                    R"({"iface_id": "eth0", "host_dev_name": "tap0", "guest_mac": "52:54:00:12:34:56"})")
                .status,
            204u);
  EXPECT_EQ(
      request("PUT", "/network-interfaces/eth1", R"({"iface_id": "eth1", "host_dev_name": "tap1"})").status,
      204u);
  EXPECT_EQ(
      request("PUT", "/network-interfaces/eth0", R"({"iface_id": "eth0", "host_dev_name": "tap2"})").status,
      204u);
  EXPECT_TRUE(m_control.calls().empty());

  EXPECT_EQ(request("PUT", "/actions", R"({"action_type": "InstanceStart"})").status, 204u);
  EXPECT_EQ(m_control.calls(), (std::vector<std::string>{"start"}));
  const auto config = m_control.started();
  ASSERT_TRUE(config);
  EXPECT_EQ(config->arch, Arch::kX86_64);
  EXPECT_EQ(config->engine, EngineKind::kKvm);
  EXPECT_EQ(config->cpus, 2u);
  EXPECT_EQ(config->memory, 512ull << 20);
  EXPECT_EQ(config->kernel, kernel);
  EXPECT_EQ(config->initrd, initrd);
  EXPECT_EQ(config->cmdline, "console=ttyS0 root=/dev/vda ro");
  ASSERT_EQ(config->disks.size(), 2u);
  EXPECT_EQ(config->disks[0].path, rootfs);  // the root device is /dev/vda
  EXPECT_TRUE(config->disks[0].read_only);
  EXPECT_EQ(config->disks[1].path, data);
  EXPECT_TRUE(config->disks[1].read_only);
  ASSERT_EQ(config->nets.size(), 2u);
  EXPECT_EQ(config->nets[0].tap, "tap2");  // eth0, replaced, kept its place
  EXPECT_FALSE(config->nets[0].mac);
  EXPECT_EQ(config->nets[1].tap, "tap1");

  // Started: pre-boot configuration is closed, and GETs show the VM's.
  EXPECT_EQ(fault("PUT", "/boot-source", json({{"kernel_image_path", kernel}}).dump()),
            "boot-source: the VM is already running; pre-boot configuration is closed");
  EXPECT_EQ(fault("PUT", "/drives/data", json({{"drive_id", "data"}, {"path_on_host", data}}).dump()),
            "drives/data: the VM is already running; pre-boot configuration is closed");
  EXPECT_EQ(fault("PUT", "/actions", R"({"action_type": "InstanceStart"})"),
            "actions: InstanceStart: the VM is already running; pre-boot configuration is closed");
  EXPECT_EQ(json::parse(request("GET", "/machine-config").body)["mem_size_mib"], 512);
  EXPECT_EQ(json::parse(request("GET", "/").body)["state"], "Running");
}

TEST_F(ApiServerTest, InstanceStartNeedsABootSourceAndRiscvFirmware) {
  EXPECT_EQ(fault("PUT", "/actions", R"({"action_type": "InstanceStart"})"),
            "actions: InstanceStart: no kernel: PUT /boot-source first");
  EXPECT_EQ(request("PUT", "/boot-source", json({{"kernel_image_path", make_file("Image")}}).dump()).status,
            204u);
  EXPECT_EQ(fault("PUT", "/actions", R"({"action_type": "InstanceStart"})"),
            "actions: InstanceStart: riscv64 needs firmware_path (OpenSBI fw_dynamic.bin, or none) in /boot-source");
  EXPECT_EQ(request("PUT", "/boot-source",
                    json({{"kernel_image_path", make_file("Image")},
                          {"firmware_path", make_file("fw_dynamic.bin")}})
                        .dump())
                .status,
            204u);
  EXPECT_EQ(request("PUT", "/actions", R"({"action_type": "InstanceStart"})").status, 204u);
  EXPECT_EQ(m_control.started()->cmdline, "console=ttyS0 earlycon panic=-1");  // `doppel run`'s default
}

TEST_F(ApiServerTest, BootSourceFirmwareNoneAndBootFromDisk) {
  // firmware_path "none": the kernel itself runs in M-mode, as `--firmware none`.
  EXPECT_EQ(request("PUT", "/boot-source",
                    json({{"kernel_image_path", make_file("prog.elf")}, {"firmware_path", "none"}})
                        .dump())
                .status,
            204u);
  EXPECT_EQ(json::parse(request("GET", "/vm/config").body)["boot"]["firmware"], "none");
  // boot_from "disk": no kernel needed, but a drive and real firmware are.
  EXPECT_EQ(fault("PUT", "/boot-source", R"({"boot_from": "floppy"})"),
            "boot-source: boot_from: unknown boot source 'floppy' (kernel, disk)");
  EXPECT_EQ(fault("PUT", "/boot-source", R"({"boot_from": "kernel"})"),
            "boot-source: kernel_image_path: is required");
  EXPECT_EQ(request("PUT", "/boot-source",
                    json({{"boot_from", "disk"}, {"firmware_path", "none"}}).dump())
                .status,
            204u);
  EXPECT_EQ(fault("PUT", "/actions", R"({"action_type": "InstanceStart"})"),
            "actions: InstanceStart: --boot disk: no disk to boot from; give --disk PATH");
  EXPECT_EQ(request("PUT", "/drives/root",
                    json({{"drive_id", "root"}, {"path_on_host", make_file("disk.img")},
                          {"is_root_device", true}, {"is_read_only", false}})
                        .dump())
                .status,
            204u);
  EXPECT_EQ(fault("PUT", "/actions", R"({"action_type": "InstanceStart"})"),
            "actions: InstanceStart: --boot disk: U-Boot runs in S-mode and needs firmware "
            "(OpenSBI), not 'none'");
  EXPECT_EQ(request("PUT", "/boot-source",
                    json({{"boot_from", "disk"}, {"firmware_path", make_file("fw_dynamic.bin")}})
                        .dump())
                .status,
            204u);
  const auto r = request("PUT", "/actions", R"({"action_type": "InstanceStart"})");
  if (::access("/usr/lib/u-boot/qemu-riscv64_smode/u-boot.bin", R_OK) != 0) {
    EXPECT_EQ(r.status, 400u) << "without u-boot-qemu the start names U-Boot's file";
    return;
  }
  EXPECT_EQ(r.status, 204u) << r.body;
  EXPECT_EQ(m_control.started()->boot_from, BootFrom::kDisk);
  EXPECT_EQ(m_control.started()->kernel, "/usr/lib/u-boot/qemu-riscv64_smode/u-boot.bin");
}

TEST_F(ApiServerTest, PreBootFieldErrors) {
  EXPECT_EQ(fault("PUT", "/machine-config", R"({"vcpu_count": "two", "mem_size_mib": 128})"),
            R"(machine-config: vcpu_count: expected an integer, got "two")");
  EXPECT_EQ(fault("PUT", "/machine-config", R"({"vcpu_count": 9, "mem_size_mib": 128})"),
            "machine-config: vcpu_count: expected an integer from 1 to 8, got 9");
  EXPECT_EQ(fault("PUT", "/machine-config", R"({"vcpu_count": -1, "mem_size_mib": 128})"),
            "machine-config: vcpu_count: expected an integer from 1 to 8, got -1");
  EXPECT_EQ(fault("PUT", "/machine-config", R"({"vcpu_count": 1.5, "mem_size_mib": 128})"),
            "machine-config: vcpu_count: expected an integer, got 1.5");
  EXPECT_EQ(fault("PUT", "/machine-config", R"({"vcpu_count": 1})"),
            "machine-config: mem_size_mib: is required");
  EXPECT_EQ(fault("PUT", "/machine-config", R"({"vcpu_count": 1, "mem_size_mib": 128, "smt": true})"),
            "machine-config: smt: doppel has no SMT; only false is accepted");
  EXPECT_EQ(fault("PUT", "/machine-config", R"({"vcpu_count": 1, "mem_size_mib": 128, "engine": "kvm"})"),
            "machine-config: engine: kvm runs x86_64 guests; riscv64 runs on emu");
  EXPECT_EQ(fault("PUT", "/machine-config", R"({"vcpu_count": 1, "mem_size_mib": 128, "arch": "arm"})"),
            "machine-config: arch: unknown architecture 'arm' (riscv64, x86_64)");
  EXPECT_EQ(
      fault("PUT", "/machine-config", R"({"vcpu_count": 1, "mem_size_mib": 128, "cpu_template": "T2"})"),
      "machine-config: unknown field 'cpu_template' (known: vcpu_count, mem_size_mib, smt, arch, engine)");
  EXPECT_EQ(fault("PUT", "/boot-source", R"({"kernel_image_path": "/nonexistent/vmlinux"})"),
            "boot-source: kernel_image_path: /nonexistent/vmlinux: No such file or directory");
  EXPECT_EQ(fault("PUT", "/boot-source", json({{"kernel_image_path", m_dir}}).dump()),
            "boot-source: kernel_image_path: " + m_dir + ": Is a directory");
  EXPECT_EQ(fault("PUT", "/boot-source", R"({"initrd_path": "/x"})"),
            "boot-source: kernel_image_path: is required");
  EXPECT_EQ(fault("PUT", "/drives/root", R"({"drive_id": "rootfs", "path_on_host": "/x"})"),
            "drives/root: drive_id: 'rootfs' differs from the path's 'root'");
  EXPECT_EQ(fault("PUT", "/drives/a-b", R"({"drive_id": "a-b", "path_on_host": "/x"})"),
            "drives/a-b: a drive id must be 1 to 64 letters, digits or '_'");
  EXPECT_EQ(fault("PUT", "/drives", R"({})"), "drives: the path needs an id: PUT /drives/{drive_id}");
  const std::string disk = make_file("disk.img");
  EXPECT_EQ(request("PUT", "/drives/a",
                    json({{"drive_id", "a"}, {"path_on_host", disk}, {"is_root_device", true}}).dump())
                .status,
            204u);
  EXPECT_EQ(fault("PUT", "/drives/b",
                  json({{"drive_id", "b"}, {"path_on_host", disk}, {"is_root_device", true}}).dump()),
            "drives/b: is_root_device: drive 'a' is the root device already");
  EXPECT_EQ(fault("PUT", "/network-interfaces/eth0",
                  R"({"iface_id": "eth0", "host_dev_name": "a-very-long-tap-name"})"),
            "network-interfaces/eth0: host_dev_name: 'a-very-long-tap-name' is longer than 15 characters");
  EXPECT_EQ(fault("PUT", "/network-interfaces/eth0",
                  R"({"iface_id": "eth0", "host_dev_name": "tap0", "guest_mac": "zz"})"),
            "network-interfaces/eth0: guest_mac: 'zz' is not a MAC address (aa:bb:cc:dd:ee:ff)");
  EXPECT_TRUE(m_control.calls().empty());
  expect_still_serving();
}

// ---- request errors ----

TEST_F(ApiServerTest, MalformedJsonUnknownFieldWrongTypeMissingField) {
  const std::string malformed = fault("PUT", "/machine-config", R"({"vcpu_count": 1,)");
  EXPECT_TRUE(malformed.starts_with("machine-config: malformed JSON: parse error at line 1")) << malformed;
  EXPECT_EQ(fault("PUT", "/snapshot/create", R"({"snapshot_path": "a", "mem_file_path": "b", "foo": 1})"),
            "snapshot/create: unknown field 'foo' (known: snapshot_type, snapshot_path, mem_file_path)");
  EXPECT_EQ(fault("PUT", "/snapshot/create", R"({"snapshot_path": 7, "mem_file_path": "b"})"),
            "snapshot/create: snapshot_path: expected a string, got 7");
  EXPECT_EQ(fault("PUT", "/snapshot/create", R"({"mem_file_path": "b"})"),
            "snapshot/create: snapshot_path: is required");
  EXPECT_EQ(fault("PUT", "/snapshot/create", R"({"snapshot_path": "", "mem_file_path": "b"})"),
            "snapshot/create: snapshot_path: is empty");
  EXPECT_EQ(fault("PUT", "/snapshot/create", "[1, 2]"),
            "snapshot/create: the body must be a JSON object, got an array");
  EXPECT_EQ(fault("PUT", "/actions"), "actions: the request needs a JSON body");
  EXPECT_TRUE(m_control.calls().empty());
  expect_still_serving();
}

TEST_F(ApiServerTest, DeeplyNestedJsonIsRefusedNotRecursedInto) {
  const std::string nested = std::string(20000, '[') + std::string(20000, ']');
  EXPECT_EQ(fault("PUT", "/actions", nested), "actions: the body must be a JSON object, got an array");
  EXPECT_EQ(fault("PUT", "/actions", R"({"action_type": )" + nested + "}"),
            "actions: action_type: expected a string, got an array");
  expect_still_serving();
}

TEST_F(ApiServerTest, UnknownPathIs404) {
  const HttpReply reply = request("GET", "/balloon");
  EXPECT_EQ(reply.status, 404u);
  EXPECT_EQ(json::parse(reply.body)["fault_message"], "no such resource: /balloon");
  EXPECT_EQ(request("PUT", "/drives/a/b", "{}").status, 404u);
  EXPECT_EQ(request("PUT", "/drivesx", "{}").status, 404u);
  // Invalid UTF-8 in the path still makes valid JSON.
  const std::string response = raw("GET /\xff\xfe HTTP/1.1\r\nConnection: close\r\n\r\n");
  EXPECT_TRUE(response.starts_with("HTTP/1.1 404") || response.starts_with("HTTP/1.1 400")) << response;
  expect_still_serving();
}

TEST_F(ApiServerTest, WrongMethodIs405WithAllow) {
  const std::string response = raw("DELETE /machine-config HTTP/1.1\r\nConnection: close\r\n\r\n");
  EXPECT_TRUE(response.starts_with("HTTP/1.1 405 Method Not Allowed\r\n")) << response;
  EXPECT_NE(response.find("Allow: GET, PUT\r\n"), std::string::npos) << response;
  EXPECT_EQ(request("GET", "/actions").status, 405u);
  EXPECT_EQ(request("PUT", "/", "{}").status, 405u);
  EXPECT_EQ(request("GET", "/drives/x").status, 405u);
  expect_still_serving();
}

TEST_F(ApiServerTest, BodyOverTheLimitIsRefusedWithoutBeingRead) {
  // Only the header is sent: the server must answer (and close) without waiting for the body.
  UniqueFd fd = connect_raw(m_socket);
  send_all(fd.get(), "PUT /machine-config HTTP/1.1\r\nContent-Length: 51201\r\n\r\n");
  const std::string response = read_to_eof(fd.get());
  EXPECT_TRUE(response.starts_with("HTTP/1.1 400 Bad Request\r\n")) << response;
  EXPECT_NE(response.find("request body is larger than the limit of 51200 bytes"), std::string::npos);
  // Chunked, growing past the limit.
  std::string chunked = "PUT /machine-config HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
  for (int i = 0; i < 60; ++i) chunked += "400\r\n" + std::string(1024, ' ') + "\r\n";
  EXPECT_TRUE(raw(chunked).starts_with("HTTP/1.1 400 Bad Request\r\n"));
  // Exactly the limit is accepted.
  std::string body = R"({"vcpu_count": 3, "mem_size_mib": 128})";
  body.resize(kMaxRequestBodyBytes, ' ');
  EXPECT_EQ(request("PUT", "/machine-config", body).status, 204u);
  EXPECT_EQ(json::parse(request("GET", "/machine-config").body)["vcpu_count"], 3);
}

TEST_F(ApiServerTest, GarbageBytesGet400AndTheConnectionClosed) {
  static constexpr char kTlsHello[] = "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 hello\r\n\r\n";
  const std::string response = raw(std::string(kTlsHello, sizeof kTlsHello - 1));  // NULs included
  EXPECT_TRUE(response.starts_with("HTTP/1.1 400 Bad Request\r\n")) << response;
  EXPECT_NE(response.find("malformed HTTP request"), std::string::npos);
  EXPECT_TRUE(raw("GET / HTTP/1.1\r\nContent-Length: 12x\r\n\r\n").starts_with("HTTP/1.1 400"));
  EXPECT_TRUE(raw(std::string(9000, 'A')).starts_with("HTTP/1.1 400"));  // a header over 8 KiB
  EXPECT_EQ(raw("GET / HTTP/1.1\r\nHost: x"), "");                       // EOF mid-request: nobody to answer
  expect_still_serving();
}

TEST_F(ApiServerTest, RequestSplitAcrossManyWrites) {
  m_control.set_state(VmState::kRunning);
  const std::string body = R"({"state": "Paused"})";
  const std::string request_text =
      "PATCH /vm HTTP/1.1\r\nHost: localhost\r\nContent-Length: " + std::to_string(body.size()) +
      "\r\nConnection: close\r\n\r\n" + body;
  UniqueFd fd = connect_raw(m_socket);
  for (char c : request_text) {
    send_all(fd.get(), std::string_view(&c, 1));
    ::usleep(200);
  }
  const std::string response = read_to_eof(fd.get());
  EXPECT_TRUE(response.starts_with("HTTP/1.1 204 No Content\r\n")) << response;
  EXPECT_EQ(m_control.calls(), (std::vector<std::string>{"pause"}));
}

TEST_F(ApiServerTest, KeepAliveAndPipelining) {
  const std::string response =
      raw("GET /version HTTP/1.1\r\n\r\n"
          "PUT /actions HTTP/1.1\r\nContent-Length: 31\r\n\r\n{\"action_type\": \"FlushMetrics\"}"
          "GET / HTTP/1.1\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(count(response, "HTTP/1.1 200 OK\r\n"), 2) << response;
  EXPECT_EQ(count(response, "HTTP/1.1 204 No Content\r\n"), 1) << response;
  EXPECT_LT(response.find("vmm_version"), response.find("204 No Content"));
  // HTTP/1.0 closes after one answer unless asked to keep alive.
  EXPECT_TRUE(raw("GET /version HTTP/1.0\r\n\r\n").starts_with("HTTP/1.0 200 OK\r\n"));
}

TEST_F(ApiServerTest, ExpectContinueIsAnswered) {
  UniqueFd fd = connect_raw(m_socket);
  send_all(
      fd.get(),
      "PUT /actions HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 31\r\nConnection: close\r\n\r\n");
  char buffer[64] = {};
  ASSERT_GT(::recv(fd.get(), buffer, sizeof buffer - 1, 0), 0);
  EXPECT_EQ(std::string(buffer), "HTTP/1.1 100 Continue\r\n\r\n");
  send_all(fd.get(), "{\"action_type\": \"FlushMetrics\"}");
  EXPECT_TRUE(read_to_eof(fd.get()).starts_with("HTTP/1.1 204"));
}

// ---- the socket ----

TEST_F(ApiServerTest, StopRemovesTheSocketFile) {
  EXPECT_TRUE(std::filesystem::exists(m_socket));
  m_server->stop();
  EXPECT_FALSE(std::filesystem::exists(m_socket));
  EXPECT_FALSE(http_request(m_socket, "GET", "/").ok());
  m_server->stop();  // idempotent
}

TEST_F(ApiServerTest, AStaleSocketIsReplacedALiveOneAndOtherFilesAreNot) {
  // Live: this fixture's server.
  FakeVmControl other;
  auto live = ApiServer::create(m_socket, other);
  ASSERT_FALSE(live.ok());
  EXPECT_EQ(live.error().message(), "api socket " + m_socket + ": another process is serving on it");

  // Stale: bound by a socket that has since been closed.
  const std::string stale = m_dir + "/stale.sock";
  {
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM, 0));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, stale.c_str(), sizeof addr.sun_path - 1);
    ASSERT_EQ(::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  }
  auto replaced = ApiServer::create(stale, other);
  ASSERT_TRUE(replaced.ok()) << replaced.error().message();
  EXPECT_EQ(http_request(stale, "GET", "/")->status, 200u);

  const std::string file = make_file("not-a-socket");
  auto refused = ApiServer::create(file, other);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().message(), "api socket " + file + ": exists and is not a socket");
}

// ---- HttpConnection without a socket ----

TEST(HttpConnectionTest, AnswersEachRequestOnceComplete) {
  int handled = 0;
  HttpConnection connection([&](const HttpRequest& request) {
    ++handled;
    EXPECT_EQ(request.method, "PUT");
    EXPECT_EQ(request.target, "/x?y");
    EXPECT_EQ(request.body, "{}");
    return HttpResponse{204, "", "", {}};
  });
  std::string out;
  EXPECT_TRUE(connection.feed("PUT /x?y HTTP/1.1\r\nContent-", out));
  EXPECT_TRUE(connection.feed("Length: 2\r\n\r\n{", out));
  EXPECT_EQ(handled, 0);
  EXPECT_TRUE(out.empty());
  EXPECT_TRUE(connection.feed("}", out));
  EXPECT_EQ(handled, 1);
  EXPECT_EQ(out, "HTTP/1.1 204 No Content\r\nServer: doppel\r\n\r\n");
  out.clear();
  EXPECT_FALSE(connection.feed("BAD\r\n\r\n", out));
  EXPECT_TRUE(out.starts_with("HTTP/1.1 400 Bad Request\r\n"));
  EXPECT_FALSE(connection.feed("GET / HTTP/1.1\r\n\r\n", out));  // closed: ignored
  EXPECT_EQ(handled, 1);
}

TEST(HttpConnectionTest, ADeferredAnswerKeepsThePipelinedOnesInOrder) {
  std::vector<std::string> handled;
  HttpConnection connection([&](const HttpRequest& request) {
    handled.push_back(request.target);
    HttpResponse response{204, "", "", {}};
    if (request.target == "/slow") response.deferred = [] { return HttpResponse{200, "{}", "", {}}; };
    return response;
  });
  std::string out;
  EXPECT_TRUE(connection.feed("GET /a HTTP/1.1\r\n\r\nPUT /slow HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n", out));
  EXPECT_EQ(handled, (std::vector<std::string>{"/a", "/slow"}));  // /b waits for /slow's answer
  EXPECT_EQ(count(out, "HTTP/1.1 204"), 1);
  auto job = connection.take_deferred();
  ASSERT_TRUE(job);
  EXPECT_FALSE(connection.take_deferred());
  EXPECT_TRUE(connection.complete(job(), out));
  EXPECT_EQ(handled, (std::vector<std::string>{"/a", "/slow", "/b"}));
  EXPECT_LT(out.find("HTTP/1.1 200"), out.rfind("HTTP/1.1 204"));
  EXPECT_EQ(count(out, "HTTP/1.1 204"), 2);
}

TEST(MigrationProgress, TheLineShowsTheRoundTheBarAndTheRates) {
  const json status = {{"status", "active"},  {"rounds", 2},           {"round_pages", 200},
                       {"round_pages_sent", 50}, {"bytes_sent", 3 << 20}, {"dirty_pages_per_s", 1234.4},
                       {"expected_downtime_ms", 4.25}};
  EXPECT_EQ(migration_progress_line(status, 8),
            "[##      ] round 2: 50/200 pages (25%), 3.0 MiB sent, dirtied 1234 pages/s, expected "
            "downtime 4.2 ms");
  EXPECT_EQ(migration_progress_line({{"rounds", 1}, {"round_pages", 0}}, 0), "round 1: 0/0 pages (0%), 0.0 MiB sent");
}

// ---- doppel ctl ----

TEST_F(ApiServerTest, CtlCommands) {
  m_control.set_state(VmState::kRunning);
  CtlOptions options;
  options.socket_path = m_socket;
  options.command = CtlOptions::Command::kPause;
  EXPECT_EQ(run_ctl(options).value(), "");
  options.command = CtlOptions::Command::kInfo;
  EXPECT_EQ(json::parse(run_ctl(options).value())["state"], "Paused");
  EXPECT_NE(run_ctl(options).value().find("\n  \"state\": \"Paused\""), std::string::npos);  // pretty
  options.command = CtlOptions::Command::kMetrics;
  EXPECT_EQ(json::parse(run_ctl(options).value()), json({{"vcpu_exits", 42}}));

  options.command = CtlOptions::Command::kSnapshot;
  options.snapshot_dir = m_dir + "/snap/1";
  options.diff = true;
  EXPECT_TRUE(run_ctl(options).ok());
  EXPECT_TRUE(std::filesystem::is_directory(options.snapshot_dir));
  const auto created = m_control.created();
  ASSERT_TRUE(created);
  EXPECT_EQ(created->type, SnapshotType::kDiff);
  EXPECT_EQ(created->snapshot_path, options.snapshot_dir + "/state");
  EXPECT_EQ(created->mem_file_path, options.snapshot_dir + "/memory.diff");

  options.command = CtlOptions::Command::kResume;
  EXPECT_TRUE(run_ctl(options).ok());
  options.command = CtlOptions::Command::kResume;
  auto refused = run_ctl(options);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().message(), "the VM is not paused");

  options.socket_path = m_dir + "/nobody.sock";
  auto unreachable = run_ctl(options);
  ASSERT_FALSE(unreachable.ok());
  EXPECT_EQ(unreachable.error().message(),
            "api socket " + m_dir + "/nobody.sock: connect: No such file or directory");
}

// Rate limiters: PUT /drives and /network-interfaces take Firecracker's rate_limiter
// objects; PATCH on a running VM changes only the buckets it names.
TEST_F(ApiServerTest, RateLimitersArePutAndPatched) {
  const std::string data = m_dir + "/data.img";
  std::ofstream(data) << "x";
  EXPECT_EQ(request("PUT", "/drives/data",
                    R"({"drive_id": "data", "path_on_host": ")" + data +
                        R"(", "rate_limiter": {"bandwidth": {"size": 2000000, "refill_time": 200}}})")
                .status,
            204u);
  EXPECT_EQ(request("PUT", "/network-interfaces/eth0",
                    R"({"iface_id": "eth0", "host_dev_name": "tap0",
                        "tx_rate_limiter": {"ops": {"size": 10, "refill_time": 100, "one_time_burst": 5}}})")
                .status,
            204u);
  EXPECT_EQ(fault("PUT", "/drives/data",
                  R"({"drive_id": "data", "path_on_host": ")" + data +
                      R"(", "rate_limiter": {"bandwidth": {"size": "big", "refill_time": 200}}})"),
            "drives/data: rate_limiter.bandwidth.size: must be a non-negative integer, got string");
  // Before boot there is nothing to patch.
  EXPECT_EQ(fault("PATCH", "/drives/data", R"({"drive_id": "data", "rate_limiter": {}})"),
            "drives/data: no VM is running");
  m_control.set_state(VmState::kRunning);  // as if started
  EXPECT_EQ(request("PATCH", "/drives/data",
                    R"({"drive_id": "data", "rate_limiter": {"ops": {"size": 0, "refill_time": 0}}})")
                .status,
            204u);
  auto update = m_control.rate_update();
  ASSERT_TRUE(update);
  EXPECT_EQ(update->kind, RateLimiterUpdate::Kind::kDisk);
  EXPECT_EQ(update->index, 0u);
  EXPECT_FALSE(update->disk.bandwidth);  // not named: unchanged
  ASSERT_TRUE(update->disk.ops);
  EXPECT_FALSE(update->disk.ops->enabled());  // size 0: no limit
  EXPECT_EQ(request("PATCH", "/network-interfaces/eth0",
                    R"({"iface_id": "eth0", "rx_rate_limiter": {"bandwidth": {"size": 1000, "refill_time": 10}}})")
                .status,
            204u);
  update = m_control.rate_update();
  ASSERT_TRUE(update);
  EXPECT_EQ(update->kind, RateLimiterUpdate::Kind::kNet);
  ASSERT_TRUE(update->rx.bandwidth);
  EXPECT_EQ(*update->rx.bandwidth, (TokenBucketConfig{1000, 10, 0}));
  EXPECT_FALSE(update->tx.bandwidth || update->tx.ops);
  EXPECT_EQ(fault("PATCH", "/drives/other", R"({"drive_id": "other"})"), "drives/other: no such drive");
  EXPECT_EQ(fault("PATCH", "/drives/data", R"({"drive_id": "data", "path_on_host": "/x"})"),
            "drives/data: unknown field 'path_on_host' (known: drive_id, rate_limiter)");
  expect_still_serving();
}

}  // namespace
}  // namespace doppel
