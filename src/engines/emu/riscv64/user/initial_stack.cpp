#include "engines/emu/riscv64/user/initial_stack.h"

#include <utility>

#include "base/bits.h"

namespace doppel::rv64::user {

namespace {

// Allocates downwards from `top`, refusing to pass `bottom`.
class StackWriter {
 public:
  StackWriter(GuestMemory& memory, uint64_t bottom, uint64_t top)
      : m_memory(memory), m_bottom(bottom), m_sp(top) {}

  Result<uint64_t> push_bytes(const void* data, uint64_t len) {
    if (m_sp - m_bottom < len) return Error::format("initial stack: arguments and environment do not fit in {} bytes", m_sp - m_bottom);
    m_sp -= len;
    if (!m_memory.write(m_sp, {static_cast<const uint8_t*>(data), static_cast<size_t>(len)}))
      return Error::format("initial stack: {:#x} is outside guest memory", m_sp);
    return m_sp;
  }
  Result<uint64_t> push_string(const std::string& s) { return push_bytes(s.c_str(), s.size() + 1); }
  Result<void> align(uint64_t a) {
    const uint64_t aligned = align_down(m_sp, a);
    if (aligned < m_bottom) return Error("initial stack: no room to align the stack pointer");
    m_sp = aligned;
    return ok();
  }
  uint64_t sp() const { return m_sp; }

 private:
  GuestMemory& m_memory;
  uint64_t m_bottom;
  uint64_t m_sp;
};

}  // namespace

Result<uint64_t> build_initial_stack(GuestMemory& memory, uint64_t bottom, uint64_t top,
                                     const ElfImage& image, const StackSpec& spec) {
  if (bottom >= top) return Error::format("initial stack: empty range [{:#x}, {:#x})", bottom, top);
  StackWriter w(memory, bottom, top);

  // Strings first (highest addresses), then the random bytes.
  const uint64_t execfn = TRY(w.push_string(spec.execfn));
  const uint64_t platform = TRY(w.push_string("riscv64"));
  std::vector<uint64_t> env_ptrs, arg_ptrs;
  for (auto it = spec.envp.rbegin(); it != spec.envp.rend(); ++it) env_ptrs.push_back(TRY(w.push_string(*it)));
  for (auto it = spec.argv.rbegin(); it != spec.argv.rend(); ++it) arg_ptrs.push_back(TRY(w.push_string(*it)));
  const uint64_t random = TRY(w.push_bytes(spec.random.data(), spec.random.size()));

  std::vector<std::pair<uint64_t, uint64_t>> auxv = {
      {kAtPhdr, image.phdr_vaddr},  {kAtPhent, image.phentsize}, {kAtPhnum, image.phnum},
      {kAtPagesz, kUserPageSize},   {kAtBase, 0},                {kAtFlags, 0},
      {kAtEntry, image.entry},      {kAtUid, 0},                 {kAtEuid, 0},
      {kAtGid, 0},                  {kAtEgid, 0},                {kAtHwcap, kHwcapRv64imafdc},
      {kAtClktck, 100},             {kAtSecure, 0},              {kAtRandom, random},
      {kAtExecfn, execfn},          {kAtPlatform, platform},     {kAtNull, 0},
  };

  // The vector block: argc, argv..., 0, envp..., 0, auxv...; its start (sp) is 16-aligned.
  std::vector<uint64_t> block;
  block.push_back(spec.argv.size());
  for (auto it = arg_ptrs.rbegin(); it != arg_ptrs.rend(); ++it) block.push_back(*it);
  block.push_back(0);
  for (auto it = env_ptrs.rbegin(); it != env_ptrs.rend(); ++it) block.push_back(*it);
  block.push_back(0);
  for (const auto& [type, value] : auxv) {
    block.push_back(type);
    block.push_back(value);
  }
  const uint64_t bytes = block.size() * sizeof(uint64_t);
  if (w.sp() - bottom < bytes + 16) return Error("initial stack: argument vectors do not fit");
  TRY(w.align(16));
  // Leave room so that sp = (current - bytes) rounded down to 16.
  const uint64_t sp = align_down(w.sp() - bytes, 16);
  if (sp < bottom) return Error("initial stack: argument vectors do not fit");
  for (size_t i = 0; i < block.size(); ++i) {
    if (!memory.write_le<uint64_t>(sp + i * sizeof(uint64_t), block[i]))
      return Error::format("initial stack: {:#x} is outside guest memory", sp + i * sizeof(uint64_t));
  }
  return sp;
}

}  // namespace doppel::rv64::user
