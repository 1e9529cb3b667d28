# In-guest virtio tests (tests/virtio_guest/*.sh): the riscv64 guest kit under build/doppel
# on the emulation engine. Each script exits 0 (pass), 77 (skip: no guest kit, no doppel
# binary, a missing tool, or not root for the network test) or 1 (fail).
foreach(t blk_rw blk_ro rng net console user_net vsock)
  add_test(NAME virtio_guest.${t}
           COMMAND ${CMAKE_SOURCE_DIR}/tests/virtio_guest/${t}.sh)
  set_tests_properties(virtio_guest.${t} PROPERTIES
    ENVIRONMENT "DOPPEL=$<TARGET_FILE:doppel>"
    SKIP_RETURN_CODE 77 TIMEOUT 900 LABELS "guest;virtio")
endforeach()
