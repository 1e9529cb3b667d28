# Rate limiters (tests/rate_limit/*.sh): the riscv64 guest kit under build/doppel moves data
# through a limited virtio-blk or virtio-net device; the rate the guest measures must be the
# limit within 15% (issue 10). Exit 0 (pass), 77 (skip: no guest kit, no doppel binary, not
# root for the TAP test) or 1 (fail, printing the measured rate).
foreach(t disk net)
  add_test(NAME rate_limit.${t} COMMAND ${CMAKE_SOURCE_DIR}/tests/rate_limit/${t}.sh)
  set_tests_properties(rate_limit.${t} PROPERTIES
    ENVIRONMENT "DOPPEL=$<TARGET_FILE:doppel>"
    SKIP_RETURN_CODE 77 TIMEOUT 900 LABELS "guest;virtio;rate_limit")
endforeach()
