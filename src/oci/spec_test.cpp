#include "oci/spec.h"

#include <sys/mount.h>
#include <sys/resource.h>

#include <gtest/gtest.h>

namespace doppel::oci {
namespace {

constexpr const char* kMinimal = R"({
  "ociVersion": "1.0.2",
  "process": {"args": ["/bin/sh"], "cwd": "/", "user": {"uid": 1000, "gid": 100, "additionalGids": [5]},
              "capabilities": {"bounding": ["CAP_KILL", "CAP_SYS_ADMIN", "CAP_NOT_A_CAP"]},
              "rlimits": [{"type": "RLIMIT_NOFILE", "soft": 1024, "hard": 4096}]},
  "root": {"path": "rootfs", "readonly": true},
  "hostname": "box",
  "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"},
             {"destination": "/data", "type": "bind", "source": "/srv", "options": ["rbind", "ro", "rprivate"]}],
  "linux": {"namespaces": [{"type": "mount"}, {"type": "uts"}, {"type": "network", "path": "/proc/1/ns/net"}],
            "resources": {"memory": {"limit": 1048576}, "pids": {"limit": 10},
                          "devices": [{"allow": false, "access": "rwm"}, {"allow": true, "type": "c", "major": 1, "minor": 3}]},
            "cgroupsPath": "/a/b", "sysctl": {"net.ipv4.ip_forward": "1"}}
})";

TEST(OciSpec, ParsesWhatTheSetUpUses) {
  auto spec = parse_spec(kMinimal);
  ASSERT_TRUE(spec.ok()) << spec.error().message();
  const Spec& s = spec.value();
  ASSERT_TRUE(s.process);
  EXPECT_EQ(s.process->args, std::vector<std::string>{"/bin/sh"});
  EXPECT_EQ(s.process->user.uid, 1000u);
  EXPECT_EQ(s.process->user.additional_gids, std::vector<uint32_t>{5});
  // An unknown capability is skipped (runc, crun), a known one kept by number.
  EXPECT_EQ(s.process->capabilities.bounding, (std::vector<int>{5, 21}));
  ASSERT_EQ(s.process->rlimits.size(), 1u);
  EXPECT_EQ(s.process->rlimits[0].resource, RLIMIT_NOFILE);
  EXPECT_EQ(s.process->rlimits[0].hard, 4096u);
  EXPECT_TRUE(s.root_readonly);
  ASSERT_EQ(s.mounts.size(), 2u);
  ASSERT_NE(s.find_namespace("network"), nullptr);
  EXPECT_EQ(s.find_namespace("network")->path, "/proc/1/ns/net");
  EXPECT_EQ(s.find_namespace("pid"), nullptr);
  EXPECT_EQ(*s.linux.resources.memory_limit, 1048576);
  ASSERT_EQ(s.linux.resources.devices.size(), 2u);
  EXPECT_FALSE(s.linux.resources.devices[0].allow);
  EXPECT_EQ(s.linux.resources.devices[0].type, 'a');
  EXPECT_EQ(s.linux.resources.devices[1].major, 1);
  EXPECT_EQ(s.linux.cgroups_path, "/a/b");
}

TEST(OciSpec, MountOptionsSplitIntoFlagsPropagationAndData) {
  auto o = parse_mount_options({"rbind", "ro", "nosuid", "rprivate", "mode=755", "size=64k"});
  ASSERT_TRUE(o.ok());
  EXPECT_TRUE(o.value().bind);
  EXPECT_TRUE(o.value().recursive);
  EXPECT_EQ(o.value().flags, static_cast<unsigned long>(MS_RDONLY | MS_NOSUID));
  ASSERT_EQ(o.value().propagation.size(), 1u);
  EXPECT_EQ(o.value().propagation[0], static_cast<unsigned long>(MS_PRIVATE | MS_REC));
  EXPECT_EQ(o.value().data, "mode=755,size=64k");
  auto rw = parse_mount_options({"ro", "rw"});
  ASSERT_TRUE(rw.ok());
  EXPECT_EQ(rw.value().flags & MS_RDONLY, 0u);
}

// Each bad config names the field and the reason.
struct BadCase {
  const char* json;
  const char* message;
};

TEST(OciSpec, RefusesMalformedConfigsNamingTheField) {
  const BadCase cases[] = {
      {"[]", "config.json: expected an object"},
      {"{", "not valid JSON"},
      {R"({"process": {"args": ["x"]}})", "root: missing"},
      {R"({"root": {"path": "r"}, "process": {"args": "sh"}})", "process.args: expected an array of strings"},
      {R"({"root": {"path": "r"}, "process": {"args": []}})", "process.args: must name the program"},
      {R"({"root": {"path": "r"}, "process": {"args": ["x"], "cwd": "rel"}})", "process.cwd: 'rel' is not an absolute path"},
      {R"({"root": {"path": "r"}, "process": {"args": ["x"], "user": {"uid": -1}}})", "process.user.uid: must not be negative"},
      {R"({"root": {"path": "r"}, "process": {"args": ["x"], "rlimits": [{"type": "RLIMIT_NOPE"}]}})",
       "process.rlimits[0].type: unknown rlimit 'RLIMIT_NOPE'"},
      {R"({"root": {"path": "r"}, "process": {"args": ["x"], "rlimits": [{"type": "RLIMIT_CORE", "soft": 2, "hard": 1}]}})",
       "process.rlimits[0]: soft limit is above the hard limit"},
      {R"({"root": {"path": "r"}, "process": {"args": ["x"], "oomScoreAdj": 5000}})", "process.oomScoreAdj: must be between"},
      {R"({"root": {"path": "r"}, "mounts": [{"type": "tmpfs"}]})", "mounts[0].destination: missing"},
      {R"({"root": {"path": "r"}, "mounts": [{"destination": "/x", "options": ["idmap"]}]})",
       "mounts[0].options: 'idmap' mounts are not supported"},
      {R"({"root": {"path": "r"}, "linux": {"namespaces": [{"type": "time"}]}})",
       "linux.namespaces[0].type: unknown namespace type 'time'"},
      {R"({"root": {"path": "r"}, "linux": {"namespaces": [{"type": "pid"}, {"type": "pid"}]}})",
       "namespace 'pid' given twice"},
      {R"({"root": {"path": "r"}, "linux": {"cgroupsPath": "/a/../../etc"}})", "linux.cgroupsPath: '/a/../../etc' contains '..'"},
      {R"({"root": {"path": "r"}, "linux": {"devices": [{"path": "/dev/x", "type": "q"}]}})",
       "linux.devices[0].type: 'q' is not c, b, u or p"},
      {R"({"root": {"path": "r"}, "linux": {"resources": {"devices": [{"access": "rwx"}]}}})",
       "linux.resources.devices[0].access: 'rwx' is not made of r, w and m"},
      {R"({"root": {"path": "r"}, "linux": {"resources": {"unified": {"../x": "1"}}}})",
       "linux.resources.unified: '../x' is not a cgroup file name"},
      {R"({"root": {"path": "r"}, "linux": {"resources": {"blockIO": {"weight": 5}}}})",
       "linux.resources.blockIO.weight: 5 is not between 10 and 1000"},
      {R"({"root": {"path": "r"}, "linux": {"resources": {"blockIO": {"throttleReadBpsDevice": [{"major": 8, "minor": 0}]}}}})",
       "linux.resources.blockIO.throttleReadBpsDevice[0].rate: missing"},
      {R"({"root": {"path": "r"}, "linux": {"resources": {"blockIO": {"throttleWriteIOPSDevice": [{"major": 8, "rate": 1}]}}}})",
       "linux.resources.blockIO.throttleWriteIOPSDevice[0]: major and minor are required"},
      {R"({"root": {"path": "r"}, "linux": {"seccomp": {"defaultAction": "SCMP_ACT_MAYBE"}}})",
       "linux.seccomp.defaultAction: unknown action 'SCMP_ACT_MAYBE'"},
      {R"({"root": {"path": "r"}, "linux": {"seccomp": {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 7, "op": "SCMP_CMP_EQ"}]}]}}})",
       "linux.seccomp.syscalls[0].args[0].index: a system call has 6 arguments"},
      {R"({"root": {"path": "r"}, "hostname": "h"})", "hostname: setting the hostname needs a UTS namespace"},
      {R"({"root": {"path": "r"}, "hooks": {"prestart": [{"path": "relative"}]}})",
       "hooks.prestart[0].path: 'relative' is not an absolute path"},
  };
  for (auto& c : cases) {
    auto spec = parse_spec(c.json);
    ASSERT_FALSE(spec.ok()) << c.json;
    EXPECT_NE(spec.error().message().find(c.message), std::string::npos)
        << "config " << c.json << "\n gave: " << spec.error().message() << "\n want: " << c.message;
  }
}

// blockIO's four throttle lists become one IoThrottle per device (one io.max line on v2:
// a second line for the same device would reset the limits the first one set).
TEST(OciSpec, BlockIoThrottleListsMergePerDevice) {
  auto spec = parse_spec(R"({"root": {"path": "r"}, "linux": {"resources": {"blockIO": {"weight": 500,
      "throttleReadBpsDevice": [{"major": 259, "minor": 0, "rate": 1048576}, {"major": 8, "minor": 16, "rate": 0}],
      "throttleWriteBpsDevice": [{"major": 259, "minor": 0, "rate": 2097152}],
      "throttleReadIOPSDevice": [{"major": 8, "minor": 16, "rate": 300}],
      "throttleWriteIOPSDevice": [{"major": 259, "minor": 0, "rate": 400}]}}}})");
  ASSERT_TRUE(spec.ok()) << spec.error().message();
  const auto& r = spec.value().linux.resources;
  EXPECT_EQ(*r.blkio_weight, 500);
  ASSERT_EQ(r.io_throttle.size(), 2u);
  const sandbox::IoThrottle& nvme = r.io_throttle[0];
  EXPECT_EQ(nvme.major, 259u);
  EXPECT_EQ(nvme.minor, 0u);
  EXPECT_EQ(nvme.read_bps, 1048576u);
  EXPECT_EQ(nvme.write_bps, 2097152u);
  EXPECT_FALSE(nvme.read_iops);
  EXPECT_EQ(nvme.write_iops, 400u);
  const sandbox::IoThrottle& sdb = r.io_throttle[1];
  EXPECT_EQ(sdb.major, 8u);
  EXPECT_EQ(sdb.minor, 16u);
  EXPECT_FALSE(sdb.read_bps);  // rate 0: no limit
  EXPECT_EQ(sdb.read_iops, 300u);
}

// As runc: a memory value of 0 is not set (not a limit of 0 bytes).
TEST(OciSpec, ZeroMemoryValuesAreUnset) {
  auto spec = parse_spec(R"({"root": {"path": "r"}, "linux": {"resources": {"memory": {"limit": 0, "swap": 0, "reservation": 0}}}})");
  ASSERT_TRUE(spec.ok()) << spec.error().message();
  const auto& r = spec.value().linux.resources;
  EXPECT_FALSE(r.memory_limit);
  EXPECT_FALSE(r.memory_swap);
  EXPECT_FALSE(r.memory_reservation);
  auto limited = parse_spec(R"({"root": {"path": "r"}, "linux": {"resources": {"memory": {"limit": 1048576, "swap": 0}}}})");
  ASSERT_TRUE(limited.ok());
  EXPECT_EQ(limited.value().linux.resources.memory_limit, 1048576);
  EXPECT_FALSE(limited.value().linux.resources.memory_swap);
}

TEST(OciSpec, ProcessAloneForExec) {
  auto p = parse_process(R"({"args": ["/bin/echo", "hi"], "env": ["A=1"], "terminal": true})");
  ASSERT_TRUE(p.ok()) << p.error().message();
  EXPECT_TRUE(p.value().terminal);
  EXPECT_EQ(p.value().env, std::vector<std::string>{"A=1"});
  EXPECT_FALSE(parse_process(R"({"env": []})").ok());
}

}  // namespace
}  // namespace doppel::oci
