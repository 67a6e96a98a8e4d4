/*
 * deploy.h - progressive rollouts run by mcached: direct, blue-green and
 * canary deployments, driven by a timer in the event loop, with automatic
 * rollback (docs/deployments.md).
 *
 * The rollout's state is the registry's (mc_reg_deploy): strategy, steps,
 * interval, thresholds, the alias's targets when it began (`from`), the
 * current step and state. Every decision is one registry record
 * (mc_registry_deploy_update), and an alias move with it is in the same
 * record, so a crash leaves a rollout before or after a step, never
 * between. mcached keeps only what it can rebuild: the serving counters of
 * both versions when the step's interval began (a restart takes them
 * anew: the interval in progress starts over, the step stays).
 *
 * Each interval the new version is compared with the one it replaces (the
 * highest weight of `from`) over that interval, from the serving statistics
 * workers report (mc_report, loader/stats.h):
 *   - fewer than min_requests to the new version: hold (counts accumulate);
 *   - its error rate above max_error_rate, or its p99 above max_p99_ratio
 *     times the old one's: roll back: the alias returns to `from` in one
 *     record, state rolled-back, the reason in history, log and alerts;
 *   - else advance to the next step (gated: health check first); reaching
 *     the last step (100) completes a canary. A blue-green deploy switches
 *     at once and is watched for one interval; direct switches and is done.
 */
#ifndef MCACHE_LOADER_DEPLOY_H
#define MCACHE_LOADER_DEPLOY_H

#include <stdbool.h>

struct daemon;
struct mc_conn;
struct mc_request;

/* At start: log the rollouts the registry says are running (they continue). */
void deploy_start(struct daemon *d);

/* The tick: health checks, gates, alert hooks, and every running rollout. */
void deploy_tick(struct daemon *d);

/* Shutdown: stop checks and gates, let alert hooks finish (a second at most). */
void deploy_stop(struct daemon *d);

/* `deploy JSON`: begin a rollout; answered once its first step is applied or refused. */
void deploy_op_begin(struct daemon *d, struct mc_conn *c, const struct mc_request *rq);

/* `deploy-ctl pause|resume|abort NAME [ALIAS]`. */
void deploy_op_ctl(struct daemon *d, struct mc_conn *c, const struct mc_request *rq);

/* A client closed: forget it where it waited for an answer. True if it was ours. */
bool deploy_conn_closed(struct daemon *d, struct mc_conn *c);

#endif
