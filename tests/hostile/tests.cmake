# A hostile guest (tests/hostile): random MMIO writes and random virtqueues on the riscv64
# emulator for 15 s; doppel survives and stays responsive. scripts/hostile-guest runs it long.
add_test(NAME hostile.short
         COMMAND bash ${CMAKE_SOURCE_DIR}/tests/hostile/hostile.sh $<TARGET_FILE:doppel> ${CMAKE_SOURCE_DIR})
set_tests_properties(hostile.short PROPERTIES
                     ENVIRONMENT "HOSTILE_SECONDS=15"
                     SKIP_RETURN_CODE 77 TIMEOUT 600 LABELS "hostile")
