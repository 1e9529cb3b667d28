# The riscv64 JIT (src/engines/emu/riscv64/jit/). The JIT is the default on x86-64 hosts, so
# the guest suites run with it; these run the emulator's other tests the other way round:
# the hart's unit tests and the difftest with every block translated (DOPPEL_JIT=on, read
# by test_asm.h's fixture and doppel-user), and the CPU-heavy guest tests on the
# interpreter (DOPPEL_JIT=off, the default of doppel's --jit). JitDiff (the differential
# mode) is part of the ordinary unit tests.
add_test(NAME jit.unit_tests_jit_on
         COMMAND doppel_unit_tests
                 --gtest_filter=HartTest.*:FpTest.*:MmuTest.*:EmuEngineTest.*:UserProcess.*:LinuxSyscallsTest.*:ClintTest.*:PlicTest.*)
set_tests_properties(jit.unit_tests_jit_on PROPERTIES ENVIRONMENT "DOPPEL_JIT=on" TIMEOUT 300
                     LABELS "jit")

if(Python3_Interpreter_FOUND AND DOPPEL_QEMU_RISCV64 AND DOPPEL_RISCV64_AS AND DOPPEL_RISCV64_LD)
  add_test(NAME difftest.qemu_riscv64_jit_on
           COMMAND ${Python3_EXECUTABLE} ${CMAKE_SOURCE_DIR}/tests/difftest/run_difftest.py
                   --runner $<TARGET_FILE:doppel-user> --qemu ${DOPPEL_QEMU_RISCV64}
                   --workdir ${CMAKE_BINARY_DIR}/difftest-jit-work)
  set_tests_properties(difftest.qemu_riscv64_jit_on PROPERTIES ENVIRONMENT "DOPPEL_JIT=on"
                       TIMEOUT 300 LABELS "difftest;jit")
endif()

add_test(NAME rv64.smode_payload_jit_off
         COMMAND sh ${CMAKE_SOURCE_DIR}/tests/rv64_smode/run.sh $<TARGET_FILE:doppel>
                 ${CMAKE_SOURCE_DIR} ${CMAKE_BINARY_DIR}/rv64-smode-jit-off-work)
set_tests_properties(rv64.smode_payload_jit_off PROPERTIES ENVIRONMENT "DOPPEL_JIT=off"
                     TIMEOUT 180 SKIP_RETURN_CODE 77 LABELS "jit")

foreach(harts 1 4)
  add_test(NAME boot_riscv64.harts${harts}_jit_off
           COMMAND sh ${CMAKE_SOURCE_DIR}/tests/boot_riscv64/boot.sh $<TARGET_FILE:doppel>
                   ${CMAKE_SOURCE_DIR} ${harts})
  set_tests_properties(boot_riscv64.harts${harts}_jit_off PROPERTIES ENVIRONMENT "DOPPEL_JIT=off"
                       SKIP_RETURN_CODE 77 TIMEOUT 700 LABELS "guest;boot;jit")
endforeach()

foreach(t blk_rw vsock)
  add_test(NAME virtio_guest.${t}_jit_off COMMAND ${CMAKE_SOURCE_DIR}/tests/virtio_guest/${t}.sh)
  set_tests_properties(virtio_guest.${t}_jit_off PROPERTIES
    ENVIRONMENT "DOPPEL=$<TARGET_FILE:doppel>;DOPPEL_JIT=off"
    SKIP_RETURN_CODE 77 TIMEOUT 900 LABELS "guest;virtio;jit")
endforeach()

# --jit on under the per-thread seccomp filters (the default): the kit boots on 1 and 4
# harts, every thread filtered, and powers off.
foreach(harts 1 4)
  add_test(NAME jit.boot_seccomp_harts${harts}
           COMMAND bash ${CMAKE_SOURCE_DIR}/tests/jit/boot_seccomp.sh $<TARGET_FILE:doppel>
                   ${CMAKE_SOURCE_DIR} ${harts})
  set_tests_properties(jit.boot_seccomp_harts${harts} PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 700
                       LABELS "guest;boot;jit;seccomp")
endforeach()
