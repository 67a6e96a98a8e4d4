/*
 * metrics.c - GET /metrics's numbers: the HTTP requests this process
 * served (counters by route, method and status; a latency histogram by
 * route) and what mcached's `status` reports about the cache, in the
 * Prometheus text format 0.0.4.
 *
 * Routes are counted by pattern ("/v1/models/{name}"), never by path: the
 * label set stays as small as the route table however many models there are.
 */
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "serve/core.h"
#include "tools/ctl_client.h"

/* Seconds: from a cached metadata GET (~100 us) to a large download. */
static const double bounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                0.1,    0.25,  0.5,    1,     2.5,  5,     10};
#define NBOUNDS (sizeof(bounds) / sizeof(bounds[0]))

struct counter {
    const char *route, *method; /* static strings: a route's pattern, a method name */
    unsigned code;
    uint64_t n;
};

struct hist {
    const char *route;
    uint64_t buckets[NBOUNDS + 1]; /* the last is +Inf */
    double sum;
    uint64_t count;
};

struct srv_metrics {
    pthread_mutex_t lock;
    struct counter *c;
    size_t nc, capc;
    struct hist *h;
    size_t nh, caph;
};

struct srv_metrics *metrics_new(void)
{
    struct srv_metrics *m = calloc(1, sizeof(*m));

    if (m)
        pthread_mutex_init(&m->lock, NULL);
    return m;
}

void metrics_free(struct srv_metrics *m)
{
    if (!m)
        return;
    pthread_mutex_destroy(&m->lock);
    free(m->c);
    free(m->h);
    free(m);
}

/* The method as a static string (rq->method lives only as long as its request). */
static const char *method_const(const char *m)
{
    static const char *const known[] = {"GET", "HEAD", "PUT", "POST", "DELETE", "OPTIONS", "PATCH"};

    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
        if (!strcmp(m, known[i]))
            return known[i];
    return "other";
}

void metrics_observe(struct srv_metrics *m, const char *route, const char *method, unsigned code,
                     double seconds)
{
    struct counter *c = NULL;
    struct hist *h = NULL;

    if (!m)
        return;
    method = method_const(method);
    pthread_mutex_lock(&m->lock);
    for (size_t i = 0; i < m->nc && !c; i++)
        if (m->c[i].route == route && m->c[i].method == method && m->c[i].code == code)
            c = &m->c[i];
    if (!c && m->nc == m->capc) {
        size_t cap = m->capc ? m->capc * 2 : 64;
        struct counter *nc = realloc(m->c, cap * sizeof(*nc));

        if (nc)
            m->c = nc, m->capc = cap;
    }
    if (!c && m->nc < m->capc) {
        c = &m->c[m->nc++];
        *c = (struct counter){route, method, code, 0};
    }
    if (c)
        c->n++;
    for (size_t i = 0; i < m->nh && !h; i++)
        if (m->h[i].route == route)
            h = &m->h[i];
    if (!h && m->nh == m->caph) {
        size_t cap = m->caph ? m->caph * 2 : 32;
        struct hist *nh = realloc(m->h, cap * sizeof(*nh));

        if (nh)
            m->h = nh, m->caph = cap;
    }
    if (!h && m->nh < m->caph) {
        h = &m->h[m->nh++];
        memset(h, 0, sizeof(*h));
        h->route = route;
    }
    if (h) {
        size_t b = 0;

        while (b < NBOUNDS && seconds > bounds[b])
            b++;
        h->buckets[b]++;
        h->sum += seconds;
        h->count++;
    }
    pthread_mutex_unlock(&m->lock);
}

/* ---- the text ------------------------------------------------------------ */

struct out {
    char *p;
    size_t len, cap;
    bool failed;
};

static void put(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put(struct out *o, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (o->failed)
        return;
    for (;;) {
        va_start(ap, fmt);
        n = vsnprintf(o->p + o->len, o->cap - o->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            o->failed = true;
            return;
        }
        if ((size_t)n < o->cap - o->len) {
            o->len += (size_t)n;
            return;
        }
        {
            size_t cap = o->cap * 2 + (size_t)n;
            char *p = realloc(o->p, cap);

            if (!p) {
                o->failed = true;
                return;
            }
            o->p = p;
            o->cap = cap;
        }
    }
}

/* A label value with \, " and newline escaped (the format's rule). */
static const char *esc(const char *s, char *buf, size_t len)
{
    size_t o = 0;

    for (; *s && o + 3 < len; s++) {
        if (*s == '\\' || *s == '"') {
            buf[o++] = '\\';
            buf[o++] = *s;
        } else if (*s == '\n') {
            buf[o++] = '\\';
            buf[o++] = 'n';
        } else {
            buf[o++] = *s;
        }
    }
    buf[o] = '\0';
    return buf;
}

static void head(struct out *o, const char *name, const char *type, const char *help)
{
    put(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void http_metrics(struct out *o, struct srv_metrics *m)
{
    char b1[512], b2[16];

    pthread_mutex_lock(&m->lock);
    head(o, "mcache_http_requests_total", "counter",
         "HTTP requests answered, by route pattern, method and status code.");
    for (size_t i = 0; i < m->nc; i++)
        put(o, "mcache_http_requests_total{route=\"%s\",method=\"%s\",code=\"%u\"} %llu\n",
            esc(m->c[i].route, b1, sizeof(b1)), esc(m->c[i].method, b2, sizeof(b2)), m->c[i].code,
            (unsigned long long)m->c[i].n);
    head(o, "mcache_http_request_duration_seconds", "histogram",
         "Time from a request's headers to its reply's end, by route pattern.");
    for (size_t i = 0; i < m->nh; i++) {
        const struct hist *h = &m->h[i];
        uint64_t cum = 0;

        esc(h->route, b1, sizeof(b1));
        for (size_t b = 0; b < NBOUNDS; b++) {
            cum += h->buckets[b];
            put(o, "mcache_http_request_duration_seconds_bucket{route=\"%s\",le=\"%g\"} %llu\n", b1,
                bounds[b], (unsigned long long)cum);
        }
        cum += h->buckets[NBOUNDS];
        put(o, "mcache_http_request_duration_seconds_bucket{route=\"%s\",le=\"+Inf\"} %llu\n", b1,
            (unsigned long long)cum);
        put(o, "mcache_http_request_duration_seconds_sum{route=\"%s\"} %.9f\n", b1, h->sum);
        put(o, "mcache_http_request_duration_seconds_count{route=\"%s\"} %llu\n", b1,
            (unsigned long long)h->count);
    }
    pthread_mutex_unlock(&m->lock);
}

static double num(json_t *o, const char *path)
{
    char key[64];
    const char *p = path, *dot;
    json_t *v = o;

    while (v && (dot = strchr(p, '.'))) {
        snprintf(key, sizeof(key), "%.*s", (int)(dot - p), p);
        v = json_object_get(v, key);
        p = dot + 1;
    }
    v = v ? json_object_get(v, p) : NULL;
    return json_is_number(v) ? json_number_value(v) : json_is_boolean(v) ? json_is_true(v) : NAN;
}

/* One sample of a metric taken from mcached's status, if status has it. */
static void one(struct out *o, json_t *st, const char *path, const char *name, const char *type,
                const char *help)
{
    double v = num(st, path);

    if (isnan(v))
        return;
    head(o, name, type, help);
    put(o, "%s %.17g\n", name, v);
}

static void serving_metrics(struct out *o, struct srv *s, json_t *models);

static void cache_metrics(struct out *o, struct srv *s)
{
    json_t *st = NULL, *a;
    int rc = cli_ctl_call(&s->cli, "status", 0, NULL, 2000, &st);
    char b1[512], b2[128];
    size_t i, stalled = 0;

    head(o, "mcache_daemon_up", "gauge", "1 if mcached answered this scrape's status request.");
    put(o, "mcache_daemon_up %d\n", rc == 0);
    if (rc)
        return;
    one(o, st, "arena.size", "mcache_arena_size_bytes", "gauge", "The arena's size.");
    one(o, st, "arena.data_size", "mcache_arena_data_bytes", "gauge",
        "Arena bytes for model data.");
    one(o, st, "arena.data_used", "mcache_arena_data_used_bytes", "gauge",
        "Arena bytes of model data allocated.");
    one(o, st, "arena.data_free", "mcache_arena_data_free_bytes", "gauge",
        "Arena bytes for model data not allocated.");
    one(o, st, "arena.largest_free", "mcache_arena_largest_free_extent_bytes", "gauge",
        "The largest free extent: the biggest model that fits without eviction.");
    one(o, st, "arena.index_used", "mcache_arena_index_used_bytes", "gauge",
        "Arena bytes of the index in use.");
    one(o, st, "arena.models_resident", "mcache_resident_versions", "gauge",
        "Model versions resident in the arena.");
    one(o, st, "arena.generation", "mcache_arena_generation", "gauge",
        "The arena's generation (bumped on every publish, move and removal).");
    one(o, st, "loads.ok", "mcache_loads_total", "counter", "Loads that finished.");
    one(o, st, "loads.failed", "mcache_loads_failed_total", "counter", "Loads that failed.");
    one(o, st, "loads.bytes", "mcache_load_bytes_total", "counter", "Bytes loaded into the arena.");
    one(o, st, "loads.seconds", "mcache_load_seconds_total", "counter", "Time spent loading.");
    one(o, st, "loads.in_flight", "mcache_loads_in_flight", "gauge", "Loads running now.");
    one(o, st, "loads.queued", "mcache_loads_queued", "gauge", "Loads waiting to start.");
    one(o, st, "loads.evictions", "mcache_evictions_total", "counter", "Versions evicted.");
    one(o, st, "reclaim.pending_bytes", "mcache_reclaim_pending_bytes", "gauge",
        "Bytes retired but still held by readers.");
    one(o, st, "daemon.connections.requests", "mcache_control_requests_total", "counter",
        "Requests on mcached's control socket.");
    one(o, st, "daemon.connections.refused", "mcache_control_refused_total", "counter",
        "Control connections refused.");
    one(o, st, "daemon.connections.open", "mcache_control_connections", "gauge",
        "Connections open on mcached's control socket.");
    one(o, st, "daemon.registry_generation", "mcache_registry_generation", "gauge",
        "The registry generation mcached mirrors.");
    one(o, st, "daemon.uptime_s", "mcache_daemon_uptime_seconds", "gauge", "mcached's uptime.");
    one(o, st, "serving.tracked", "mcache_serving_tracked_versions", "gauge",
        "Versions whose serving statistics are tracked.");
    one(o, st, "serving.untracked_total", "mcache_serving_untracked_total", "counter",
        "Reports for versions beyond the tracked ones.");
    a = json_object_get(st, "readers");
    head(o, "mcache_readers", "gauge", "Reader processes' slots attached to the arena.");
    put(o, "mcache_readers %zu\n", json_is_array(a) ? json_array_size(a) : 0);
    a = json_object_get(json_object_get(st, "reclaim"), "stalls");
    stalled = json_is_array(a) ? json_array_size(a) : 0;
    head(o, "mcache_readers_stalled", "gauge",
         "Readers holding back reclamation for over a second.");
    put(o, "mcache_readers_stalled %zu\n", stalled);

    a = json_object_get(st, "models");
    if (json_is_array(a) && json_array_size(a)) {
        json_t *v;

        head(o, "mcache_version_bytes", "gauge", "Arena bytes of each version mcached knows.");
        json_array_foreach(a, i, v)
        {
            const char *n = json_string_value(json_object_get(v, "name"));
            const char *ver = json_string_value(json_object_get(v, "version"));
            const char *state = json_string_value(json_object_get(v, "state"));
            double size = num(v, "size");

            if (!n || !ver || isnan(size))
                continue;
            put(o, "mcache_version_bytes{model=\"%s\",version=\"%s\",state=\"%s\"} %.17g\n",
                esc(n, b1, sizeof(b1)), esc(ver, b2, sizeof(b2)), state ? state : "unknown", size);
        }
    }
    if (json_is_array(a))
        serving_metrics(o, s, a);
    json_decref(st);
}

#define SERVING_VERSIONS_MAX 256 /* one control request each: a scrape stays bounded */

/*
 * Per-version serving statistics (what workers report with mc_report), as
 * `mcache stats NAME@VERSION` shows them: totals since the version was
 * loaded (counters; a reload restarts them, which Prometheus' rate() takes
 * as a reset) and the last minute's latency quantiles (gauges).
 */
static void serving_metrics(struct out *o, struct srv *s, json_t *models)
{
    static const struct {
        const char *window, *key, *name, *type, *help;
        double scale;
    } f[] = {
        {"loaded", "requests", "mcache_serving_requests_total", "counter",
         "Requests workers reported for the version since it was loaded (mc_report).", 1},
        {"loaded", "errors", "mcache_serving_errors_total", "counter",
         "Failed requests workers reported for the version since it was loaded.", 1},
        {"loaded", "units", "mcache_serving_units_total", "counter",
         "Units (tokens, items) workers reported for the version since it was loaded.", 1},
        {"1m", "p50_ns", "mcache_serving_latency_p50_seconds", "gauge",
         "Median request latency workers reported over the last minute.", 1e-9},
        {"1m", "p99_ns", "mcache_serving_latency_p99_seconds", "gauge",
         "99th percentile request latency workers reported over the last minute.", 1e-9},
    };
    json_t *got = json_array(), *v, *st;
    char b1[512], b2[128];
    size_t i;
    int rc;

    json_array_foreach(models, i, v)
    {
        const char *args[2] = {json_string_value(json_object_get(v, "name")),
                               json_string_value(json_object_get(v, "version"))};
        const char *state = json_string_value(json_object_get(v, "state"));

        if (!args[0] || !args[1] || !state || strcmp(state, "resident") != 0)
            continue;
        if (json_array_size(got) == SERVING_VERSIONS_MAX)
            break;
        /* An untracked version (never reported) is an error answer: it has no series. */
        rc = cli_ctl_call(&s->cli, "stats", 2, args, 2000, &st);
        if (rc == 0)
            json_array_append_new(got, st);
        else if (rc == MC_ETIMEDOUT || rc == MC_ENODAEMON)
            break; /* a slow or gone mcached: one wait per scrape, not one per version */
    }
    for (size_t k = 0; k < sizeof(f) / sizeof(f[0]); k++) {
        bool headed = false;

        json_array_foreach(got, i, st)
        {
            const char *n = json_string_value(json_object_get(st, "name"));
            const char *ver = json_string_value(json_object_get(st, "version"));
            json_t *ws = json_object_get(st, "windows"), *w;
            size_t j;

            json_array_foreach(ws, j, w)
            {
                const char *wn = json_string_value(json_object_get(w, "window"));
                double x = num(w, f[k].key);

                if (!wn || strcmp(wn, f[k].window) != 0 || isnan(x) || !n || !ver)
                    continue;
                if (!headed)
                    head(o, f[k].name, f[k].type, f[k].help), headed = true;
                put(o, "%s{model=\"%s\",version=\"%s\"} %.17g\n", f[k].name, esc(n, b1, sizeof(b1)),
                    esc(ver, b2, sizeof(b2)), x * f[k].scale);
            }
        }
    }
    json_decref(got);
}

char *metrics_render(struct srv *s, size_t *len)
{
    struct out o = {.cap = 16384};
    uint64_t up;
    struct timespec ts;

    if (!(o.p = malloc(o.cap)))
        return NULL;
    o.p[0] = '\0';
    clock_gettime(CLOCK_MONOTONIC, &ts);
    up = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec - s->started_ns;
    head(&o, "mcache_serve_uptime_seconds", "gauge", "How long this mcache-serve has run.");
    put(&o, "mcache_serve_uptime_seconds %.3f\n", (double)up / 1e9);
    http_metrics(&o, s->metrics);
    head(&o, "mcache_http_connections", "gauge", "HTTP connections open now.");
    put(&o, "mcache_http_connections %u\n", srv_conns_open());
    head(&o, "mcache_http_connections_refused_total", "counter",
         "Connections closed at once for --max-conns.");
    put(&o, "mcache_http_connections_refused_total %u\n", srv_conns_refused());
    head(&o, "mcache_http_header_timeouts_total", "counter",
         "Connections closed for not sending a request's headers within --timeout.");
    put(&o, "mcache_http_header_timeouts_total %u\n", srv_conns_overdue());
    cache_metrics(&o, s);
    if (o.failed) {
        free(o.p);
        return NULL;
    }
    *len = o.len;
    return o.p;
}
