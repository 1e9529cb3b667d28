# doppel oci (the OCI container runtime): its command line and lifecycle with a busybox
# bundle, crun 1.8.1's own test suite against doppel and runc side by side, containerd's
# and podman's runc callers driving doppel-runc.
add_test(NAME oci.lifecycle
         COMMAND bash ${CMAKE_SOURCE_DIR}/tests/oci/lifecycle_test.sh ${CMAKE_BINARY_DIR}/doppel-runc)
add_test(NAME oci.crun_suite
         COMMAND bash ${CMAKE_SOURCE_DIR}/tests/oci/crun_compare.sh ${CMAKE_BINARY_DIR}/doppel-runc)
add_test(NAME oci.containerd
         COMMAND bash ${CMAKE_SOURCE_DIR}/tests/oci/containerd_test.sh ${CMAKE_BINARY_DIR}/doppel-runc)
add_test(NAME oci.podman
         COMMAND bash ${CMAKE_SOURCE_DIR}/tests/oci/podman_test.sh ${CMAKE_BINARY_DIR}/doppel-runc)
add_test(NAME oci.cgroup_v2
         COMMAND bash ${CMAKE_SOURCE_DIR}/tests/oci/cgroup_v2_test.sh ${CMAKE_BINARY_DIR}/doppel-runc)
set_tests_properties(oci.lifecycle oci.crun_suite oci.containerd oci.podman oci.cgroup_v2 PROPERTIES
  SKIP_RETURN_CODE 77 TIMEOUT 2400 LABELS "oci" RUN_SERIAL TRUE)
