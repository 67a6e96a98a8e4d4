# tests/registry.cmake: tests of the registry (registry/: the manifest and
# the API) and of the versions and names it checks (index/semver, name).
# Included by tests/CMakeLists.txt. Scratch stores go under $MC_TEST_TMP
# (default /tmp; the many-reopen tests prefer /dev/shm).

# mc_reg_test(NAME SOURCES...): linked against the tests' helpers, then the
# registry with crash points, after bench/'s synthetic stores (synth_registry()).
function(mc_reg_test name)
  add_executable(${name} ${ARGN})
  target_link_libraries(${name} PRIVATE mc_testutil mcache_synth mcache_registry_crash
                        PkgConfig::CMOCKA Threads::Threads)
endfunction()

mc_reg_test(test_semver test_semver.c)
add_test(NAME registry_semver COMMAND test_semver)

mc_reg_test(test_names test_names.c)
add_test(NAME registry_names COMMAND test_names)

# The registry's semantics through its API, once per metadata backend
# (tu_backend() in tests/helpers/testutil_reg.c reads MC_TEST_BACKEND; a new
# backend is a case there and a name here). The journal's run keeps the name registry_api.
set(MCACHE_REGISTRY_TEST_BACKENDS journal)
mc_reg_test(test_registry test_registry.c)
set(registry_api_tests)
foreach(backend IN LISTS MCACHE_REGISTRY_TEST_BACKENDS)
  if(backend STREQUAL "journal")
    set(test registry_api)
  else()
    set(test registry_api_${backend})
  endif()
  add_test(NAME ${test} COMMAND test_registry)
  set_tests_properties(${test} PROPERTIES ENVIRONMENT "MC_TEST_BACKEND=${backend}")
  list(APPEND registry_api_tests ${test})
endforeach()

# The journal backend's own files: framing, torn tails, crashes at every
# step, concurrency, a full disk, scale.
mc_reg_test(test_manifest test_manifest.c)
add_dependencies(test_manifest reg_helper)
foreach(group unit crash concurrency fulldisk scale)
  add_test(NAME registry_manifest_${group} COMMAND test_manifest ${group})
endforeach()

# The fast reader of manifest lines against jansson, and replays through both.
mc_reg_test(test_manifest_json test_manifest_json.c)
add_test(NAME registry_manifest_json COMMAND test_manifest_json)

set_tests_properties(registry_semver registry_names ${registry_api_tests} registry_manifest_unit
                     registry_manifest_json
                     registry_manifest_crash registry_manifest_concurrency
                     registry_manifest_fulldisk registry_manifest_scale
                     PROPERTIES TIMEOUT 180 SKIP_RETURN_CODE 77)
