// The command line: `doppel run|guest|version`, translated into a VmConfig and actions.
#pragma once

namespace doppel {

// Returns the process exit code.
int cli_main(int argc, char** argv);

}  // namespace doppel
