// Rule 9: every stateful device and engine can save and restore itself.
#pragma once

#include "base/result.h"

namespace doppel {

// State is a versioned plain struct with a `uint32_t version` member. restore() refuses
// versions it does not know.
template <typename State>
class Persist {
 public:
  virtual ~Persist() = default;
  virtual State save() const = 0;
  virtual Result<void> restore(const State& state) = 0;
};

}  // namespace doppel
