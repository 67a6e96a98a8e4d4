/*
 * mcd.h - a real mcached driven by the bench: started and stopped as an
 * operator would, talked to over its control socket as the CLI does.
 *
 * Each daemon gets its own store, cache name (bench-<pid>-<tag>), base
 * address, shm directory (the run's private one in --shm-dir) and socket,
 * so nothing the bench does touches a cache anyone else uses. Its log goes
 * to a file in the run's --tmp-dir directory (printed when something goes
 * wrong), and its process is registered with cleanup.c like every worker.
 */
#ifndef MCACHE_BENCH_MCD_H
#define MCACHE_BENCH_MCD_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct bench;

#define MCD_MAX_ARGS 24

struct mcd {
    char bin[1024];  /* the mcached executable */
    char store[600]; /* --store */
    char cache[64];  /* --cache */
    char sock[600];  /* --socket */
    char log[700];   /* its stderr, appended across starts */
    char arena[700]; /* the arena file it creates in --shm-dir */
    char opt[8][64]; /* storage for option values */
    const char *argv[MCD_MAX_ARGS];
    int argc; /* argv[0..argc) without --recreate */
    pid_t pid;
    int fd; /* control connection, -1 if none */
    int exit_status;
};

/*
 * Find mcached: $MCACHED, else next to this program's build
 * (<dir>/../loader/mcached), else beside it (<dir>/mcached, installed),
 * else on $PATH. 0, or an error saying where it looked.
 */
int mcd_find(struct bench *b, char *bin, size_t len);

/*
 * Prepare a daemon for store (created by the daemon if missing) with an
 * arena of size bytes (index_size: 0 for the daemon's default). extra:
 * further options, NULL-terminated (e.g. "--preload", "off"), or NULL.
 */
int mcd_init(struct bench *b, struct mcd *d, const char *tag, const char *store, uint64_t size,
             uint64_t index_size, const char *const *extra);

/*
 * Exec it (recreate: with --recreate; more: further options for this start
 * only, NULL-terminated, or NULL); returns at once.
 */
int mcd_start(struct mcd *d, bool recreate, const char *const *more);

/*
 * Connect and ping until it answers, up to timeout_ms; keeps the connection
 * in d->fd. Fails at once if the daemon exits (its log is printed).
 */
int mcd_wait_ping(struct mcd *d, int timeout_ms);

/*
 * One request on d->fd (connecting first if needed). *out (may be NULL)
 * gets the parsed JSON answer (json_decref it). Returns 0, or the daemon's
 * MC_E* status with its message printed as an error, or -1.
 */
int mcd_call(struct mcd *d, const char *op, unsigned nargs, const char *const *args, int timeout_ms,
             json_t **out);

/* An integer at "obj.key" of a JSON answer (e.g. "arena", "models_resident"); -1 if absent. */
long long mcd_json_int(json_t *j, const char *obj, const char *key);
double mcd_json_real(json_t *j, const char *obj, const char *key);

/* SIGTERM and wait (up to 30 s, then SIGKILL); 0 if it exited 0. */
int mcd_stop(struct mcd *d);

/* SIGKILL and reap (a crash). */
void mcd_kill(struct mcd *d);

/* Stop it if running and remove its arena, reader table, lock and socket. */
void mcd_drop(struct mcd *d);

/* Print the last lines of its log on stderr. */
void mcd_log_tail(const struct mcd *d, int lines);

#endif
