# Per-thread seccomp (issue 14 part 2): each kind of thread makes a forbidden system call
# through a test-only LD_PRELOAD trigger (seccomp_trigger.c, never linked into doppel) and
# the process must die with exit 159 and a report naming the thread and the call.
add_library(doppel_seccomp_trigger MODULE ${CMAKE_SOURCE_DIR}/tests/seccomp/seccomp_trigger.c)
target_link_libraries(doppel_seccomp_trigger PRIVATE ${CMAKE_DL_LIBS})
add_test(NAME seccomp.threads
         COMMAND bash ${CMAKE_SOURCE_DIR}/tests/seccomp/threads.sh $<TARGET_FILE:doppel>
                 $<TARGET_FILE:doppel_seccomp_trigger>)
set_tests_properties(seccomp.threads PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 900 LABELS "seccomp;guest")
