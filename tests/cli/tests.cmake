# What a user sees from the command line: exit codes and error messages.
add_test(NAME cli.behaviour
         COMMAND bash ${CMAKE_SOURCE_DIR}/tests/cli/cli_test.sh $<TARGET_FILE:doppel>)

# No VM destroys data by accident (issue 14): image locks, --console2 and closed stdout,
# with tiny bare-metal guests (tests/cli/safety.sh).
add_test(NAME cli.safety
         COMMAND bash ${CMAKE_SOURCE_DIR}/tests/cli/safety.sh $<TARGET_FILE:doppel>)
set_tests_properties(cli.safety PROPERTIES TIMEOUT 600 LABELS "cli")
