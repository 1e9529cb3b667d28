// One debugger connection speaking the GDB remote protocol (gdb manual, "Remote Protocol")
// to a GdbTarget, in all-stop mode: every vCPU stops when one does, one gdb thread per
// vCPU (thread id = vCPU index + 1).
//
// Supported: qSupported, QStartNoAckMode, qXfer:features:read (target.xml from the
// vCPU's DebugArch), g/G/p/P, m/M/X on guest virtual addresses (the stopped vCPU's page
// tables), Z0/Z1 breakpoints and Z2/Z3/Z4 watchpoints, c/s/C/S and vCont, Ctrl-C, ?,
// qfThreadInfo/qsThreadInfo/qC/qThreadExtraInfo/T, Hg/Hc, qAttached, D (detach: the guest
// runs on), k/vKill (the VM stops), qRcmd ("monitor"): help, info registers [-a],
// info status, xp/x /FMT ADDR (physical / virtual memory, QEMU's syntax). Anything else
// gets the empty reply ("not supported"); a malformed packet gets "E01"-style errors.
//
// The session is pure protocol: bytes in (receive()), bytes out (the send callback),
// target calls; the socket and the threads are GdbServer's (gdb_server.h). That is what
// the fuzzer drives (gdb_session_fuzz.cpp).
//
// Threads: one thread calls everything.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "core/vcpu_debug.h"
#include "gdb/gdb_packet.h"

namespace doppel::gdb {

// What the session debugs. Register, translate and memory calls are made only while the
// target is stopped (after stop() or a stop event).
class GdbTarget {
 public:
  struct Stop {
    unsigned vcpu = 0;
    DebugStopKind kind = DebugStopKind::kBreakpoint;
    uint64_t addr = 0;  // a watchpoint's accessed address
  };
  virtual ~GdbTarget() = default;
  virtual unsigned vcpu_count() = 0;
  // The register list and architecture (the same for every vCPU).
  virtual const DebugArch& arch() = 0;
  // Stops every vCPU (returns once they are stopped).
  virtual Result<void> stop() = 0;
  // Resumes, vCPU i with controls[i].
  virtual Result<void> resume(const std::vector<DebugControl>& controls) = 0;
  // The debug stop that ended the last resume, if one happened.
  virtual std::optional<Stop> stop_event() = 0;
  // The VM's exit code once it has ended (powered off, killed...).
  virtual std::optional<int> exit_code() = 0;
  virtual Result<std::vector<uint8_t>> read_registers(unsigned vcpu) = 0;
  virtual Result<void> write_register(unsigned vcpu, unsigned index,
                                      std::span<const uint8_t> value) = 0;
  virtual Result<uint64_t> translate(unsigned vcpu, uint64_t va) = 0;
  // Guest RAM only (no device is read or written by a debugger).
  virtual Result<void> read_physical(uint64_t pa, std::span<uint8_t> out) = 0;
  virtual Result<void> write_physical(uint64_t pa, std::span<const uint8_t> data) = 0;
  virtual std::string describe(unsigned vcpu) = 0;  // "info registers"
  virtual std::string status() = 0;                  // "info status"
  virtual void kill() = 0;
};

class GdbSession {
 public:
  GdbSession(GdbTarget& target, std::function<void(std::string_view)> send);

  // A new connection: stops the target (as QEMU's stub does), unless `already_stopped`.
  void attach();
  // Bytes from the debugger.
  void receive(std::span<const uint8_t> bytes);
  // The target may have stopped or ended: sends the stop reply gdb waits for, if so.
  void on_target_event();
  // The connection is gone (or the server closes): as a detach, the guest runs on without
  // breakpoints.
  void disconnect();
  // After 'k' or a detach the connection should close.
  bool finished() const { return m_finished; }
  bool running() const { return m_running; }

 private:
  void handle(std::string_view packet);
  void reply(std::string_view payload);
  std::string stop_reply(const GdbTarget::Stop& stop, bool interrupted) const;
  std::string exit_reply(int code) const;
  // Packet handlers; each returns the reply, or nullopt when there is none yet (a resume).
  std::optional<std::string> handle_query(std::string_view packet);
  std::string handle_read_registers();
  std::string handle_write_registers(std::string_view hex);
  std::string handle_read_register(std::string_view args);
  std::string handle_write_register(std::string_view args);
  std::string handle_read_memory(std::string_view args);
  std::string handle_write_memory(std::string_view args, bool binary);
  std::string handle_breakpoint(std::string_view args, bool insert);
  std::string handle_set_thread(std::string_view args);
  std::optional<std::string> handle_vcont(std::string_view args);
  std::optional<std::string> resume_legacy(char action, std::string_view args);
  std::string handle_monitor(std::string_view command);
  std::string handle_detach();
  std::optional<std::string> resume(std::vector<DebugControl> controls);
  // A thread id (hex, -1, 0, or pP.T) to a vCPU index; -1 all, -2 invalid.
  int parse_thread(std::string_view text) const;
  // Reads guest memory at a virtual (or physical) address, page by page; fewer bytes than
  // asked when a page is not mapped (none: an error).
  Result<std::vector<uint8_t>> read_memory(unsigned vcpu, uint64_t addr, uint64_t len,
                                           bool physical);
  Result<void> write_memory(unsigned vcpu, uint64_t addr, std::span<const uint8_t> data);
  std::string target_xml() const;
  size_t register_bytes(unsigned index) const;
  DebugControl control_for_continue() const;

  GdbTarget& m_target;
  std::function<void(std::string_view)> m_send;
  PacketDecoder m_decoder;
  std::string m_last_sent;      // for a '-' (resend)
  bool m_ack_mode = true;
  bool m_running = false;       // resumed; a stop reply is owed
  bool m_finished = false;
  bool m_swbreak = false, m_hwbreak = false;  // gdb understands these stop reasons
  unsigned m_g_vcpu = 0;        // Hg: registers and memory
  int m_c_vcpu = -1;            // Hc: what c/s act on (-1: all)
  std::optional<GdbTarget::Stop> m_last_stop;
  bool m_last_interrupted = false;
  struct Breakpoint {
    uint64_t addr;
    bool hardware;
  };
  std::vector<Breakpoint> m_breakpoints;
  std::vector<Watchpoint> m_watchpoints;
  // Software breakpoints written into guest memory for this resume (an arch with
  // sw_break): where, and the bytes they replaced. Put back at every stop.
  struct Planted {
    uint64_t pa;
    std::vector<uint8_t> original;
  };
  std::vector<Planted> m_planted;
  // Plants the software breakpoints; returns those whose address is not mapped now (the
  // engine is to watch them in its debug registers).
  std::vector<uint64_t> plant_breakpoints();
  // The vCPU stepping off a planted breakpoint before the continue in m_deferred.
  std::optional<unsigned> m_step_over;
  std::vector<DebugControl> m_deferred;
  std::optional<uint64_t> read_pc(unsigned vcpu);
  void unplant_breakpoints();
};

}  // namespace doppel::gdb
