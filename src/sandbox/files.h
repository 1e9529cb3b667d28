// Small file helpers for the runtime: whole-file reads and writes with errors that name
// the path.
#pragma once

#include <string>

#include "base/result.h"

namespace doppel::sandbox {

[[nodiscard]] Result<std::string> read_file(const std::string& path);
// Writes `data` in one write(2) (cgroup and /proc files want that), without O_CREAT.
[[nodiscard]] Result<void> write_file(const std::string& path, const std::string& data);
// Creates or replaces `path` atomically (a temporary file renamed over it).
[[nodiscard]] Result<void> write_file_atomic(const std::string& path, const std::string& data);
[[nodiscard]] Result<void> mkdir_all(const std::string& path, unsigned mode = 0755);
std::string trim(const std::string& s);

}  // namespace doppel::sandbox
