# tests/registry.cmake: tests of the registry (index/semver, name, manifest,
# registry). Included by tests/CMakeLists.txt.

function(mc_reg_test name)
  add_executable(${name} ${ARGN})
  target_link_libraries(${name} PRIVATE mcache_registry_crash PkgConfig::CMOCKA Threads::Threads)
endfunction()

mc_reg_test(test_semver test_semver.c)
add_test(NAME registry_semver COMMAND test_semver)

mc_reg_test(test_names test_names.c)
add_test(NAME registry_names COMMAND test_names)

set_tests_properties(registry_semver registry_names PROPERTIES TIMEOUT 120)
