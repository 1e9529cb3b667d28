# The gdb stub (issue 13): gdb-multiarch in batch mode against the riscv64 guest kit with
# its vmlinux, on 1 and 4 harts (tests/gdb/boot.sh); and the protocol on the wire: Ctrl-C,
# a hostile packet stream, monitor commands, kill (tests/gdb/wire.py). Skipped (77)
# without the guest kit or gdb-multiarch.
foreach(harts 1 4)
  add_test(NAME gdb.riscv64_harts${harts}
           COMMAND bash ${CMAKE_SOURCE_DIR}/tests/gdb/boot.sh ${harts})
  set_tests_properties(gdb.riscv64_harts${harts} PROPERTIES
                       ENVIRONMENT "DOPPEL=$<TARGET_FILE:doppel>"
                       SKIP_RETURN_CODE 77 TIMEOUT 600 LABELS "guest;gdb")
endforeach()
add_test(NAME gdb.wire
         COMMAND python3 ${CMAKE_SOURCE_DIR}/tests/gdb/wire.py $<TARGET_FILE:doppel>
                 ${CMAKE_SOURCE_DIR})
set_tests_properties(gdb.wire PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 300 LABELS "guest;gdb")
