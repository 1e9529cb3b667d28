# Live migration tests (tests/migration/*.sh): two network-namespace "hosts" joined by a
# veth pair; the riscv64 guest kit moves from one doppel to the other over TCP. Each script
# exits 0 (pass), 77 (skip: not root, no guest kit) or 1.
function(doppel_migration_test name script)
  add_test(NAME migration.${name} COMMAND ${CMAKE_SOURCE_DIR}/tests/migration/${script} ${ARGN})
  set_tests_properties(migration.${name} PROPERTIES
    ENVIRONMENT "DOPPEL=$<TARGET_FILE:doppel>"
    SKIP_RETURN_CODE 77 TIMEOUT 900 LABELS "guest;migration")
endfunction()
doppel_migration_test(cpumark_1 migrate.sh 1)
doppel_migration_test(cpumark_4 migrate.sh 4)
doppel_migration_test(failures failures.sh)
doppel_migration_test(disk disk.sh)
doppel_migration_test(cpumark_dirty migrate.sh 1 dirty)
doppel_migration_test(cpumark_zstd migrate.sh 1 zstd)
doppel_migration_test(progress migrate.sh 1 progress)
doppel_migration_test(local_update update.sh)
