/*
 * h_api.h - what the REST handlers (h_registry.c, h_artifacts.c, h_cache.c,
 * h_admin.c) share: strict JSON bodies, a model looked up with the right
 * error, residency, calls to mcached.
 */
#ifndef MCACHE_SERVE_H_API_H
#define MCACHE_SERVE_H_API_H

#include "serve/http.h"

/*
 * Refuse members of obj not in allowed (NULL-terminated): 400 unknown_field
 * naming the first and listing the allowed ones. true if it replied (*ret:
 * what the handler returns).
 */
bool api_unknown_fields(struct req *rq, const json_t *obj, const char *const *allowed, int *ret);

/*
 * A member of the JSON body of the wrong type: 400 bad_request naming the
 * field and the type wanted. Returns what reply_error returns.
 */
int api_bad_type(struct req *rq, const char *field, const char *want);

/*
 * With the registry locked: the model called name, or NULL after replying
 * 400 (not a valid name) or 404 (no such model).
 */
const struct mc_reg_model *api_model(struct req *rq, const char *name, int *ret);
/*
 * srv_lock() and api_model() of the path's {name}: the model with the
 * registry locked, or NULL with the lock released and the error replied (*ret).
 */
const struct mc_reg_model *api_lock_model(struct req *rq, int *ret);

/* Where name@version stands in the arena (jv_version's residency): "resident", ... */
const char *api_residency(struct srv *s, const char *name, const char *version);

/* A version's JSON with its residency (registry locked). */
json_t *api_version(struct srv *s, const struct mc_reg_model *m, const struct mc_reg_version *v);

/*
 * Call mcached (cli_ctl_call on srv->cli); on failure reply with the error
 * (503 no_daemon when none runs) and return false; *out owned by the caller.
 */
bool api_ctl(struct req *rq, const char *op, unsigned nargs, const char *const *args, int timeout_ms,
             json_t **out, int *ret);

/*
 * How long a handler waits for mcached (docs/http.md, "How long a request
 * waits"): a load without timeout_s API_LOAD_WAIT_MS; a gated change (alias,
 * deploy) API_LOAD_WAIT_MS for its loads plus checks times the model's
 * health timeout; each plus API_CTL_MARGIN_MS. No wait is unbounded.
 */
#define API_LOAD_WAIT_MS  300000
#define API_CTL_MARGIN_MS 5000
int api_gated_timeout_ms(struct srv *s, const char *name, size_t checks);

/* Lock the registry, set the request's actor; false (after replying) if it cannot be read. */
bool api_lock_actor(struct req *rq, int *ret);

/* Split a comma-separated query value into at most max words (copies in buf). */
size_t api_split(const char *s, char *buf, size_t len, const char **out, size_t max);

/*
 * A whole-number query argument, min..max; absent: *out untouched, true.
 * false after replying 400 naming the argument and the range.
 */
bool api_query_uint(struct req *rq, const char *key, uint64_t min, uint64_t max, uint64_t *out,
                    int *ret);

/* The value of a boolean query argument, replying 400 on a bad one; -1 if it replied. */
int api_query_bool(struct req *rq, const char *key, bool def, int *ret);

/*
 * Is the shared registry's database out of reach (server.c)? 1 with a
 * sentence in buf (what failed, what is still answered, what to do), or 0
 * with buf empty: mcache-serve started from this host's replica (read-only
 * until restarted), or the database stopped answering since (reads from
 * the last state, changes refused until it answers). Either lock state.
 */
int srv_registry_down(struct srv *s, char *buf, size_t len);

/*
 * The object store's copy of the artifact with this checksum hashed wrong
 * (bad) or right (h_artifacts.c): downloads of a bad one from the store are
 * refused for a while (422), since a resumed download's Range is unchecked.
 */
void srv_artifact_mark(const char *checksum, bool bad);

#endif
