# What a user sees from the command line: exit codes and error messages.
add_test(NAME cli.behaviour
         COMMAND bash ${CMAKE_SOURCE_DIR}/tests/cli/cli_test.sh $<TARGET_FILE:doppel>)
