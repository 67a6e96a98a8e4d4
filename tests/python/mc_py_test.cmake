# mc_py_test.cmake: mc_py_test(NAME MODULE [ENV...]) registers a ctest test
# that runs tests/python/MODULE.py with unittest under Debian's python3
# (python3-numpy, python3-torch; tests that need them skip without them),
# against this build's libmcache, mcached and reg_helper. Extra ENV entries
# ("VAR=value") are added. Labels: python, and the part of NAME before its
# first "_" if that differs (examples_workers: examples too). Included by
# tests/python/ and examples/ (which comes first, so this file stands alone).
#
# Sanitizer builds: libmcache is then built with ASan/UBSan, which a stock
# python3 can load only with the runtime preloaded; those passes preload it
# (no leak checks: CPython's own allocations are reported otherwise; and
# SIGSEGV left to the kernel: a test expects a write to the read-only arena
# to kill its process with SIGSEGV). TSan builds skip these tests: the TSan
# runtime cannot be preloaded into python3.
include_guard(GLOBAL)

set(MC_PYTHON /usr/bin/python3 CACHE FILEPATH "Python with python3-numpy and python3-torch")

function(mc_py_test name module)
  if(MCACHE_TSAN)
    return()
  endif()
  set(env
      "MCACHE_LIB=$<TARGET_FILE:mcache>"
      "MC_MCACHED=$<TARGET_FILE:mcached>"
      "MC_REG_HELPER=$<TARGET_FILE:reg_helper>"
      "PYTHONPATH=${PROJECT_SOURCE_DIR}/python"
      "PYTHONDONTWRITEBYTECODE=1"
      ${ARGN})
  if(MCACHE_SANITIZE)
    execute_process(COMMAND ${CMAKE_C_COMPILER} -print-file-name=libasan.so
                    OUTPUT_VARIABLE asan OUTPUT_STRIP_TRAILING_WHITESPACE)
    execute_process(COMMAND ${CMAKE_C_COMPILER} -print-file-name=libubsan.so
                    OUTPUT_VARIABLE ubsan OUTPUT_STRIP_TRAILING_WHITESPACE)
    list(APPEND env "LD_PRELOAD=${asan}:${ubsan}"
         "ASAN_OPTIONS=detect_leaks=0:handle_segv=0")
  endif()
  add_test(NAME ${name} COMMAND ${MC_PYTHON} -m unittest -v ${module}
           WORKING_DIRECTORY ${PROJECT_SOURCE_DIR}/tests/python)
  string(REGEX MATCH "^[a-z]+" layer "${name}")
  set(labels python)
  if(NOT layer STREQUAL "python")
    list(APPEND labels ${layer})
  endif()
  set_tests_properties(${name} PROPERTIES TIMEOUT 180 SKIP_RETURN_CODE 77
                       ENVIRONMENT "${env}" LABELS "${labels}")
endfunction()
