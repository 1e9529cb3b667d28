// `doppel oci ...` and its second name `doppel-runc`: runc's command line over the OCI
// runtime (src/oci). Only parsing and printing live here.
#pragma once

namespace doppel {

// argv[0] is the program name as invoked ("doppel-runc", or "oci" after `doppel`).
int oci_main(int argc, char** argv);

// True when the binary was invoked under a runc-like name (doppel-runc, runc).
bool invoked_as_oci_runtime(const char* argv0);

}  // namespace doppel
