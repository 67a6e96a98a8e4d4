/*
 * fuzz_http.c - fuzz target for what mcache-serve parses itself of a
 * request (libmicrohttpd parses the HTTP framing): the router, which splits
 * the raw path, decodes each segment and refuses traversal and control
 * bytes (router.c); query values; the Authorization and Content-Type headers.
 *
 * Input: one byte choosing the method, then the request target ("/v1/...?
 * a=b&c"), then optionally '\n' and a header value.
 *
 * With libFuzzer (cmake -DMCACHE_FUZZ=ON, clang):
 *   ./fuzz_http tests/fuzz/corpus/http -max_total_time=60
 * Without it (every build, run by ctest), main() replays the seed corpus and
 * 200,000 generated inputs built from route fragments and hostile bytes.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mcache.h"
#include "serve/core.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const methods[] = {"GET", "HEAD", "PUT", "POST", "DELETE", "PATCH"};

static size_t count_params(const char *pattern)
{
    size_t n = 0;

    for (const char *p = pattern; (p = strchr(p, '{')); p++)
        n++;
    return n;
}

static void check_allowed(const char *allowed)
{
    char buf[64];
    char *save = NULL;

    if (strlen(allowed) >= sizeof(buf))
        abort();
    strcpy(buf, allowed);
    for (char *t = strtok_r(buf, ", ", &save); t; t = strtok_r(NULL, ", ", &save)) {
        size_t i;

        for (i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
            if (!strcmp(t, methods[i]))
                break;
        if (i == sizeof(methods) / sizeof(methods[0]))
            abort(); /* a method that no route has */
    }
}

static void check_route(const char *method, const char *path)
{
    const struct route *r = (const struct route *)1;
    char *params[REQ_PARAMS_MAX] = {0};
    size_t n = 99;
    char allowed[64];
    int rc = route_match(srv_route_groups, method, path, &r, params, &n, allowed, sizeof(allowed));

    if (rc == 0) {
        if (!r ||
            (strcmp(r->method, method) && !(!strcmp(method, "HEAD") && !strcmp(r->method, "GET"))))
            abort();
        if (n != count_params(r->pattern))
            abort();
        for (size_t i = 0; i < n; i++) {
            const unsigned char *p = (const unsigned char *)params[i];

            if (!p || !*p || !strcmp(params[i], ".") || !strcmp(params[i], ".."))
                abort();
            for (; *p; p++)
                if (*p < 0x20 || *p == 0x7f)
                    abort();
        }
        route_params_free(params, n);
        return;
    }
    if (rc != MC_EINVAL && rc != MC_ENOENT && rc != MC_ENOMEM)
        abort();
    if (r || n != 0 || !mc_last_error()[0])
        abort();
    for (size_t i = 0; i < REQ_PARAMS_MAX; i++)
        if (params[i])
            abort(); /* nothing handed out on failure */
    check_allowed(allowed);
}

static void check_query(const char *q)
{
    size_t n = strlen(q);
    char *out = malloc(n + 1);

    if (!out)
        return;
    /* As libmicrohttpd hands us values: split on '&', then '='. */
    for (const char *p = q; *p;) {
        const char *amp = strchr(p, '&');
        size_t len = amp ? (size_t)(amp - p) : strlen(p);
        char *piece = strndup(p, len);

        if (piece) {
            char *eq = strchr(piece, '=');

            http_query_decode(eq ? eq + 1 : piece, out);
            if (strlen(out) > strlen(eq ? eq + 1 : piece))
                abort(); /* decoding never grows */
            free(piece);
        }
        p += len + (amp != NULL);
    }
    free(out);
}

static void check_header(const char *h)
{
    const char *s = http_bearer(h);

    if (s && (s < h || s >= h + strlen(h) || !*s))
        abort();
    (void)http_is_json_type(h);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text, *nl, *q;
    const char *method;

    if (size < 1 || size > 1 << 16)
        return 0;
    method = methods[data[0] % (sizeof(methods) / sizeof(methods[0]))];
    /* A C string as libmicrohttpd would give it (a NUL ends it there too). */
    text = malloc(size);
    if (!text)
        return 0;
    memcpy(text, data + 1, size - 1);
    text[size - 1] = '\0';
    nl = strchr(text, '\n');
    if (nl) {
        *nl = '\0';
        check_header(nl + 1);
    }
    q = strchr(text, '?');
    if (q) {
        *q = '\0';
        check_query(q + 1);
    }
    check_route(method, text);
    free(text);
    return 0;
}

#ifndef MC_LIBFUZZER
static int run_file(const char *path)
{
    FILE *fp = fopen(path, "rb");
    uint8_t buf[1 << 16];
    size_t n;

    if (!fp)
        return -1;
    n = fread(buf, 1, sizeof(buf), fp);
    fclose(fp);
    return LLVMFuzzerTestOneInput(buf, n);
}

int main(int argc, char **argv)
{
    static const char *const frags[] = {
        "/",
        "v1",
        "models",
        "versions",
        "aliases",
        "artifact",
        "{",
        "}",
        "%2F",
        "%2e%2e",
        "%2E",
        "..",
        ".",
        "%00",
        "%1f",
        "%7f",
        "%",
        "%4",
        "%zz",
        "?",
        "&",
        "=",
        "+",
        "%2B",
        "1.0.0",
        "latest",
        "org%2Fllama",
        "\n",
        "Bearer ",
        "mct_",
        "application/json",
        "//",
        "deployments",
        "snapshots",
        "load",
        "healthz",
        "metrics",
        "tokens",
        "\x01",
    };
    uint8_t buf[600];
    uint64_t x = 0x9e3779b97f4a7c15ull;
    int files = 0;

    for (int i = 1; i < argc; i++) {
        DIR *d = opendir(argv[i]);
        struct dirent *e;
        char p[1024];

        if (!d) {
            files += run_file(argv[i]) == 0;
            continue;
        }
        while ((e = readdir(d)))
            if (e->d_name[0] != '.') {
                snprintf(p, sizeof(p), "%s/%s", argv[i], e->d_name);
                files += run_file(p) == 0;
            }
        closedir(d);
    }
    for (int k = 0; k < 200000; k++) {
        size_t n = 1, parts;

        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        buf[0] = (uint8_t)x;
        buf[n++] = '/';
        parts = 1 + x % 12;
        for (size_t i = 0; i < parts && n < sizeof(buf) - 40; i++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if (k % 5 == 0) { /* raw bytes */
                buf[n++] = (uint8_t)(x >> 8);
                buf[n++] = (uint8_t)(x >> 16);
            } else {
                const char *f = frags[x % (sizeof(frags) / sizeof(frags[0]))];
                size_t fl = strlen(f);

                memcpy(buf + n, f, fl);
                n += fl;
                if (x & 0x100)
                    buf[n++] = '/';
            }
        }
        LLVMFuzzerTestOneInput(buf, n);
    }
    printf("fuzz_http: %d corpus files and 200000 generated inputs: no crash\n", files);
    return 0;
}
#endif
