# VM lifecycle tests (tests/lifecycle/*.sh): pause/resume, snapshot/restore, diff
# snapshots and clones of the riscv64 guest kit, driven through the control API with
# `doppel ctl`. Each script exits 0 (pass), 77 (skip: no guest kit or doppel binary) or 1.
function(doppel_lifecycle_test name script)
  add_test(NAME lifecycle.${name} COMMAND ${CMAKE_SOURCE_DIR}/tests/lifecycle/${script} ${ARGN})
  set_tests_properties(lifecycle.${name} PROPERTIES
    ENVIRONMENT "DOPPEL=$<TARGET_FILE:doppel>"
    SKIP_RETURN_CODE 77 TIMEOUT 900 LABELS "guest;lifecycle")
endfunction()
doppel_lifecycle_test(pause_resume pause_resume.sh)
doppel_lifecycle_test(snapshot_restore_1 snapshot_restore.sh 1)
doppel_lifecycle_test(snapshot_restore_4 snapshot_restore.sh 4)
doppel_lifecycle_test(snapshot_disk snapshot_disk.sh)
doppel_lifecycle_test(snapshot_diff snapshot_diff.sh)
doppel_lifecycle_test(clone clone.sh)
doppel_lifecycle_test(api_errors api_errors.sh)
doppel_lifecycle_test(clone_net clone_net.sh)
doppel_lifecycle_test(snapshot_user_net_vsock snapshot_user_net_vsock.sh)
