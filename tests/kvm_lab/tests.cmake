# The KVM lab (tests/kvm_lab/lab.sh): Linux under doppel's KVM engine inside QEMU TCG with
# an emulated AMD-V CPU (a standard KVM; the host's may be restricted). Several minutes.
# Skips (77) when the x86_64 guest kit or QEMU is missing.
add_test(NAME kvm_lab_boot
         COMMAND sh -c "exec ${CMAKE_SOURCE_DIR}/tests/kvm_lab/boot_test.sh $<TARGET_FILE:doppel> \"$(${CMAKE_SOURCE_DIR}/guest/build.sh --arch x86_64 --print-dir 2>/dev/null)\"")
set_tests_properties(kvm_lab_boot PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 1200 LABELS "lab;kvm")
add_test(NAME kvm_lab_snapshot
         COMMAND sh -c "exec ${CMAKE_SOURCE_DIR}/tests/kvm_lab/snapshot_test.sh $<TARGET_FILE:doppel> \"$(${CMAKE_SOURCE_DIR}/guest/build.sh --arch x86_64 --print-dir 2>/dev/null)\"")
set_tests_properties(kvm_lab_snapshot PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 1200 LABELS "lab;kvm")
add_test(NAME kvm_lab_ctrl_alt_del
         COMMAND sh -c "exec ${CMAKE_SOURCE_DIR}/tests/kvm_lab/ctrl_alt_del_test.sh $<TARGET_FILE:doppel> \"$(${CMAKE_SOURCE_DIR}/guest/build.sh --arch x86_64 --print-dir 2>/dev/null)\"")
set_tests_properties(kvm_lab_ctrl_alt_del PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 1200 LABELS "lab;kvm")
add_test(NAME kvm_lab_migrate
         COMMAND sh -c "exec ${CMAKE_SOURCE_DIR}/tests/kvm_lab/migrate_test.sh $<TARGET_FILE:doppel> \"$(${CMAKE_SOURCE_DIR}/guest/build.sh --arch x86_64 --print-dir 2>/dev/null)\"")
set_tests_properties(kvm_lab_migrate PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 1200 LABELS "lab;kvm")
add_test(NAME kvm_lab_net_vsock
         COMMAND sh -c "exec ${CMAKE_SOURCE_DIR}/tests/kvm_lab/net_vsock_test.sh $<TARGET_FILE:doppel> \"$(${CMAKE_SOURCE_DIR}/guest/build.sh --arch x86_64 --print-dir 2>/dev/null)\"")
set_tests_properties(kvm_lab_net_vsock PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 1200 LABELS "lab;kvm")
add_test(NAME kvm_lab_gdb
         COMMAND sh -c "exec ${CMAKE_SOURCE_DIR}/tests/kvm_lab/gdb_test.sh $<TARGET_FILE:doppel> \"$(${CMAKE_SOURCE_DIR}/guest/build.sh --arch x86_64 --print-dir 2>/dev/null)\"")
set_tests_properties(kvm_lab_gdb PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 1200 LABELS "lab;kvm;gdb")
