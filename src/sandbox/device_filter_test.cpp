#include "sandbox/device_filter.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

#include "sandbox/cgroup.h"

namespace doppel::sandbox {
namespace {

DeviceRule rule(bool allow, char type, int64_t major, int64_t minor, const char* access) {
  DeviceRule r;
  r.allow = allow;
  r.type = type;
  r.major = major;
  r.minor = minor;
  r.access = access;
  return r;
}

// Runs a generated program the way the kernel would for one request, over the few
// instructions the generator emits (anything else fails the test).
int run(const std::vector<bpf_insn>& p, char type, uint32_t major, uint32_t minor, const std::string& access) {
  uint32_t acc = 0;
  for (char c : access) acc |= c == 'r' ? BPF_DEVCG_ACC_READ : c == 'w' ? BPF_DEVCG_ACC_WRITE : BPF_DEVCG_ACC_MKNOD;
  uint32_t ctx[3] = {(acc << 16) | (type == 'c' ? BPF_DEVCG_DEV_CHAR : BPF_DEVCG_DEV_BLOCK), major, minor};
  uint64_t r[11] = {};
  for (size_t pc = 0; pc < p.size(); pc++) {
    const bpf_insn& i = p[pc];
    uint64_t& dst = r[i.dst_reg];
    const uint64_t src = r[i.src_reg];
    auto jump = [&](bool taken) {
      if (taken) pc += static_cast<size_t>(i.off);
    };
    switch (i.code) {
      case BPF_LDX | BPF_W | BPF_MEM:
        EXPECT_EQ(i.src_reg, 1);
        dst = ctx[i.off / 4];
        break;
      case BPF_ALU | BPF_AND | BPF_K: dst = static_cast<uint32_t>(dst & static_cast<uint32_t>(i.imm)); break;
      case BPF_ALU | BPF_RSH | BPF_K: dst = static_cast<uint32_t>(dst) >> i.imm; break;
      case BPF_ALU | BPF_MOV | BPF_X: dst = static_cast<uint32_t>(src); break;
      case BPF_ALU64 | BPF_MOV | BPF_K: dst = static_cast<uint64_t>(static_cast<int64_t>(i.imm)); break;
      case BPF_JMP32 | BPF_JNE | BPF_K: jump(static_cast<uint32_t>(dst) != static_cast<uint32_t>(i.imm)); break;
      case BPF_JMP32 | BPF_JEQ | BPF_K: jump(static_cast<uint32_t>(dst) == static_cast<uint32_t>(i.imm)); break;
      case BPF_JMP32 | BPF_JNE | BPF_X: jump(static_cast<uint32_t>(dst) != static_cast<uint32_t>(src)); break;
      case BPF_JMP | BPF_EXIT: return static_cast<int>(r[0]);
      default: ADD_FAILURE() << "unexpected instruction " << int(i.code); return -1;
    }
  }
  ADD_FAILURE() << "the program ran off its end";
  return -1;
}

TEST(OciDeviceFilter, TheLastMatchingRuleDecides) {
  // podman's and docker's shape: deny everything, then allow some.
  Device disk;
  disk.path = "/dev/sda";
  disk.type = 'b';
  disk.major = 8;
  disk.minor = 0;
  auto rules = container_device_rules({rule(false, 'a', -1, -1, "rwm"), rule(true, 'c', 10, 229, "r")}, {disk});
  auto p = device_filter_program(rules);
  ASSERT_TRUE(p.ok()) << p.error().message();
  EXPECT_EQ(run(p.value(), 'c', 1, 3, "rw"), 1);     // /dev/null: every container's
  EXPECT_EQ(run(p.value(), 'c', 136, 4, "rw"), 1);   // a pty
  EXPECT_EQ(run(p.value(), 'c', 1, 11, "r"), 0);     // /dev/kmsg: no rule
  EXPECT_EQ(run(p.value(), 'c', 10, 229, "r"), 1);   // /dev/fuse, read: allowed
  EXPECT_EQ(run(p.value(), 'c', 10, 229, "w"), 0);   // ... write is not in the rule
  EXPECT_EQ(run(p.value(), 'c', 10, 229, "rw"), 0);
  EXPECT_EQ(run(p.value(), 'b', 8, 0, "rw"), 1);     // linux.devices
  EXPECT_EQ(run(p.value(), 'c', 8, 0, "rw"), 0);     // ... a block device, not a char one
  EXPECT_EQ(run(p.value(), 'b', 8, 1, "r"), 0);
  EXPECT_EQ(run(p.value(), 'b', 8, 1, "m"), 1);      // mknod of anything
  EXPECT_EQ(run(p.value(), 'b', 8, 1, "rm"), 0);
}

TEST(OciDeviceFilter, AllowEverythingThenDenySome) {
  auto p = device_filter_program({rule(true, 'a', -1, -1, "rwm"), rule(false, 'c', 1, -1, "w")});
  ASSERT_TRUE(p.ok()) << p.error().message();
  EXPECT_EQ(run(p.value(), 'c', 1, 3, "r"), 1);
  EXPECT_EQ(run(p.value(), 'c', 1, 3, "w"), 0);
  EXPECT_EQ(run(p.value(), 'c', 1, 9, "rw"), 0);  // a deny rule takes away any access it names
  EXPECT_EQ(run(p.value(), 'c', 2, 3, "rw"), 1);
  EXPECT_EQ(run(p.value(), 'b', 1, 3, "w"), 1);
  // No rule matches: denied.
  auto some = device_filter_program({rule(true, 'c', 1, 3, "rwm")});
  ASSERT_TRUE(some.ok());
  EXPECT_EQ(run(some.value(), 'c', 1, 3, "rw"), 1);
  EXPECT_EQ(run(some.value(), 'c', 1, 5, "r"), 0);
  // Nothing: everything denied.
  auto none = device_filter_program({});
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(run(none.value(), 'c', 1, 3, "r"), 0);
}

TEST(OciDeviceFilter, ARuleItCannotExpressIsAnError) {
  auto p = device_filter_program({rule(true, 'c', 1, 3, "rx")});
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.error().message(), "device rule access 'rx': not r, w or m");
  p = device_filter_program({rule(true, 'p', 1, 3, "r")});
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.error().message(), "device rule type 'p': not a, b or c");
}

// Where cgroup v2 is mounted: /sys/fs/cgroup itself, or a hybrid host's unified tree.
std::string cgroup2_mount() {
  std::ifstream info("/proc/self/mountinfo");
  std::string line;
  while (std::getline(info, line)) {
    auto dash = line.find(" - ");
    if (dash == std::string::npos) continue;
    std::stringstream head(line.substr(0, dash)), tail(line.substr(dash + 3));
    std::string id, parent, dev, root, mountpoint, fstype;
    head >> id >> parent >> dev >> root >> mountpoint;
    tail >> fstype;
    if (fstype == "cgroup2") return mountpoint;
  }
  return "";
}

// The kernel runs the program for a process in the cgroup: the v2 path of Cgroup::create
// on the host's cgroup2 hierarchy (a device program needs no controller, so a hybrid
// host's empty v2 tree will do).
TEST(OciDeviceFilter, TheKernelEnforcesItInAV2Cgroup) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root (bpf and cgroups)";
  std::string mnt = cgroup2_mount();
  if (mnt.empty()) GTEST_SKIP() << "no cgroup2 hierarchy is mounted";
  struct stat kmsg {};
  if (::stat("/dev/kmsg", &kmsg) != 0 || !S_ISCHR(kmsg.st_mode)) GTEST_SKIP() << "no /dev/kmsg";
  // Control: outside the cgroup, root may open /dev/kmsg for writing.
  int control = ::open("/dev/kmsg", O_WRONLY | O_CLOEXEC);
  if (control < 0) GTEST_SKIP() << "/dev/kmsg: " << std::strerror(errno);
  ::close(control);

  Resources res;
  res.devices = {rule(false, 'a', -1, -1, "rwm"),
                 rule(true, 'c', static_cast<int64_t>(major(kmsg.st_rdev)), static_cast<int64_t>(minor(kmsg.st_rdev)), "r")};
  Cgroup cg = Cgroup::unified_at("/doppel-devfilter-test-" + std::to_string(::getpid()), mnt);
  auto made = cg.create(res);
  ASSERT_TRUE(made.ok()) << made.error().message();

  int go[2], result[2];
  ASSERT_EQ(::pipe(go), 0);
  ASSERT_EQ(::pipe(result), 0);
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    char c;
    if (::read(go[0], &c, 1) != 1) ::_exit(2);
    std::string out;
    for (auto [path, flags] : {std::pair{"/dev/null", O_RDWR}, std::pair{"/dev/kmsg", O_RDONLY},
                               std::pair{"/dev/kmsg", O_WRONLY}}) {
      int fd = ::open(path, flags | O_CLOEXEC);
      out += fd >= 0 ? "ok " : std::string(std::strerror(errno)) + " ";
      if (fd >= 0) ::close(fd);
    }
    if (::write(result[1], out.data(), out.size()) < 0) ::_exit(3);
    ::_exit(0);
  }
  auto added = cg.add_process(child);
  EXPECT_TRUE(added.ok()) << added.error().message();
  // The rest of the v2 path a container uses: its processes, freezing (cgroup.freeze).
  auto pids = cg.processes();
  ASSERT_TRUE(pids.ok()) << pids.error().message();
  EXPECT_EQ(pids.value(), std::vector<pid_t>{child});
  auto frozen = cg.set_frozen(true);
  EXPECT_TRUE(frozen.ok()) << frozen.error().message();
  for (int i = 0; i < 1000 && !cg.frozen(); i++) ::usleep(1000);
  EXPECT_TRUE(cg.frozen());
  EXPECT_TRUE(cg.set_frozen(false).ok());
  EXPECT_EQ(::write(go[1], "x", 1), 1);
  ::close(result[1]);
  char buf[256] = {};
  ssize_t n = ::read(result[0], buf, sizeof buf - 1);
  int status = 0;
  ::waitpid(child, &status, 0);
  for (int fd : {go[0], go[1], result[0]}) ::close(fd);
  auto gone = cg.destroy();
  EXPECT_TRUE(gone.ok()) << gone.error().message();
  ASSERT_GT(n, 0);
  // /dev/null as every container; /dev/kmsg read-only, as the rule says.
  EXPECT_EQ(std::string(buf), "ok ok Operation not permitted ");
  struct stat st {};
  EXPECT_NE(::stat((mnt + cg.path()).c_str(), &st), 0) << "the cgroup is left behind";
}

}  // namespace
}  // namespace doppel::sandbox
