// Documents the runtime prints: `spec`'s starting config.json and `features`.
#pragma once

#include <string>

namespace doppel::oci {

// A config.json to start from: /bin/sh on a terminal, the usual mounts, masked paths and
// capabilities; `rootless` adds a user namespace mapping the caller's ids.
std::string default_spec_json(bool rootless);
// runtime-spec features.md: what this runtime supports.
std::string features_json();

}  // namespace doppel::oci
