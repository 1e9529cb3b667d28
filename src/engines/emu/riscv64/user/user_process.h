// A static riscv64 Linux program run on one emulated hart in U-mode (satp bare, so guest
// virtual = guest physical), its system calls served by LinuxSyscalls: doppel's user-mode
// runner (`doppel-user`), used by the differential test against qemu-riscv64.
//
// Address space: the ELF's PT_LOAD segments followed by a heap for brk(), and a stack
// below kUserStackTop with the anonymous mmap() area right under it. Nothing else is mapped: any other access faults, and a fault ends
// the process as the matching signal would (SIGSEGV, SIGILL, SIGBUS...).
//
// Threads: create() and run() on one thread.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "base/bits.h"
#include "base/result.h"
#include "core/bus.h"
#include "core/guest_memory.h"
#include "engines/emu/riscv64/hart.h"
#include "engines/emu/riscv64/timebase.h"
#include "engines/emu/riscv64/user/elf_loader.h"
#include "engines/emu/riscv64/user/linux_syscalls.h"

namespace doppel::rv64::user {

constexpr uint64_t kUserStackTop = 0x3fff000000;

struct UserProcessConfig {
  std::string path;                // the ELF file (create() reads it)
  std::vector<std::string> argv;   // argv[0] is the path if empty
  std::vector<std::string> envp;
  uint64_t stack_size = 8 * MiB;
  uint64_t heap_size = 64 * MiB;   // brk() may grow this far past the image
  uint64_t mmap_size = 256 * MiB;  // anonymous mmap() area, just below the stack
  uint64_t max_instructions = 0;   // 0: no limit
  int stdin_fd = 0, stdout_fd = 1, stderr_fd = 2;
  bool trace = false;              // disassemble every instruction to stderr
};

struct UserExit {
  enum class Kind {
    kExited,            // exit/exit_group: status is the exit status
    kSignaled,          // a fault the program does not handle: status is the signal number
    kInstructionLimit,  // max_instructions reached
  };
  Kind kind = Kind::kExited;
  int status = 0;
  Trap trap;           // kSignaled: what the hart reported
  std::string detail;  // kSignaled: a readable reason

  // The shell's convention: status, or 128 + signal.
  int shell_status() const;
};

class UserProcess {
 public:
  static Result<std::unique_ptr<UserProcess>> create(const UserProcessConfig& config);
  // For tests: the ELF from memory; config.path is used only as a name.
  static Result<std::unique_ptr<UserProcess>> create_from_image(std::span<const uint8_t> elf,
                                                                const UserProcessConfig& config);
  ~UserProcess();

  // Runs until the program exits, dies of a fault, or hits max_instructions.
  Result<UserExit> run();

  // Calls `observer` before every instruction (single-stepping: slow). For state traces
  // that a harness compares with another implementation's.
  void set_observer(std::function<void(const Hart&)> observer) { m_observer = std::move(observer); }

  uint64_t instret() const { return m_hart->instret(); }
  Hart& hart() { return *m_hart; }
  GuestMemory& memory() { return *m_memory; }
  const ElfImage& image() const { return m_image; }
  const LinuxSyscalls& syscalls() const { return *m_syscalls; }

 private:
  UserProcess() = default;
  UserProcessConfig m_config;
  ElfImage m_image;
  std::unique_ptr<GuestMemory> m_memory;
  std::unique_ptr<Bus> m_mmio;  // empty: a user process has no devices
  std::unique_ptr<Timebase> m_timebase;
  std::unique_ptr<Hart> m_hart;
  std::unique_ptr<LinuxSyscalls> m_syscalls;
  std::function<void(const Hart&)> m_observer;
};

}  // namespace doppel::rv64::user
