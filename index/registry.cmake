# index/registry.cmake: the registry (store, manifest, semantic versions,
# aliases, retention, search). Included by index/CMakeLists.txt.

# Semantic versions, ranges and name checks: pure C, no allocation on the
# version path, no jansson. Compiled into libmcache (the reader library).
set(MCACHE_SEMVER_SOURCES ${CMAKE_CURRENT_LIST_DIR}/semver.c ${CMAKE_CURRENT_LIST_DIR}/name.c)

set(MCACHE_REGISTRY_SOURCES)
foreach(src crc32c.c manifest.c reg_json.c registry.c reg_apply.c reg_ops.c store.c search.c)
  if(EXISTS ${CMAKE_CURRENT_LIST_DIR}/${src})
    list(APPEND MCACHE_REGISTRY_SOURCES ${CMAKE_CURRENT_LIST_DIR}/${src})
  endif()
endforeach()

# The registry library for the CLI and the daemon. Semantic versions and
# error reporting come from libmcache's static archive.
add_library(mcache_registry STATIC ${MCACHE_REGISTRY_SOURCES})
target_link_libraries(mcache_registry PUBLIC mcache_static PkgConfig::JANSSON PkgConfig::XXHASH)

# The same with crash points compiled in (MCACHE_CRASH_AT=<point> kills the
# process there), for the crash tests only.
add_library(mcache_registry_crash STATIC ${MCACHE_REGISTRY_SOURCES})
target_compile_definitions(mcache_registry_crash PRIVATE MC_REGISTRY_CRASHPOINTS)
target_link_libraries(mcache_registry_crash PUBLIC mcache_static PkgConfig::JANSSON
                      PkgConfig::XXHASH)
