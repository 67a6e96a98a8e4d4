/*
 * gate.h - gated alias moves in mcached: before an alias moves to a set of
 * targets (a plain move, a blue-green switch, a rollout step), every
 * target is loaded and verified, and each version whose weight grows
 * passes its health check (the deploy's, else the model's from the
 * registry). Only then does the caller write the registry; the arena
 * follows on the next sync. A refusal carries what refused it: the load's
 * error, or the check's exit status and the tail of its output.
 *
 * Nothing waits in place: a gate is a small state machine advanced by the
 * 100 ms tick (loads) and by its health checks' completions.
 */
#ifndef MCACHE_LOADER_GATE_H
#define MCACHE_LOADER_GATE_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "loader/health.h"
#include "registry/registry.h"

struct daemon;
struct mc_conn;
struct mc_request;

struct gate_target {
    char version[256];
    uint32_t weight;
    bool check; /* run the health check on it (its weight grows) */
};

struct gate_spec {
    char name[256], alias[256];
    struct gate_target t[MC_ALIAS_TARGETS_MAX];
    size_t n;
    char **health_argv; /* the deploy's own check (copied), or NULL: the model's */
    size_t health_argc;
    uint32_t health_timeout_ms;
};

/*
 * Called once when the gate ends: rc 0 passed (write the registry now), else
 * a code and msg (the reason). checks: a JSON array of the checks run
 * ({version, command, outcome, status, ms, output}), borrowed.
 */
typedef void (*gate_done_fn)(struct daemon *d, void *ctx, int rc, const char *msg, json_t *checks);

struct gate {
    struct gate_spec s;
    size_t next_check;      /* index in s.t of the next target to check */
    struct health_run *run; /* the check running, if any */
    json_t *checks;
    gate_done_fn done;
    void *ctx;
    struct mc_conn *conn; /* a client waiting for the answer (NULL: the engine) */
    char *why;            /* for the registry's history (alias op) */
    struct gate *next;
};

/*
 * Mark which targets are new or grow against the alias's current targets
 * in the registry (t[i].check); versions are exact.
 */
void gate_mark_growing(struct daemon *d, struct gate_spec *s);

/*
 * Start a gate (spec is copied). done is called later, from the tick or a
 * check's end, never from here (but at once, with NULL returned, when out
 * of memory).
 */
struct gate *gate_start(struct daemon *d, const struct gate_spec *s, struct mc_conn *conn,
                        gate_done_fn done, void *ctx);

/* Cancel a gate: its check is killed, done is not called, the caller owns ctx. */
void gate_cancel(struct daemon *d, struct gate *g);

/* Advance gates waiting for loads (the tick). */
void gate_tick(struct daemon *d);

/* A client closed: its gates are cancelled (their checks killed). True if c had one. */
bool gate_conn_closed(struct daemon *d, struct mc_conn *c);

/* Shutdown: cancel everything, answering waiting clients. */
void gate_stop_all(struct daemon *d);

/* The `alias` control op: NAME ALIAS TARGETS [WHY [WHO [FROM]]] (WHO, FROM: the actor recorded). */
void gate_op_alias(struct daemon *d, struct mc_conn *c, const struct mc_request *rq);

/* Free a spec's copied health command. */
void gate_spec_free(struct gate_spec *s);

#endif
