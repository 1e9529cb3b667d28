#include <cstring>

#include "cli/cli.h"
#include "cli/oci_cli.h"

int main(int argc, char** argv) {
  // The OCI runtime answers to runc's name (a doppel-runc link) and to `doppel oci`.
  if (argc > 0 && doppel::invoked_as_oci_runtime(argv[0])) return doppel::oci_main(argc, argv);
  if (argc > 1 && std::strcmp(argv[1], "oci") == 0) return doppel::oci_main(argc - 1, argv + 1);
  return doppel::cli_main(argc, argv);
}
