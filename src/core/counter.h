// A named counter that a device or a vCPU reports for GET /metrics.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

namespace doppel {

struct Counter {
  std::string_view name;  // a string literal: lives as long as the program
  uint64_t value = 0;
};
using Counters = std::vector<Counter>;

}  // namespace doppel
