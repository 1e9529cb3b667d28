# The riscv64 CPU as a whole machine: OpenSBI -> a tiny S-mode payload -> SBI shutdown.
add_test(NAME rv64.smode_payload
         COMMAND sh ${CMAKE_SOURCE_DIR}/tests/rv64_smode/run.sh $<TARGET_FILE:doppel>
                 ${CMAKE_SOURCE_DIR} ${CMAKE_BINARY_DIR}/rv64-smode-work)
set_tests_properties(rv64.smode_payload PROPERTIES TIMEOUT 180 SKIP_RETURN_CODE 77)
