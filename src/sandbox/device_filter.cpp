#include "sandbox/device_filter.h"

#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <tuple>

namespace doppel::sandbox {
namespace {

// Registers of the program: the context pointer, then the request's fields.
constexpr uint8_t kCtx = 1, kType = 2, kAccess = 3, kMajor = 4, kMinor = 5, kTmp = 1;

bpf_insn insn(uint8_t code, uint8_t dst, uint8_t src, int16_t off, int32_t imm) {
  bpf_insn i{};
  i.code = code;
  i.dst_reg = dst & 0xf;
  i.src_reg = src & 0xf;
  i.off = off;
  i.imm = imm;
  return i;
}

// The request's access bits (BPF_DEVCG_ACC_*) of a rule's "rwm".
Result<int32_t> access_bits(const std::string& access) {
  int32_t bits = 0;
  for (char c : access) {
    if (c == 'r') bits |= BPF_DEVCG_ACC_READ;
    else if (c == 'w') bits |= BPF_DEVCG_ACC_WRITE;
    else if (c == 'm') bits |= BPF_DEVCG_ACC_MKNOD;
    else return Error::format("device rule access '{}': not r, w or m", access);
  }
  return bits;
}

long bpf(int cmd, bpf_attr* attr) { return ::syscall(SYS_bpf, cmd, attr, sizeof *attr); }

}  // namespace

std::vector<DeviceRule> container_device_rules(const std::vector<DeviceRule>& resources,
                                               const std::vector<Device>& devices) {
  std::vector<DeviceRule> rules = resources;
  auto allow = [&](char type, int64_t major, int64_t minor, const char* access) {
    DeviceRule r;
    r.allow = true;
    r.type = type;
    r.major = major;
    r.minor = minor;
    r.access = access;
    rules.push_back(r);
  };
  allow('c', -1, -1, "m");
  allow('b', -1, -1, "m");
  for (int64_t minor : {3, 5, 7, 8, 9}) allow('c', 1, minor, "rwm");  // null zero full random urandom
  for (int64_t minor : {0, 1, 2}) allow('c', 5, minor, "rwm");        // tty console ptmx
  allow('c', 136, -1, "rwm");                                          // the ptys
  allow('c', 10, 200, "rwm");                                          // net/tun
  for (auto& d : devices)
    if (d.type == 'c' || d.type == 'b' || d.type == 'u') allow(d.type == 'u' ? 'c' : d.type, d.major, d.minor, "rwm");
  return rules;
}

Result<std::vector<bpf_insn>> device_filter_program(const std::vector<DeviceRule>& rules) {
  std::vector<bpf_insn> p;
  // type = ctx->access_type & 0xffff; access = ctx->access_type >> 16; major; minor
  // (struct bpf_cgroup_dev_ctx).
  p.push_back(insn(BPF_LDX | BPF_W | BPF_MEM, kType, kCtx, 0, 0));
  p.push_back(insn(BPF_ALU | BPF_AND | BPF_K, kType, 0, 0, 0xffff));
  p.push_back(insn(BPF_LDX | BPF_W | BPF_MEM, kAccess, kCtx, 0, 0));
  p.push_back(insn(BPF_ALU | BPF_RSH | BPF_K, kAccess, 0, 0, 16));
  p.push_back(insn(BPF_LDX | BPF_W | BPF_MEM, kMajor, kCtx, 4, 0));
  p.push_back(insn(BPF_LDX | BPF_W | BPF_MEM, kMinor, kCtx, 8, 0));
  // The last rule decides: test them from the last to the first, each a block that jumps
  // past itself when the request does not match and returns its verdict when it does.
  bool matched_all = false;
  for (auto it = rules.rbegin(); it != rules.rend(); ++it) {
    const DeviceRule& r = *it;
    std::vector<bpf_insn> block;
    if (r.type == 'c' || r.type == 'b') {
      int32_t type = r.type == 'c' ? BPF_DEVCG_DEV_CHAR : BPF_DEVCG_DEV_BLOCK;
      block.push_back(insn(BPF_JMP32 | BPF_JNE | BPF_K, kType, 0, 0, type));
    } else if (r.type != 'a') {
      return Error::format("device rule type '{}': not a, b or c", r.type);
    }
    int32_t access = TRY(access_bits(r.access));
    if (access != (BPF_DEVCG_ACC_READ | BPF_DEVCG_ACC_WRITE | BPF_DEVCG_ACC_MKNOD)) {
      // As the v1 device cgroup decides: an allow rule matches when it grants every access
      // asked for, (access & rule) == access; a deny rule when it denies any of them,
      // (access & rule) != 0.
      block.push_back(insn(BPF_ALU | BPF_MOV | BPF_X, kTmp, kAccess, 0, 0));
      block.push_back(insn(BPF_ALU | BPF_AND | BPF_K, kTmp, 0, 0, access));
      if (r.allow) block.push_back(insn(BPF_JMP32 | BPF_JNE | BPF_X, kTmp, kAccess, 0, 0));
      else block.push_back(insn(BPF_JMP32 | BPF_JEQ | BPF_K, kTmp, 0, 0, 0));
    }
    for (auto [value, reg, what] : {std::tuple{r.major, kMajor, "major"}, std::tuple{r.minor, kMinor, "minor"}}) {
      if (value < 0) continue;  // '*'
      if (value > 0xffffffffLL) return Error::format("device rule {} {}: out of range", what, value);
      block.push_back(insn(BPF_JMP32 | BPF_JNE | BPF_K, reg, 0, 0, static_cast<int32_t>(static_cast<uint32_t>(value))));
    }
    block.push_back(insn(BPF_ALU64 | BPF_MOV | BPF_K, 0, 0, 0, r.allow ? 1 : 0));
    block.push_back(insn(BPF_JMP | BPF_EXIT, 0, 0, 0, 0));
    // Each conditional jump skips the rest of its block.
    for (size_t i = 0; i < block.size(); i++)
      if (BPF_CLASS(block[i].code) == BPF_JMP32) block[i].off = static_cast<int16_t>(block.size() - i - 1);
    p.insert(p.end(), block.begin(), block.end());
    // A rule matching every request ends the program (the verifier refuses dead code).
    if (block.size() == 2) {
      matched_all = true;
      break;
    }
  }
  if (!matched_all) {
    p.push_back(insn(BPF_ALU64 | BPF_MOV | BPF_K, 0, 0, 0, 0));  // no rule matched: deny
    p.push_back(insn(BPF_JMP | BPF_EXIT, 0, 0, 0, 0));
  }
  if (p.size() > BPF_MAXINSNS) return Error::format("{} device rules make a program over the kernel's limit", rules.size());
  return p;
}

Result<UniqueFd> load_device_filter(const std::vector<bpf_insn>& program) {
  static const char kLicense[] = "GPL";
  std::vector<char> log(65536);
  for (int attempt = 0; attempt < 2; attempt++) {
    bpf_attr attr;
    std::memset(&attr, 0, sizeof attr);
    attr.prog_type = BPF_PROG_TYPE_CGROUP_DEVICE;
    attr.insns = reinterpret_cast<uint64_t>(program.data());
    attr.insn_cnt = static_cast<uint32_t>(program.size());
    attr.license = reinterpret_cast<uint64_t>(kLicense);
    if (attempt == 1) {  // again with the verifier's log, to say why
      attr.log_level = 1;
      attr.log_buf = reinterpret_cast<uint64_t>(log.data());
      attr.log_size = static_cast<uint32_t>(log.size());
    }
    long fd = bpf(BPF_PROG_LOAD, &attr);
    if (fd >= 0) return UniqueFd(static_cast<int>(fd));
    if (errno != EACCES && errno != EINVAL) return Error::from_errno("device filter: bpf(BPF_PROG_LOAD)");
    if (attempt == 1) {
      int e = errno;
      std::string text(log.data(), strnlen(log.data(), log.size()));
      return Error(fmt::format("device filter: the kernel's verifier refused the program: {}: {}", std::strerror(e), text), e);
    }
  }
  return Error("device filter: unreachable");
}

Result<void> attach_device_filter(const std::string& cgroup_dir, int program_fd) {
  UniqueFd dir(::open(cgroup_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dir.valid()) return Error::from_errno(fmt::format("device filter: open {}", cgroup_dir));
  bpf_attr attr;
  std::memset(&attr, 0, sizeof attr);
  attr.target_fd = static_cast<uint32_t>(dir.get());
  attr.attach_bpf_fd = static_cast<uint32_t>(program_fd);
  attr.attach_type = BPF_CGROUP_DEVICE;
  attr.attach_flags = BPF_F_ALLOW_MULTI;
  if (bpf(BPF_PROG_ATTACH, &attr) != 0)
    return Error::from_errno(fmt::format("device filter: attach to {}", cgroup_dir));
  return ok();
}

}  // namespace doppel::sandbox
