/*
 * cli.h - what every part of `mcache`, the operator CLI, shares: the
 * invocation (which store, cache, socket; --json, --quiet), the exit codes,
 * the command table, and turning an MC_E* code into a message and an exit
 * status.
 *
 * A command is a `struct cli_cmd` in one of the cmd_*.c files: its name,
 * synopsis, help text with examples, option table and run function. The run
 * function returns the process's exit status; on an error it returns
 * cli_error(rc), which prints "mcache: <message>" on stderr.
 */
#ifndef MCACHE_TOOLS_CLI_H
#define MCACHE_TOOLS_CLI_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "registry/registry.h"
#include "tools/args.h"

/* Exit statuses (docs/cli.md). */
#define EXIT_OK       0 /* done */
#define EXIT_FAIL     1 /* failed (I/O, refused, damaged, verify mismatch, problems found) */
#define EXIT_USAGE    2 /* bad command line or a malformed name, version, reference, value */
#define EXIT_NOTFOUND 3 /* no such store, model, version, alias, file or arena */
#define EXIT_NODAEMON 4 /* the command needs mcached and it is not reachable */

struct cli {
    const char *store;   /* --store, $MCACHE_STORE, ./mcache-data */
    const char *cache;   /* --cache, $MCACHE_CACHE, default */
    const char *shm_dir; /* --shm-dir, $MCACHE_SHM_DIR, /dev/shm */
    const char *socket;  /* --socket, or NULL: the arena header's, else the default */
    /*
     * --registry, $MCACHE_REGISTRY, or NULL: where the registry's metadata is
     * when it is shared (postgres://...); NULL: the store's own journal.
     */
    const char *registry;
    const char *artifacts; /* --artifacts, $MCACHE_ARTIFACTS, or NULL: the store's models/ */
    /* --artifacts-creds, $MCACHE_ARTIFACTS_CREDS, or NULL: the AWS_* variables (a path only) */
    const char *artifacts_creds;
    bool json;           /* --json: machine output on stdout */
    bool quiet;          /* --quiet: no progress bar, no chatter */
    uint64_t now_ns;     /* $MCACHE_NOW (seconds) or the clock: "now" for ages and gc */
    /* Where store and cache came from, for messages: "--store", "MCACHE_STORE"... */
    const char *store_from, *cache_from;
    const struct cli_cmd *cmd;
};

struct cli_cmd {
    const char *name;
    const char *synopsis; /* after "mcache NAME ": "NAME VERSION FILE [OPTIONS]" */
    const char *summary;  /* one line, for `mcache --help` */
    const char *help;     /* what it does, then EXAMPLES */
    const struct opt_spec *opts;
    unsigned min_pos, max_pos;
    int (*run)(struct cli *c, struct args *a);
};

/* The commands, in the order `mcache --help` lists them. */
extern const struct cli_cmd cmd_init, cmd_push, cmd_ls, cmd_show, cmd_alias, cmd_rollback,
    cmd_history, cmd_rm, cmd_gc, cmd_fsck, cmd_verify, cmd_load, cmd_evict, cmd_pin, cmd_unpin,
    cmd_stat, cmd_stats, cmd_compare, cmd_snapshot;
/* Deployments (issue 13): cmd_health.c, cmd_deploy.c, cmd_alerts.c. */
extern const struct cli_cmd cmd_health, cmd_deploy, cmd_deployments, cmd_alerts;
/* mcache-serve's tokens and the audit log (issue 14): cmd_token.c, cmd_audit.c. */
extern const struct cli_cmd cmd_token, cmd_audit;
/* The fleet (issue 15): the registry database's schema, cmd_db.c. */
extern const struct cli_cmd cmd_db;

/* The exit status for an MC_E* code. */
int cli_exit_code(int rc);

/* Print "mcache: " and mc_last_error() (or the code's text) on stderr; the exit status. */
int cli_error(int rc);

/* A usage error for the running command: message, hint to --help; returns EXIT_USAGE. */
int cli_usage(const struct cli *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * Open the store. write: a command that changes it (takes cleanup duties);
 * create: make it if missing (push). A missing store is MC_ENOENT with a
 * message saying where the path came from and how to choose another.
 */
/* The registry options of this invocation (--registry, --artifacts, --artifacts-creds). */
struct mc_registry_opts cli_registry_opts(const struct cli *c, unsigned flags);
int cli_open_store(const struct cli *c, bool write, bool create, struct mc_registry **out);

/*
 * The model called name, or NULL with *rc MC_EINVAL (not a valid name) or
 * MC_ENOENT (no such model), and the message set.
 */
const struct mc_reg_model *cli_model(struct mc_registry *r, const char *name, int *rc);

/*
 * Split "NAME@REF" into name and ref (ref NULL if there is no '@'). buf
 * holds the copy. MC_EINVAL if it is too long or a part is empty.
 */
int cli_split_ref(const char *arg, char *buf, size_t len, const char **name, const char **ref);

/*
 * The canonical text of the current targets of name's alias into buf
 * (mc_reg_targets_format(): "1.0.0", "1.0.0=90 2.0.0=10"); buf, or NULL
 * (buf "") when there is no such model or alias or it was removed.
 */
const char *cli_alias_targets(struct mc_registry *r, const char *name, const char *alias, char *buf,
                              size_t len);

/*
 * Whether an audit entry's what names model: one of its words is NAME or
 * starts with "NAME@" (a token's entry names a token, never a model).
 */
bool cli_audit_names(const char *what, const char *model);

/* The snapshot called sname, or NULL. */
const struct mc_reg_snapshot *cli_snapshot_find(struct mc_registry *r, const char *sname);

/*
 * A restore is one record for every alias, so it cannot run a health check
 * per version the way mcached's gate does: MC_EINVAL (naming the first such
 * alias) when restoring s would move an alias of a model with a check.
 */
int cli_snapshot_gate(struct mc_registry *r, const struct mc_reg_snapshot *s, const char *sname);

/* Parse a non-negative integer option value; MC_EINVAL naming the option. */
int cli_parse_uint(const char *opt, const char *v, uint64_t max, uint64_t *out);
/* The same for min..max, one message for every bad value ("from MIN to MAX"). */
int cli_parse_range(const char *opt, const char *v, uint64_t min, uint64_t max, uint64_t *out);

/* The user name for a uid ("uid 1234" if unknown), in buf. */
const char *cli_user_name(uint32_t uid, char *buf, size_t len);

/* Seconds on the monotonic clock (for "took ... s"). */
double cli_mono_s(void);

/*
 * SIGINT/SIGTERM seen: a long push or verify stops cleanly at its next
 * chunk. cli_catch_signals() installs the handler (a second signal kills).
 */
extern volatile sig_atomic_t cli_interrupted;
void cli_catch_signals(void);

#endif
