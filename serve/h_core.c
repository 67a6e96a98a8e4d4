/*
 * h_core.c - the server's own routes: GET /healthz (the process answers),
 * GET /readyz (it can do its work: the registry reads, and a shared
 * registry's database answers, the arena is attached, mcached answers),
 * GET /metrics (Prometheus).
 */
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "serve/core.h"
#include "serve/h_api.h"
#include "tools/ctl_client.h"

#define READY_CTL_TIMEOUT_MS 1000 /* a probe answers in time or says "not ready" */

static int h_healthz(struct req *rq)
{
    char v[32];

    snprintf(v, sizeof(v), "%d.%d.%d", MCACHE_VERSION_MAJOR, MCACHE_VERSION_MINOR,
             MCACHE_VERSION_PATCH);
    return reply_json(rq, 200, json_pack("{s:b, s:s}", "ok", 1, "version", v));
}

/* One check's result in checks: "ok", or why not (the first failure also goes to failed). */
static void check(json_t *checks, const char *name, int rc, char *failed, size_t len)
{
    const char *m = mc_last_error();

    if (rc == 0) {
        json_object_set_new(checks, name, json_string("ok"));
        return;
    }
    if (!m || !*m)
        m = mc_strerror(rc);
    json_object_set_new(checks, name, json_string(m));
    if (!failed[0])
        snprintf(failed, len, "%s: %s", name, m);
}

static int h_readyz(struct req *rq)
{
    struct srv *s = rq->srv;
    json_t *checks = json_object(), *ans = NULL;
    char failed[2048] = "";
    mc_cache *mc;
    int rc;

    char down[1536];

    rc = srv_lock(s);
    if (rc == 0) { /* one look: the handle may be swapped (a replica's, reopened) after it */
        if (srv_registry_down(s, down, sizeof(down)))
            rc = mc_err(MC_EIO, "%s", down);
        srv_unlock(s);
    }
    check(checks, "registry", rc, failed, sizeof(failed));
    mc = srv_cache_hold(s);
    rc = mc ? 0 : MC_ENOENT;
    srv_cache_put(s, mc);
    check(checks, "arena", rc, failed, sizeof(failed));
    rc = cli_ctl_call(&s->cli, "ping", 0, NULL, READY_CTL_TIMEOUT_MS, &ans);
    json_decref(ans);
    check(checks, "mcached", rc, failed, sizeof(failed));
    if (failed[0]) {
        json_t *j = json_pack("{s:b, s:o, s:{s:s, s:s, s:i}}", "ready", 0, "checks", checks,
                              "error", "code", "unavailable", "message", failed, "status", 503);

        srv_log("not ready: %s", failed);
        return reply_json(rq, 503, j);
    }
    return reply_json(rq, 200, json_pack("{s:b, s:o}", "ready", 1, "checks", checks));
}

static int h_metrics(struct req *rq)
{
    size_t len = 0;
    char *text = metrics_render(rq->srv, &len);
    struct MHD_Response *resp;

    if (!text)
        return reply_error(rq, 500, "internal", "out of memory writing the metrics");
    resp = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(text);
        return reply_error(rq, 500, "internal", "out of memory writing the metrics");
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                            "text/plain; version=0.0.4; charset=utf-8");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    return reply_response(rq, 200, resp);
}

const struct route h_core_routes[] = {
    {"GET", "/healthz", ROLE_NONE, ROUTE_OPEN, h_healthz, NULL, NULL,
     "Liveness: the process answers"},
    {"GET", "/readyz", ROLE_NONE, ROUTE_OPEN, h_readyz, NULL, NULL,
     "Readiness: the registry reads, the arena is attached, mcached answers (503 naming what "
     "failed)"},
    {"GET", "/metrics", ROLE_READER, 0, h_metrics, NULL, NULL,
     "Prometheus metrics: HTTP requests, latencies, the cache's state"},
    {0},
};
