# tests/serve/ui.cmake - serve_ui: the status page end to end in headless
# Chromium (test_ui.js through run_ui_test.sh, which installs playwright-core
# from npm under this build folder the first time). Included by
# tests/serve/CMakeLists.txt. The screenshot it takes is docs/img/status-page.png's source.
set(ui_env
    "MCACHE_BIN=$<TARGET_FILE:mcache_cli>"
    "MCACHED_BIN=$<TARGET_FILE:mcached>"
    "MCACHE_SERVE_BIN=$<TARGET_FILE:mcache_serve>"
    "MCACHE_LIB=$<TARGET_FILE:mcache>"
    "MCACHE_UI_SHOT=${CMAKE_CURRENT_BINARY_DIR}/status-page.png")
# The reader process the test starts is python3 loading libmcache: a sanitizer
# build's runtime has to be preloaded for it (as tests/cli does), and under
# TSan, whose runtime cannot be, the test leaves it out.
if(MCACHE_SANITIZE)
  execute_process(COMMAND ${CMAKE_C_COMPILER} -print-file-name=libasan.so
                  OUTPUT_VARIABLE ui_asan OUTPUT_STRIP_TRAILING_WHITESPACE)
  execute_process(COMMAND ${CMAKE_C_COMPILER} -print-file-name=libubsan.so
                  OUTPUT_VARIABLE ui_ubsan OUTPUT_STRIP_TRAILING_WHITESPACE)
  list(APPEND ui_env "MCACHE_PY_PRELOAD=${ui_asan}:${ui_ubsan}")
elseif(MCACHE_TSAN)
  list(APPEND ui_env "MCACHE_PY_PRELOAD=none")
endif()
add_test(NAME serve_ui COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/run_ui_test.sh
                               ${CMAKE_CURRENT_BINARY_DIR}/node)
set_tests_properties(serve_ui PROPERTIES TIMEOUT 300 SKIP_RETURN_CODE 77
                     ENVIRONMENT "${ui_env}")
mc_test_labels(serve_ui)
