/*
 * test_evict.c - room in the arena: LRU eviction that respects aliases, pins
 * and holds; what can never load (a FIFO, a model larger than the arena)
 * refused at once, evicting nothing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "tests/helpers/run.h"
#include "tests/helpers/testutil.h"
#include "tests/loader/daemon_fixture.h"

static void test_lru_respects_alias_pin_hold(void **state)
{
    const char *small[] = {"--size", "64M", "--index-size", "4M", NULL};
    const uint64_t MB = 1u << 20;
    char *body = NULL;

    (void)state;
    const char *names[] = {"A", "B", "C", "D", "E", "F", "G"};
    for (int i = 0; i < 7; i++)
        push(names[i], "1.0.0", 10 * MB, (uint32_t)(100 + i));
    push("H", "1.0.0", 40 * MB, 107);
    assert_int_equal(mc_registry_alias_set(D.reg, "A", "prod", "1.0.0", NULL), 0);
    daemon_start_args(small);
    for (int i = 0; i < 500 && strcmp(model_state("A", "1.0.0"), "resident"); i++)
        sleep_ms(10);
    assert_string_equal(model_state("A", "1.0.0"), "resident"); /* aliased: preloaded */
    assert_int_equal(ctl(NULL, "pin", 2, "B", "1.0.0"), 0);
    for (int i = 0; i < 500 && strcmp(model_state("B", "1.0.0"), "resident"); i++)
        sleep_ms(10);
    assert_int_equal(ctl(NULL, "load", 2, "C", "1.0.0"), 0);
    FILE *hin, *hout;
    pid_t holder = holder_start("C", "1.0.0", &hin, &hout);
    sleep_ms(1200); /* C is now the most recently used (held) */
    assert_int_equal(ctl(NULL, "load", 2, "D", "1.0.0"), 0);
    sleep_ms(20);
    assert_int_equal(ctl(NULL, "load", 2, "E", "1.0.0"), 0);
    /* Full: F evicts the least recently used unprotected model, D. */
    assert_int_equal(ctl(NULL, "load", 2, "F", "1.0.0"), 0);
    assert_string_equal(model_state("D", "1.0.0"), "registered");
    assert_string_equal(model_state("E", "1.0.0"), "resident");
    assert_int_equal(ctl(NULL, "load", 2, "G", "1.0.0"), 0);
    assert_string_equal(model_state("E", "1.0.0"), "registered");
    const char *kept[] = {"A", "B", "C", "F", "G"};
    for (int i = 0; i < 5; i++)
        assert_string_equal(model_state(kept[i], "1.0.0"), "resident");
    /* 40 MiB cannot fit beside 30 MiB of protected models: a clear error. */
    assert_int_equal(ctl(&body, "load", 2, "H", "1.0.0"), MC_ENOSPC);
    assert_non_null(strstr(body, "no room for H@1.0.0"));
    free(body);
    for (int i = 0; i < 3; i++)
        assert_string_equal(model_state(kept[i], "1.0.0"), "resident");
    fclose(hin);
    fclose(hout);
    wait_status(holder);
    daemon_stop_clean();
}

/*
 * Refused without side effects: an artifact replaced by a FIFO (opening it
 * froze the daemon), and a model larger than the whole arena (it evicted
 * every model it could, then failed).
 */
static void test_unloadable_refused_at_once(void **state)
{
    const char *small[] = {"--size", "64M", "--index-size", "4M", NULL};
    const uint64_t MB = 1u << 20;
    char path[600], *body = NULL;

    (void)state;
    push("F", "1.0.0", MB, 5);
    push("S", "1.0.0", 8 * MB, 6);
    push("huge", "1.0.0", 80 * MB, 7);
    daemon_start_args(small);
    assert_int_equal(ctl(NULL, "load", 2, "S", "1.0.0"), 0);
    artifact_path("F", "1.0.0", path, sizeof(path));
    chmod(path, 0644);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(mkfifo(path, 0644), 0);
    assert_int_equal(ctl(&body, "load", 3, "F", "1.0.0", "10000"), MC_ECORRUPT);
    assert_non_null(strstr(body, "not a regular file"));
    free(body);
    assert_int_equal(ctl(NULL, "ping", 0), 0); /* still serving */
    assert_int_equal(ctl(&body, "load", 3, "huge", "1.0.0", "10000"), MC_ENOSPC);
    assert_non_null(strstr(body, "larger than the arena's whole data region"));
    free(body);
    assert_string_equal(model_state("S", "1.0.0"), "resident"); /* nothing evicted */
    daemon_stop_clean();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        DAEMON_TEST(test_lru_respects_alias_pin_hold),
        DAEMON_TEST(test_unloadable_refused_at_once),
    };

    MC_TEST_FILTER_FROM_ENV();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
