# qcow2 disks (tests/qcow2/*.sh): the riscv64 guest kit under build/doppel on qcow2 images,
# checked with qemu-img. Each script exits 0 (pass), 77 (skip: no guest kit, no doppel
# binary, no qemu-img) or 1 (fail).
foreach(t interop chain crash clones)
  add_test(NAME qcow2.${t} COMMAND ${CMAKE_SOURCE_DIR}/tests/qcow2/${t}.sh)
  set_tests_properties(qcow2.${t} PROPERTIES
    ENVIRONMENT "DOPPEL=$<TARGET_FILE:doppel>"
    SKIP_RETURN_CODE 77 TIMEOUT 900 LABELS "guest;qcow2")
endforeach()
