/*
 * verify_core.h - one artifact's bytes hashed against its registered
 * checksum, wherever they are: `mcache verify` (cmd_verify.c) and
 * mcache-serve's POST .../verify (serve/h_admin.c) share it.
 */
#ifndef MCACHE_TOOLS_VERIFY_CORE_H
#define MCACHE_TOOLS_VERIFY_CORE_H

#include <stdbool.h>
#include <stddef.h>
#include <xxhash.h>

#include "registry/registry.h"

struct cli_verify {
    /* in (all may be NULL) */
    void (*progress)(void *arg, size_t n); /* after each chunk hashed */
    bool (*stop)(void *arg);               /* true: give up ("interrupted", an error) */
    void *arg;
    /* out */
    const char *result; /* "ok", "mismatch", "missing" or "error" */
    char actual[64];    /* the hash ("xxh3-128:..."), "" when none was computed */
    double seconds;
    char message[2048]; /* a sentence for anything but "ok", naming the version and what to do */
};

/*
 * Hash v's artifact: a local file read to its end (whatever the manifest's
 * size), or the object store's object through mc_registry_artifact_read
 * (parallel ranged GETs, the very bytes mcached would load). Uses only v's
 * name, version, path, checksum and size, and reg's artifact store, which
 * an artifact read needs no lock for.
 */
void cli_verify_artifact(struct mc_registry *reg, const struct mc_reg_version *v,
                         struct cli_verify *out);

/* st's digest as the registry writes a checksum: "xxh3-128:" and 32 lowercase hex (out[64]). */
void cli_xxh3_checksum(XXH3_state_t *st, char *out);

#endif
