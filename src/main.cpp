#include "cli/cli.h"

int main(int argc, char** argv) { return doppel::cli_main(argc, argv); }
