# A hostile guest (tests/hostile): random MMIO writes and random virtqueues on the riscv64
# emulator for 15 s; doppel survives and stays responsive. scripts/hostile-guest runs it long.
add_test(NAME hostile.short
         COMMAND bash ${CMAKE_SOURCE_DIR}/tests/hostile/hostile.sh $<TARGET_FILE:doppel> ${CMAKE_SOURCE_DIR})
set_tests_properties(hostile.short PROPERTIES
                     ENVIRONMENT "HOSTILE_SECONDS=15"
                     SKIP_RETURN_CODE 77 TIMEOUT 600 LABELS "hostile")

# The same from Linux user space (tests/hostile/devmem.sh): the riscv64 guest kit, 2 harts,
# every virtio device, guest/programs/hostile.c through /dev/mem for 25 s, seed fixed.
# scripts/hostile-run runs it long with a random seed.
add_test(NAME hostile.devmem COMMAND ${CMAKE_SOURCE_DIR}/tests/hostile/devmem.sh)
set_tests_properties(hostile.devmem PROPERTIES
                     ENVIRONMENT "DOPPEL=$<TARGET_FILE:doppel>;HOSTILE_SECONDS=25;HOSTILE_SEED=0x5eed"
                     SKIP_RETURN_CODE 77 TIMEOUT 900 LABELS "guest;hostile")
