# Many VMs at once (issue 14 part 4): riscv64 guests of the guest kit running cpumark 1 and
# powering off, every checksum and exit code checked (tests/many_vms/many_vms.sh). The
# count in make test is MANY_VMS_COUNT below; scripts/many-vms runs the full 24.
set(DOPPEL_MANY_VMS_COUNT 24 CACHE STRING "VMs booted at once by the many_vms test")
add_test(NAME many_vms.boot
         COMMAND bash ${CMAKE_SOURCE_DIR}/tests/many_vms/many_vms.sh $<TARGET_FILE:doppel>
                 ${DOPPEL_MANY_VMS_COUNT})
set_tests_properties(many_vms.boot PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 1800
                     LABELS "guest;many_vms")
