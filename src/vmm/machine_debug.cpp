// The Machine under a debugger (machine.h, "The debugger"): debug stops are pauses, the
// one stop mechanism the Machine has.
#include <unistd.h>

#include "base/log.h"
#include "vmm/machine.h"

namespace doppel {

void Machine::notify_debugger() {
  const int fd = m_debug_notify_fd.load(std::memory_order_acquire);
  if (fd < 0) return;
  const uint64_t one = 1;
  // An eventfd's counter only fails to grow at its maximum: it is readable then anyway.
  [[maybe_unused]] const ssize_t n = ::write(fd, &one, sizeof one);
}

void Machine::on_debug_exit(unsigned index, const VcpuExit& exit) {
  bool first = false;
  {
    std::lock_guard lock(m_mutex);
    if (m_stopping) return;
    if (!m_debug_stop) {
      m_debug_stop = DebugStop{index, exit.debug, exit.addr};
      first = true;
    }
    // This vCPU parks at the top of its loop (a debug exit is an instruction boundary);
    // the others park once kicked. The debugger's debug_stop() then completes the pause.
    m_target.store(Target::kPark, std::memory_order_release);
  }
  if (!first) return;
  for (unsigned i = 0; i < m_board->vcpu_count(); ++i)
    if (i != index) m_board->vcpu(i).kick();
  notify_debugger();
}

Result<void> Machine::hold_at_start() {
  std::lock_guard control(m_control_mutex);
  {
    std::lock_guard lock(m_mutex);
    if (m_started) return Error("hold at start: the VM has already started");
    if (m_paused) return ok();
  }
  for (const auto& v : m_board->virtio()) v->stop();
  TRY(m_board->freeze_clocks());
  std::lock_guard lock(m_mutex);
  m_target.store(Target::kPark, std::memory_order_release);
  m_paused = true;
  return ok();
}

Result<void> Machine::debug_stop() {
  std::lock_guard control(m_control_mutex);
  {
    std::lock_guard lock(m_mutex);
    if (m_stopping) return Error("the VM has stopped");
    if (m_paused) return ok();
  }
  return pause_locked();
}

Result<void> Machine::debug_resume(const std::vector<DebugControl>& controls) {
  std::lock_guard control(m_control_mutex);
  {
    std::lock_guard lock(m_mutex);
    if (m_stopping) return Error("the VM has stopped");
    if (!m_paused) return Error("the VM is not stopped");
    m_debug_stop.reset();
  }
  for (unsigned i = 0; i < m_board->vcpu_count(); ++i)
    TRY(m_board->vcpu(i).set_debug(i < controls.size() ? controls[i] : DebugControl{}));
  return resume_locked();
}

std::optional<Machine::DebugStop> Machine::last_debug_stop() {
  std::lock_guard lock(m_mutex);
  return m_debug_stop;
}

bool Machine::stopping() const {
  std::lock_guard lock(m_mutex);
  return m_stopping;
}

}  // namespace doppel
