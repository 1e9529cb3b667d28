# In-guest virtio tests (tests/virtio_guest/*.sh). They boot the riscv64 guest kit under
# build/doppel, so they are left unregistered until the riscv64 emulator boots Linux; the
# lead enables them by uncommenting the block below. Each script exits 0 (pass), 77 (skip:
# no guest kit, no doppel binary, missing tool, or not root for the network test) or 1.
#
# foreach(t blk_rw blk_ro rng net)
#   add_test(NAME virtio_guest_${t}
#            COMMAND ${CMAKE_SOURCE_DIR}/tests/virtio_guest/${t}.sh)
#   set_tests_properties(virtio_guest_${t} PROPERTIES
#     ENVIRONMENT "DOPPEL=${CMAKE_BINARY_DIR}/doppel"
#     SKIP_RETURN_CODE 77 TIMEOUT 900 LABELS "guest;virtio")
# endforeach()
