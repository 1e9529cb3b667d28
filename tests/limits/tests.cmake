# Resource limits in a per-VM cgroup (issue 14 part 3): need root and a writable cgroup tree
# (they skip otherwise); boot the riscv64 guest kit. The CPU share check measures a rate
# (RUN_SERIAL) and skips, saying so, when the host is too busy to give even an uncapped VM 35%.
foreach(part readback oom restore cpu)
  add_test(NAME limits.${part}
           COMMAND bash ${CMAKE_SOURCE_DIR}/tests/limits/limits_test.sh $<TARGET_FILE:doppel> ${part})
  set_tests_properties(limits.${part} PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 600 LABELS "guest;limits")
endforeach()
set_tests_properties(limits.cpu PROPERTIES RUN_SERIAL TRUE)
