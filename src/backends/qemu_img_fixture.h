// Test-only: a gtest fixture for tests judged by qemu-img. Skips without qemu-img, gives
// each test a temporary directory (removed afterwards) and runs shell commands with their
// output kept for the failure message.
#pragma once

#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include <fmt/format.h>
#include <gtest/gtest.h>

namespace doppel::testing {

inline bool have_qemu_img() { return std::system("qemu-img --version >/dev/null 2>&1") == 0; }

class QemuImgFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!have_qemu_img()) GTEST_SKIP() << "qemu-img not installed";
    char tmpl[] = "/tmp/doppel-qemu-img-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    m_dir = tmpl;
  }
  void TearDown() override {
    if (!m_dir.empty()) std::filesystem::remove_all(m_dir);
  }
  std::string path(const std::string& name) const { return m_dir + "/" + name; }
  // The shell's exit code of cmd; its output is in path("cmd.log") (log()).
  int shell(const std::string& cmd) {
    const int status = std::system(fmt::format("{} >'{}' 2>&1", cmd, path("cmd.log")).c_str());
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }
  std::string log() {
    std::ifstream in(path("cmd.log"));
    return std::string(std::istreambuf_iterator<char>(in), {});
  }

  std::string m_dir;
};

}  // namespace doppel::testing
