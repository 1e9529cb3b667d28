// A VmControl for tests, the fuzzer and tests/api's server: no VM, only a record of the
// calls and a small state machine like the vmm's (NotStarted -> Running <-> Paused).
// Thread-safe: the API thread calls it while a test reads what it recorded.
#pragma once

#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "vmm/vm_control.h"

namespace doppel {

class FakeVmControl : public VmControl {
 public:
  InstanceInfo info() override {
    std::lock_guard lock(m_mutex);
    return {"fake", m_state, "0.1.0-test", "doppel"};
  }
  nlohmann::json vm_config() override {
    std::lock_guard lock(m_mutex);
    return m_started ? to_json(*m_started) : nlohmann::json::object();
  }
  Result<void> start(const VmConfig& config) override {
    std::lock_guard lock(m_mutex);
    TRY(record("start"));
    if (m_state != VmState::kNotStarted) return Error("a VM exists already");
    m_started = config;
    m_state = VmState::kRunning;
    return {};
  }
  Result<void> pause() override {
    std::lock_guard lock(m_mutex);
    TRY(record("pause"));
    if (m_state != VmState::kRunning) return Error("the VM is not running");
    m_state = VmState::kPaused;
    return {};
  }
  Result<void> resume() override {
    std::lock_guard lock(m_mutex);
    TRY(record("resume"));
    if (m_state != VmState::kPaused) return Error("the VM is not paused");
    m_state = VmState::kRunning;
    return {};
  }
  Result<void> create_snapshot(const SnapshotCreateRequest& request) override {
    std::lock_guard lock(m_mutex);
    TRY(record("create_snapshot"));
    if (m_state != VmState::kPaused) return Error("the VM must be paused to snapshot it");
    m_created = request;
    return {};
  }
  Result<void> load_snapshot(const SnapshotLoadRequest& request) override {
    std::lock_guard lock(m_mutex);
    TRY(record("load_snapshot"));
    if (m_state != VmState::kNotStarted) return Error("a VM exists already");
    m_loaded = request;
    m_started = VmConfig{};
    m_state = request.resume_vm ? VmState::kRunning : VmState::kPaused;
    return {};
  }
  Result<MigrationStatus> migrate(const MigrationRequest& request) override {
    std::function<void()> hook;
    {
      std::lock_guard lock(m_mutex);
      TRY(record("migrate"));
      if (m_state != VmState::kRunning) return Error("migrate: the VM is not running");
      m_migrated = request;
      m_migration = MigrationStatus{};
      m_migration.state = MigrationStatus::State::kActive;
      m_migration.destination = request.destination;
      m_migration.rounds = 1;
      hook = on_migrate;
    }
    if (hook) hook();  // a test holds the migration here, while it asks GET /migrate
    std::lock_guard lock(m_mutex);
    m_state = VmState::kStopped;
    m_migration.state = MigrationStatus::State::kCompleted;
    m_migration.rounds = 3;
    m_migration.bytes = 4096;
    m_migration.pages = 1;
    return m_migration;
  }
  MigrationStatus migration_status() override {
    std::lock_guard lock(m_mutex);
    return m_migration;
  }
  Result<void> send_ctrl_alt_del() override {
    std::lock_guard lock(m_mutex);
    TRY(record("send_ctrl_alt_del"));
    if (m_state == VmState::kNotStarted) return Error("SendCtrlAltDel: there is no VM yet");
    return {};
  }
  nlohmann::json metrics() override { return {{"vcpu_exits", 42}}; }
  Result<void> update_rate_limiters(const RateLimiterUpdate& update) override {
    std::lock_guard lock(m_mutex);
    TRY(record("update_rate_limiters"));
    if (m_state == VmState::kNotStarted) return Error("no VM is running");
    m_rate_update = update;
    return {};
  }

  // For the test.
  void set_state(VmState state) {
    std::lock_guard lock(m_mutex);
    m_state = state;
  }
  // The next action fails with this message (as a real VmControl's Result would).
  void fail_next(std::string message) {
    std::lock_guard lock(m_mutex);
    m_fail_next = std::move(message);
  }
  std::vector<std::string> calls() {
    std::lock_guard lock(m_mutex);
    return m_calls;
  }
  std::optional<VmConfig> started() {
    std::lock_guard lock(m_mutex);
    return m_started;
  }
  std::optional<SnapshotCreateRequest> created() {
    std::lock_guard lock(m_mutex);
    return m_created;
  }
  std::optional<SnapshotLoadRequest> loaded() {
    std::lock_guard lock(m_mutex);
    return m_loaded;
  }
  std::optional<MigrationRequest> migrated() {
    std::lock_guard lock(m_mutex);
    return m_migrated;
  }
  // Runs inside migrate(), unlocked, on the thread migrating. Set before the first request.
  std::function<void()> on_migrate;
  std::optional<RateLimiterUpdate> rate_update() {
    std::lock_guard lock(m_mutex);
    return m_rate_update;
  }

 private:
  Result<void> record(std::string call) {  // REQUIRES(m_mutex)
    m_calls.push_back(std::move(call));
    if (m_fail_next) {
      Error error(*m_fail_next);
      m_fail_next.reset();
      return error;
    }
    return {};
  }

  std::mutex m_mutex;
  VmState m_state = VmState::kNotStarted;  // GUARDED_BY(m_mutex), and so is the rest
  std::vector<std::string> m_calls;
  std::optional<std::string> m_fail_next;
  std::optional<VmConfig> m_started;
  std::optional<SnapshotCreateRequest> m_created;
  std::optional<SnapshotLoadRequest> m_loaded;
  std::optional<MigrationRequest> m_migrated;
  MigrationStatus m_migration;
  std::optional<RateLimiterUpdate> m_rate_update;
};

}  // namespace doppel
