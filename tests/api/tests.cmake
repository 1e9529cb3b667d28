# The control API over real HTTP (curl, netcat and `doppel ctl`) against a server whose
# VmControl is a fake: routes, errors and the socket's life, no VM needed.
add_executable(doppel_api_test_server ${CMAKE_SOURCE_DIR}/tests/api/api_test_server.cpp)
target_compile_options(doppel_api_test_server PRIVATE ${DOPPEL_WARNINGS})
target_link_libraries(doppel_api_test_server PRIVATE doppel_api)
add_test(NAME api.curl
         COMMAND bash ${CMAKE_SOURCE_DIR}/tests/api/api_curl_test.sh
                 $<TARGET_FILE:doppel_api_test_server> $<TARGET_FILE:doppel>)
set_tests_properties(api.curl PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 60 LABELS "api")
