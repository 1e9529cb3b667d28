# doppel jail (issue 14 part 1): needs root, namespaces and a writable cgroup tree (skips
# otherwise); boots the riscv64 guest kit in the jail.
add_test(NAME jail.boot COMMAND bash ${CMAKE_SOURCE_DIR}/tests/jail/jail_test.sh $<TARGET_FILE:doppel>)
set_tests_properties(jail.boot PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 600 LABELS "guest;jail")
