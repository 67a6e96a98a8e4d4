/*
 * main.c - mcache-serve: the HTTP face of mcache (docs/http.md,
 * docs/mcache-serve.1). Options, the safety rules for where it may listen,
 * then the server until SIGTERM or SIGINT.
 *
 *   mcache-serve [--store DIR] [--cache NAME] [--listen ADDR:PORT] [...]
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/err.h"
#include "serve/core.h"
#include "shm/arena.h"

#define DEFAULT_LISTEN "127.0.0.1:8420"

static void usage(FILE *f)
{
    fputs("usage: mcache-serve [OPTIONS]\n"
          "\n"
          "The HTTP face of mcache: a REST API under /v1 (the registry, the cache,\n"
          "downloads and uploads), Prometheus /metrics, a status page at /, bearer\n"
          "tokens with roles. It works beside mcached, never inside it.\n"
          "\n"
          "Options:\n"
          "  --store DIR          registry store (default $MCACHE_STORE, else ./mcache-data)\n"
          "  --registry URL       a registry shared by hosts: postgres://USER@HOST:PORT/DB\n"
          "                       (default $MCACHE_REGISTRY, else the store's journal)\n"
          "  --artifacts URL      where artifacts are: s3://BUCKET/PREFIX (default\n"
          "                       $MCACHE_ARTIFACTS, else the store's models/)\n"
          "  --artifacts-creds FILE  the object store's endpoint and keys as AWS_*=VALUE\n"
          "                       lines, mode 0600 (default $MCACHE_ARTIFACTS_CREDS, else\n"
          "                       the AWS_* variables)\n"
          "  --cache NAME         cache name (default $MCACHE_CACHE, else \"default\")\n"
          "  --shm-dir DIR        where the arena lives (default $MCACHE_SHM_DIR, /dev/shm)\n"
          "  --socket PATH        mcached's control socket (default $MCACHE_SOCKET, else the\n"
          "                       arena's)\n"
          "  --listen ADDR:PORT   where to listen (default " DEFAULT_LISTEN "; [::1]:8420 for\n"
          "                       IPv6; port 0 picks a free one)\n"
          "  --threads N          worker threads (default 4)\n"
          "  --workers N          long operations (load, deploy, gated alias moves, verify,\n"
          "                       fsck, gc, the first window of a download from the object\n"
          "                       store) running at once, each on a thread of its own\n"
          "                       (default 8; more are refused with 503)\n"
          "  --require-tokens     a token even on a loopback address\n"
          "  --insecure-open      no token needed on a non-loopback address (trusted networks\n"
          "                       only)\n"
          "  --tls-cert FILE      serve HTTPS with this PEM certificate (and --tls-key)\n"
          "  --tls-key FILE       the certificate's PEM private key\n"
          "  --max-json BYTES     largest JSON body (default 1048576)\n"
          "  --max-upload BYTES   largest artifact upload (default 0: no limit but the disk)\n"
          "  --timeout S          close a connection idle this long (default 30)\n"
          "  --max-conns N        connections at once (default 256)\n"
          "  --max-conns-per-ip N connections at once from one address (default 32 on a\n"
          "                       non-loopback address, no limit on loopback; 0: no limit)\n"
          "  -h, --help           this help\n"
          "  --version            print the version\n"
          "\n"
          "Access: on a loopback address a request without a token may do anything\n"
          "(--require-tokens changes that). On any other address mcache-serve starts only\n"
          "if the store has tokens (`mcache token add NAME --role ROLE`) or with\n"
          "--insecure-open.\n"
          "\n"
          "Examples:\n"
          "  mcache-serve --store /srv/models\n"
          "  mcache-serve --listen 0.0.0.0:8420 --tls-cert cert.pem --tls-key key.pem\n",
          f);
}

static int bad(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int bad(const char *fmt, ...)
{
    va_list ap;

    fputs("mcache-serve: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs(" (see mcache-serve --help)\n", stderr);
    return 2;
}

/* A whole number from min to max for option opt, or a usage error. */
static int parse_num(const char *opt, const char *v, uint64_t min, uint64_t max, uint64_t *out)
{
    char *end;
    unsigned long long x;

    errno = 0;
    if (!v || !*v || *v == '-' || *v == '+' || *v == ' ')
        return bad("%s needs a whole number from %llu to %llu, not \"%s\"", opt,
                   (unsigned long long)min, (unsigned long long)max, v ? v : "");
    x = strtoull(v, &end, 10);
    if (errno || *end || x < min || x > max)
        return bad("%s needs a whole number from %llu to %llu, not \"%s\"", opt,
                   (unsigned long long)min, (unsigned long long)max, v);
    *out = x;
    return 0;
}

/* "127.0.0.1:8420", "[::1]:8420", "0.0.0.0:0". */
static int parse_listen(const char *v, struct sockaddr_storage *ss, socklen_t *len)
{
    char host[INET6_ADDRSTRLEN + 2];
    const char *colon, *port;
    uint64_t p;
    size_t hl;

    memset(ss, 0, sizeof(*ss));
    if (v[0] == '[') {
        const char *close = strchr(v, ']');

        if (!close || close[1] != ':')
            return bad("--listen \"%s\": write an IPv6 address as [ADDR]:PORT, e.g. [::1]:8420", v);
        hl = (size_t)(close - v - 1);
        port = close + 2;
        if (hl >= sizeof(host))
            return bad("--listen \"%s\": the address is too long", v);
        memcpy(host, v + 1, hl);
        host[hl] = '\0';
    } else {
        colon = strrchr(v, ':');
        if (!colon || colon == v)
            return bad("--listen \"%s\": write ADDR:PORT, e.g. 127.0.0.1:8420 or [::1]:8420", v);
        if (memchr(v, ':', (size_t)(colon - v)))
            return bad("--listen \"%s\": put an IPv6 address in brackets, e.g. [::1]:8420", v);
        hl = (size_t)(colon - v);
        port = colon + 1;
        if (hl >= sizeof(host))
            return bad("--listen \"%s\": the address is too long", v);
        memcpy(host, v, hl);
        host[hl] = '\0';
    }
    if (parse_num("--listen's port", port, 0, 65535, &p))
        return 2;
    if (v[0] == '[') {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;

        if (inet_pton(AF_INET6, host, &in6->sin6_addr) != 1)
            return bad("--listen \"%s\": \"%s\" is not an IPv6 address", v, host);
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)p);
        *len = sizeof(*in6);
    } else {
        struct sockaddr_in *in = (struct sockaddr_in *)ss;

        if (inet_pton(AF_INET, host, &in->sin_addr) != 1)
            return bad("--listen \"%s\": \"%s\" is not an IPv4 address (write numbers, e.g. "
                       "127.0.0.1 or 0.0.0.0; IPv6 in brackets)",
                       v, host);
        in->sin_family = AF_INET;
        in->sin_port = htons((uint16_t)p);
        *len = sizeof(*in);
    }
    return 0;
}

/* A PEM file's text, or NULL with the error printed. */
static char *read_pem(const char *opt, const char *path)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t n = 0, cap = 0, r;

    if (!f) {
        fprintf(stderr, "mcache-serve: %s \"%s\": %s\n", opt, path, strerror(errno));
        return NULL;
    }
    do {
        if (n + 4097 > cap) {
            char *b = realloc(buf, cap = cap * 2 + 8192);

            if (!b) {
                free(buf);
                fclose(f);
                fprintf(stderr, "mcache-serve: out of memory reading %s\n", path);
                return NULL;
            }
            buf = b;
        }
        r = fread(buf + n, 1, 4096, f);
        n += r;
    } while (r > 0 && n < (1u << 20));
    fclose(f);
    buf[n] = '\0';
    if (!strstr(buf, "-----BEGIN ")) {
        fprintf(stderr, "mcache-serve: %s \"%s\" is not a PEM file (no \"-----BEGIN\" line)\n", opt,
                path);
        free(buf);
        return NULL;
    }
    return buf;
}

static const char *env_or(const char *v, const char *env, const char *def, const char **from,
                          const char *flag)
{
    const char *e = getenv(env);

    if (v) {
        if (from)
            *from = flag;
        return v;
    }
    if (e && *e) {
        if (from)
            *from = env;
        return e;
    }
    if (from)
        *from = "the default";
    return def;
}

enum {
    O_STORE = 256,
    O_CACHE,
    O_SHM,
    O_SOCKET,
    O_LISTEN,
    O_THREADS,
    O_REQUIRE,
    O_OPEN,
    O_CERT,
    O_KEY,
    O_MAXJSON,
    O_MAXUP,
    O_TIMEOUT,
    O_MAXCONNS,
    O_WORKERS,
    O_PERIP,
    O_VERSION,
    O_REGISTRY,
    O_ARTIFACTS,
    O_CREDS,
};

/* Would these options leave the registry open to anyone, given ntok tokens? Says so, true. */
static bool refused_without_tokens(const char *store, const char *listen, bool loopback,
                                   bool require, bool insecure, size_t ntok)
{
    if (!loopback && !insecure && ntok == 0) {
        fprintf(stderr,
                "mcache-serve: refusing to listen on %s without tokens: anyone who can reach "
                "it could change the registry. Add a token (`mcache token add NAME --role "
                "admin`) or, on a trusted network only, pass --insecure-open\n",
                listen);
        return true;
    }
    if (require && ntok == 0) {
        fprintf(stderr,
                "mcache-serve: --require-tokens, but the store \"%s\" has no tokens; "
                "add one with `mcache token add NAME --role admin`\n",
                store);
        return true;
    }
    return false;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"store", required_argument, NULL, O_STORE},
        {"registry", required_argument, NULL, O_REGISTRY},
        {"artifacts", required_argument, NULL, O_ARTIFACTS},
        {"artifacts-creds", required_argument, NULL, O_CREDS},
        {"cache", required_argument, NULL, O_CACHE},
        {"shm-dir", required_argument, NULL, O_SHM},
        {"socket", required_argument, NULL, O_SOCKET},
        {"listen", required_argument, NULL, O_LISTEN},
        {"threads", required_argument, NULL, O_THREADS},
        {"require-tokens", no_argument, NULL, O_REQUIRE},
        {"insecure-open", no_argument, NULL, O_OPEN},
        {"tls-cert", required_argument, NULL, O_CERT},
        {"tls-key", required_argument, NULL, O_KEY},
        {"max-json", required_argument, NULL, O_MAXJSON},
        {"max-upload", required_argument, NULL, O_MAXUP},
        {"timeout", required_argument, NULL, O_TIMEOUT},
        {"max-conns", required_argument, NULL, O_MAXCONNS},
        {"workers", required_argument, NULL, O_WORKERS},
        {"max-conns-per-ip", required_argument, NULL, O_PERIP},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, O_VERSION},
        {0},
    };
    const char *registry = NULL, *artifacts = NULL, *creds = NULL;
    const char *store = NULL, *cache = NULL, *shm = NULL, *sock = NULL, *listen = DEFAULT_LISTEN;
    const char *cert = NULL, *key = NULL;
    bool require = false, insecure = false, loopback;
    uint64_t threads = 4, max_json = 1 << 20, max_upload = 0, timeout = 30, max_conns = 256;
    uint64_t workers = 8, per_ip = UINT64_MAX; /* UINT64_MAX: not given */
    struct srv s = {0};
    struct srv_listen l = {0};
    struct mc_registry_opts ro;
    sigset_t sigs;
    unsigned port = 0;
    char where[96];
    int c, sig, rc;
    struct timespec ts;

    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case O_STORE:
            store = optarg;
            break;
        case O_REGISTRY:
            registry = optarg;
            break;
        case O_ARTIFACTS:
            artifacts = optarg;
            break;
        case O_CREDS:
            creds = optarg;
            break;
        case O_CACHE:
            cache = optarg;
            break;
        case O_SHM:
            shm = optarg;
            break;
        case O_SOCKET:
            sock = optarg;
            break;
        case O_LISTEN:
            listen = optarg;
            break;
        case O_THREADS:
            if (parse_num("--threads", optarg, 1, 256, &threads))
                return 2;
            break;
        case O_REQUIRE:
            require = true;
            break;
        case O_OPEN:
            insecure = true;
            break;
        case O_CERT:
            cert = optarg;
            break;
        case O_KEY:
            key = optarg;
            break;
        case O_MAXJSON:
            if (parse_num("--max-json", optarg, 2, 1ull << 30, &max_json))
                return 2;
            break;
        case O_MAXUP:
            if (parse_num("--max-upload", optarg, 0, UINT64_MAX >> 1, &max_upload))
                return 2;
            break;
        case O_TIMEOUT:
            if (parse_num("--timeout", optarg, 1, 86400, &timeout))
                return 2;
            break;
        case O_MAXCONNS:
            if (parse_num("--max-conns", optarg, 1, 65536, &max_conns))
                return 2;
            break;
        case O_PERIP:
            if (parse_num("--max-conns-per-ip", optarg, 0, 65536, &per_ip))
                return 2;
            break;
        case O_WORKERS:
            if (parse_num("--workers", optarg, 1, 1024, &workers))
                return 2;
            break;
        case 'h':
            usage(stdout);
            return 0;
        case O_VERSION:
            printf("mcache-serve %d.%d.%d\n", MCACHE_VERSION_MAJOR, MCACHE_VERSION_MINOR,
                   MCACHE_VERSION_PATCH);
            return 0;
        case ':':
            return bad("%s needs a value", argv[optind - 1]);
        default:
            return bad("there is no option \"%s\"", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return bad("mcache-serve takes no arguments, and was given \"%s\"", argv[optind]);
    if (!!cert != !!key)
        return bad("--tls-cert and --tls-key go together (a certificate and its private key)");
    if (require && insecure)
        return bad("--require-tokens and --insecure-open contradict each other; choose one");
    if (parse_listen(listen, &l.addr, &l.addrlen))
        return 2;
    l.threads = (unsigned)threads;
    if (cert && (!(l.tls_cert = read_pem("--tls-cert", cert)) ||
                 !(l.tls_key = read_pem("--tls-key", key)))) {
        free(l.tls_cert);
        return 1;
    }

    s.cli.store = env_or(store, "MCACHE_STORE", "./mcache-data", &s.cli.store_from, "--store");
    s.cli.cache = env_or(cache, "MCACHE_CACHE", "default", &s.cli.cache_from, "--cache");
    s.cli.shm_dir = env_or(shm, "MCACHE_SHM_DIR", MC_DEFAULT_SHM_DIR, NULL, NULL);
    s.cli.socket = env_or(sock, "MCACHE_SOCKET", NULL, NULL, NULL);
    s.cli.json = true;
    s.cli.quiet = true;
    s.max_json = (size_t)max_json;
    s.max_upload = max_upload;
    s.timeout_s = (unsigned)timeout;
    s.max_conns = (unsigned)max_conns;
    s.workers = (unsigned)workers;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    s.started_ns = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
    s.cli.now_ns = 0; /* a server has no one "now": handlers read the clock per request */
    {
        pthread_mutexattr_t ma;

        pthread_mutexattr_init(&ma);
        /* srv_lock() twice in one thread fails instead of hanging the thread forever. */
        pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_ERRORCHECK);
        pthread_mutex_init(&s.reg_lock, &ma);
        pthread_mutexattr_destroy(&ma);
    }
    pthread_mutex_init(&s.mc_lock, NULL);

    /* as the CLI: the flag, else the environment; "" is none (the store's journal, models/) */
    s.cli.registry = registry ? registry : getenv("MCACHE_REGISTRY");
    s.cli.artifacts = artifacts ? artifacts : getenv("MCACHE_ARTIFACTS");
    if (s.cli.registry && !*s.cli.registry)
        s.cli.registry = NULL;
    if (s.cli.artifacts && !*s.cli.artifacts)
        s.cli.artifacts = NULL;
    s.cli.artifacts_creds = creds ? creds : getenv("MCACHE_ARTIFACTS_CREDS");
    if (s.cli.artifacts_creds && !*s.cli.artifacts_creds)
        s.cli.artifacts_creds = NULL;
    ro = cli_registry_opts(&s.cli, MC_REGISTRY_CREATE); /* as server.c's reopening, too */
    /*
     * No store yet and no shared registry: it has no tokens. Refuse now,
     * before opening it would create it.
     */
    if (!s.cli.registry && access(s.cli.store, F_OK) != 0 &&
        refused_without_tokens(s.cli.store, listen, addr_is_loopback((struct sockaddr *)&l.addr),
                               require, insecure, 0))
        goto fail;
    rc = mc_registry_open(s.cli.store, &ro, &s.reg);
    if (rc) {
        fprintf(stderr, "mcache-serve: the store \"%s\" (from %s): %s\n", s.cli.store,
                s.cli.store_from, mc_last_error());
        free(l.tls_cert);
        free(l.tls_key);
        return 1;
    }

    loopback = addr_is_loopback((struct sockaddr *)&l.addr);
    if (refused_without_tokens(s.cli.store, listen, loopback, require, insecure,
                               mc_registry_token_count(s.reg)))
        goto fail;
    s.open_access = (loopback && !require) || insecure;
    /* Loopback clients are this host's users (and the tests and the bench, from one address). */
    s.max_conns_per_ip = per_ip != UINT64_MAX ? (unsigned)per_ip : loopback ? 0 : 32;

    if (!(s.metrics = metrics_new())) {
        fprintf(stderr, "mcache-serve: out of memory\n");
        goto fail;
    }
    /* The workers inherit this mask: only the main thread sees the signals, in sigwait. */
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (srv_start(&s, &l, &port) != 0) {
        fprintf(stderr, "mcache-serve: %s: %s\n", listen, mc_last_error());
        goto fail;
    }
    if (l.addr.ss_family == AF_INET6) {
        char h[INET6_ADDRSTRLEN];

        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&l.addr)->sin6_addr, h, sizeof(h));
        snprintf(where, sizeof(where), "[%s]:%u", h, port);
    } else {
        char h[INET_ADDRSTRLEN];

        inet_ntop(AF_INET, &((struct sockaddr_in *)&l.addr)->sin_addr, h, sizeof(h));
        snprintf(where, sizeof(where), "%s:%u", h, port);
    }
    srv_log("listening on %s://%s (store %s, cache %s, %s)", l.tls_cert ? "https" : "http", where,
            s.cli.store, s.cli.cache,
            s.open_access ? (insecure ? "open access: --insecure-open" : "open access on loopback")
                          : "tokens required");
    fflush(stderr);

    do {
        if (sigwait(&sigs, &sig) != 0)
            sig = SIGTERM;
    } while (sig != SIGINT && sig != SIGTERM);
    srv_log("stopping (%s)", sig == SIGINT ? "SIGINT" : "SIGTERM");
    srv_stop(&s);
    metrics_free(s.metrics);
    if (s.mc)
        mc_detach(s.mc);
    mc_registry_close(s.reg);
    free(l.tls_cert);
    free(l.tls_key);
    return 0;

fail:
    metrics_free(s.metrics);
    mc_registry_close(s.reg);
    free(l.tls_cert);
    free(l.tls_key);
    return 1;
}
