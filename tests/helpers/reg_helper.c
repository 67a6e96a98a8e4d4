/*
 * reg_helper.c - a registry client run as a separate process by the crash
 * and concurrency tests (exec'd, never just forked, so it shares nothing
 * with the test but the store on disk).
 *
 *   reg_helper push STORE NAME VERSION FILE [slow]
 *       push one file; "slow" sleeps 2 ms per progress report
 *   reg_helper pushmany STORE NAME COUNT FILE
 *       push versions 1.0.I of NAME, I = 0..COUNT-1; print each generation
 *   reg_helper rm STORE NAME VERSION
 *   reg_helper rmmodel STORE NAME
 *   reg_helper alias STORE NAME ALIAS REF | V=W...  (a plain or weighted alias)
 *   reg_helper compact STORE
 *
 * With MCACHE_CRASH_AT=<point> the library kills this process at that
 * point. Exit status: 0 done, 1 the operation failed (message on stderr).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "registry/registry.h"

static int slow_progress(void *arg, uint64_t done, uint64_t total)
{
    (void)arg;
    (void)done;
    (void)total;
    usleep(2000);
    return 0;
}

static int fail(const char *what, int rc)
{
    fprintf(stderr, "reg_helper: %s: %s (%d)\n", what, mc_last_error(), rc);
    return 1;
}

int main(int argc, char **argv)
{
    struct mc_registry_opts opts = {.flags = MC_REGISTRY_CREATE};
    struct mc_registry *r;
    const char *cmd = argc > 2 ? argv[1] : "";
    uint64_t gen = 0;
    int rc;

    if (argc < 3) {
        fprintf(stderr, "usage: reg_helper push|pushmany|rm|rmmodel|alias|compact STORE ...\n");
        return 2;
    }
    rc = mc_registry_open(argv[2], &opts, &r);
    if (rc)
        return fail("open", rc);
    if (!strcmp(cmd, "push") && argc >= 6) {
        struct mc_push_opts po = {0};

        if (argc > 6 && !strcmp(argv[6], "slow"))
            po.progress = slow_progress;
        rc = mc_registry_push(r, argv[3], argv[4], argv[5], &po, &gen);
    } else if (!strcmp(cmd, "pushmany") && argc >= 6) {
        long n = atol(argv[4]);

        for (long i = 0; rc == 0 && i < n; i++) {
            char version[32];

            snprintf(version, sizeof(version), "1.0.%ld", i);
            rc = mc_registry_push(r, argv[3], version, argv[5], NULL, &gen);
            if (rc == 0)
                printf("%llu\n", (unsigned long long)gen);
        }
    } else if (!strcmp(cmd, "rm") && argc >= 5) {
        rc = mc_registry_remove_version(r, argv[3], argv[4], true, &gen);
    } else if (!strcmp(cmd, "rmmodel") && argc >= 4) {
        rc = mc_registry_remove_model(r, argv[3], true, &gen);
    } else if (!strcmp(cmd, "alias") && argc >= 6) {
        struct mc_reg_weight t[MC_ALIAS_TARGETS_MAX];
        size_t n = 0;

        /* One REF, or weighted targets "1.0.0=90" "2.0.0=10". */
        rc = mc_reg_targets_parse((const char *const *)argv + 5, (size_t)(argc - 5), t, &n);
        if (rc == 0)
            rc = mc_registry_alias_set_weighted(r, argv[3], argv[4], t, n, NULL, &gen);
    } else if (!strcmp(cmd, "compact")) {
        rc = mc_registry_compact(r);
    } else {
        fprintf(stderr, "reg_helper: bad command\n");
        mc_registry_close(r);
        return 2;
    }
    if (rc) {
        mc_registry_close(r);
        return fail(cmd, rc);
    }
    fflush(stdout);
    mc_registry_close(r);
    return 0;
}
