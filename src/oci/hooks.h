// OCI hooks: a program run with the container's state JSON on its stdin.
#pragma once

#include <string>
#include <vector>

#include "base/result.h"
#include "oci/spec.h"

namespace doppel::oci {

// Runs each hook in order, stopping at the first that fails (non-zero exit, killed, or
// past its timeout, when it is killed). `phase` names it in errors ("prestart").
[[nodiscard]] Result<void> run_hooks(const std::vector<Hook>& hooks, const std::string& state_json,
                                     const char* phase);

}  // namespace doppel::oci
