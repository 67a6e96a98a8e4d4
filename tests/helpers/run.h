/*
 * run.h - what every cmocka program's main() does before cmocka runs a
 * group: MC_TEST_FILTER=PATTERN runs only the tests whose names it matches
 * (cmocka's * and ?), e.g.
 *
 *   MC_TEST_FILTER='test_rebuild*' ctest -R index_table
 *
 * Header only: the pure-function tests include it without testutil.h.
 */
#ifndef MCACHE_TESTS_RUN_H
#define MCACHE_TESTS_RUN_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#define MC_TEST_FILTER_FROM_ENV()                                                                  \
    do {                                                                                           \
        if (getenv("MC_TEST_FILTER"))                                                              \
            cmocka_set_test_filter(getenv("MC_TEST_FILTER"));                                      \
    } while (0)

#endif
