// Temporary files and directories for the vmm tests, removed when they go out of scope.
#pragma once

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include <gtest/gtest.h>

namespace doppel::test {

class TempFile {
 public:
  TempFile(const void* data, size_t size) {
    char tmpl[] = "/tmp/doppel-vmm-test-XXXXXX";
    const int fd = mkstemp(tmpl);
    EXPECT_GE(fd, 0);
    EXPECT_EQ(write(fd, data, size), static_cast<ssize_t>(size));
    close(fd);
    m_path = tmpl;
  }
  ~TempFile() { unlink(m_path.c_str()); }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  const std::string& path() const { return m_path; }

 private:
  std::string m_path;
};

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/doppel-vmm-test-XXXXXX";
    m_path = mkdtemp(tmpl);
  }
  ~TempDir() { std::filesystem::remove_all(m_path); }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string operator/(const char* name) const { return m_path + "/" + name; }

 private:
  std::string m_path;
};

}  // namespace doppel::test
