/*
 * jsonout.h - the JSON objects `mcache --json` prints (schemas in
 * docs/cli.md): a version, an alias move, times; and printing them.
 *
 * Stability: fields are only ever added, never renamed, removed or given
 * another type. Optional strings are null when unset, sizes are bytes,
 * times are integer nanoseconds since the Unix epoch ("*_ns") with an
 * ISO 8601 UTC copy ("*_at"), durations are seconds.
 */
#ifndef MCACHE_TOOLS_JSONOUT_H
#define MCACHE_TOOLS_JSONOUT_H

#include <jansson.h>

#include "tools/cli.h"

/* A version with all its metadata, its aliases, and residency (a string or NULL). */
json_t *jv_version(const struct mc_reg_model *m, const struct mc_reg_version *v,
                   const char *residency);

/*
 * The alias moves of model m, oldest first (by generation): all of them, or
 * only alias's (alias non-NULL), or only those from or to version (non-NULL).
 */
json_t *jv_moves(const struct mc_reg_model *m, const char *alias, const char *version);

/*
 * Shared by the CLI's --json and mcache-serve's REST answers (one place each):
 * a model's aliases as `mcache show NAME` lists them, a removed version (rm,
 * gc), a rollout (deploy, deployments), an alias snapshot (snapshot ls), an
 * alert (alerts), one version's serving statistics with only the documented
 * keys (stats, compare: from mcached's answer).
 */
json_t *jv_aliases(const struct mc_reg_model *m);
json_t *jv_removed(const struct mc_reg_version *v);
json_t *jv_deploy(const struct mc_reg_deploy *x);
json_t *jv_snapshot(const struct mc_reg_snapshot *s, bool entries);
json_t *jv_alert(const struct mc_reg_alert *x);
json_t *jv_stats_version(const json_t *v);
/* An audit entry (audit) and a token without its hash (token ls). */
json_t *jv_audit(const struct mc_reg_audit *x);
json_t *jv_token(const struct mc_reg_token *t);

/*
 * Restore snapshot sname (refused by cli_snapshot_gate() unless no_gate):
 * *out = {"name", "action": "restore", "moves": [{"name","alias","from","to"}],
 * "generation"}, the aliases that moved. MC_ENOENT if there is no such snapshot.
 */
int cli_snapshot_restore(struct mc_registry *r, const char *sname, bool no_gate, json_t **out);

/* "2024-05-01T12:34:56.123Z" */
json_t *jv_time(uint64_t ns);

/* A string, or null for NULL. */
json_t *jv_str(const char *s);

/* Print j on stdout, indented, with a final newline; consumes j. */
void jv_print(json_t *j);

/* Names of the aliases pointing at v, comma-separated, into buf ("" if none). */
const char *aliases_of(const struct mc_reg_model *m, const struct mc_reg_version *v, char *buf,
                       size_t len);

/* The strings of a JSON array joined by sep, into buf (truncated to fit). */
const char *jv_join(const json_t *arr, const char *sep, char *buf, size_t len);

/* What a move did: "create", "move", "remove" or "rollback". */
const char *move_action(const struct mc_reg_move *mv);

/* Members of a JSON object: 0, NULL or def when absent or of another type. */
long long jint(const json_t *o, const char *key);
double jnum(const json_t *o, const char *key);
const char *jstr(const json_t *o, const char *key);
const char *jstr_or(const json_t *o, const char *key, const char *def);
/* The member (borrowed), or JSON null if absent. */
json_t *jget(const json_t *o, const char *key);

#endif
