# The differential test against qemu-riscv64 (tests/difftest/README.md), and doppel-user,
# the user-mode runner it drives.

add_executable(doppel-user ${CMAKE_SOURCE_DIR}/tests/difftest/doppel_user_main.cpp)
target_compile_options(doppel-user PRIVATE ${DOPPEL_WARNINGS})
target_link_libraries(doppel-user PRIVATE doppel_engine_emu)
set_target_properties(doppel-user PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR})

find_package(Python3 COMPONENTS Interpreter)
find_program(DOPPEL_QEMU_RISCV64 qemu-riscv64)
find_program(DOPPEL_RISCV64_AS riscv64-linux-gnu-as)
find_program(DOPPEL_RISCV64_LD riscv64-linux-gnu-ld)
if(Python3_Interpreter_FOUND AND DOPPEL_QEMU_RISCV64 AND DOPPEL_RISCV64_AS AND DOPPEL_RISCV64_LD)
  add_test(NAME difftest.qemu_riscv64
           COMMAND ${Python3_EXECUTABLE} ${CMAKE_SOURCE_DIR}/tests/difftest/run_difftest.py
                   --runner $<TARGET_FILE:doppel-user> --qemu ${DOPPEL_QEMU_RISCV64}
                   --workdir ${CMAKE_BINARY_DIR}/difftest-work)
  set_tests_properties(difftest.qemu_riscv64 PROPERTIES TIMEOUT 300 LABELS "difftest")
else()
  message(STATUS "difftest: not registered (needs python3, qemu-riscv64, riscv64-linux-gnu-as/ld: "
                 "scripts/install-deps)")
endif()
