# `doppel run --arch x86_64 --engine kvm` on the host's /dev/kvm with a tiny bzImage
# assembled from tests/guests/long_mode.S: the CLI, the machine, doppel's bzImage loader,
# page tables and GDT, the UART and ACPI power off. Skips (77) without /dev/kvm.
add_test(NAME kvm_tiny_bzimage
         COMMAND ${CMAKE_SOURCE_DIR}/tests/kvm/tiny_bzimage_test.sh $<TARGET_FILE:doppel>)
set_tests_properties(kvm_tiny_bzimage PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 60 LABELS "kvm")
add_test(NAME kvm_tiny_pvh COMMAND ${CMAKE_SOURCE_DIR}/tests/kvm/tiny_pvh_test.sh $<TARGET_FILE:doppel>)
set_tests_properties(kvm_tiny_pvh PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 60 LABELS "kvm")
