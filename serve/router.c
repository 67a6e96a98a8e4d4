/*
 * router.c - a method and a raw request path to a route and its decoded
 * parameters.
 *
 * The path arrives as the client sent it (server.c's unescape callback
 * leaves it alone): it is split on '/' first and each segment decoded
 * after, so "org%2Fllama" is one segment, the model "org/llama". Decoding
 * before splitting would make that two segments and no route would match.
 *
 * Pure: no server, no I/O, no globals but the route tables it is given, so
 * tests/fuzz/fuzz_http.c drives it directly.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/err.h"
#include "common/hex.h"
#include "serve/core.h"

#define SEGS_MAX       16   /* more than any route has: more is refused */

struct seg {
    const char *p; /* into the raw path */
    size_t n;
};

/*
 * Decode one segment into out (room for n + 1 bytes: decoding never
 * grows). MC_EINVAL for a bad escape, a NUL or a control byte, "." or "..".
 */
static int decode_seg(const char *p, size_t n, char *out)
{
    size_t o = 0;

    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];

        if (c == '%') {
            int hi, lo;

            if (i + 2 >= n)
                return mc_err(MC_EINVAL,
                              "the path segment \"%.*s\" has a '%%' without two hex digits after "
                              "it (write a literal '%%' as %%25)",
                              (int)(n > 200 ? 200 : n), p);
            hi = mc_hexval((unsigned char)p[i + 1], true);
            lo = mc_hexval((unsigned char)p[i + 2], true);
            if (hi < 0 || lo < 0)
                return mc_err(MC_EINVAL,
                              "the path segment \"%.*s\" has a bad escape \"%.3s\" (a '%%' needs "
                              "two hex digits; write a literal '%%' as %%25)",
                              (int)(n > 200 ? 200 : n), p, p + i);
            c = (unsigned char)(hi * 16 + lo);
            i += 2;
        }
        if (c < 0x20 || c == 0x7f)
            return mc_err(MC_EINVAL,
                          "the path segment \"%.*s\" holds a control byte 0x%02x (names never do)",
                          (int)(n > 200 ? 200 : n), p, c);
        out[o++] = (char)c;
    }
    out[o] = '\0';
    if (!strcmp(out, ".") || !strcmp(out, ".."))
        return mc_err(MC_EINVAL,
                      "the path has a \"%s\" segment (decoded); paths name things and "
                      "never navigate, and no name is \".\" or \"..\"",
                      out);
    return 0;
}

/* Split path (starting with '/') into segments; "/" has none. */
static int split(const char *path, struct seg *segs, size_t *nsegs)
{
    const char *p = path + 1;
    size_t n = 0;

    *nsegs = 0;
    if (path[0] != '/')
        return mc_err(MC_EINVAL, "the path \"%.200s\" does not start with '/'", path);
    if (!*p)
        return 0;
    for (;;) {
        const char *e = strchr(p, '/');
        size_t len = e ? (size_t)(e - p) : strlen(p);

        if (len == 0)
            return mc_err(MC_EINVAL,
                          "the path \"%.200s\" has an empty segment (a \"//\" or a trailing '/'); "
                          "drop it",
                          path);
        if (n == SEGS_MAX)
            return mc_err(MC_EINVAL,
                          "the path \"%.200s\" has more than %d segments; no route has "
                          "that many",
                          path, SEGS_MAX);
        segs[n].p = p;
        segs[n].n = len;
        n++;
        if (!e)
            break;
        p = e + 1;
    }
    *nsegs = n;
    return 0;
}

/* Add method to the comma-separated list in buf unless it is there. */
static void allow_add(char *buf, size_t len, const char *m)
{
    size_t ml = strlen(m), bl;

    for (const char *p = buf; (p = strstr(p, m)); p += ml)
        if ((p == buf || p[-1] == ' ') && (p[ml] == ',' || p[ml] == '\0'))
            return;
    bl = strlen(buf);
    if (bl + ml + 3 > len)
        return;
    snprintf(buf + bl, len - bl, "%s%s", bl ? ", " : "", m);
}

/*
 * Does pattern match the decoded segments? Pattern segments are literal or
 * "{name}" (any one segment).
 */
static bool pattern_matches(const char *pattern, char *const *dec, size_t ndec)
{
    const char *p = pattern + 1;
    size_t i = 0;

    if (!*p)
        return ndec == 0;
    for (;;) {
        const char *e = strchr(p, '/');
        size_t len = e ? (size_t)(e - p) : strlen(p);

        if (i == ndec)
            return false;
        if (!(len >= 2 && p[0] == '{' && p[len - 1] == '}') &&
            (strlen(dec[i]) != len || memcmp(dec[i], p, len) != 0))
            return false;
        i++;
        if (!e)
            break;
        p = e + 1;
    }
    return i == ndec;
}

static bool method_matches(const char *route_m, const char *m)
{
    return !strcmp(route_m, m) || (!strcmp(route_m, "GET") && !strcmp(m, "HEAD"));
}

void route_params_free(char **params, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(params[i]);
        params[i] = NULL;
    }
}

int route_match(const struct route *const *groups, const char *method, const char *path,
                const struct route **out, char **params, size_t *nparams, char *allowed,
                size_t allowed_len)
{
    struct seg segs[SEGS_MAX];
    char *dec[SEGS_MAX] = {0};
    size_t nsegs = 0, plen = strlen(path);
    const struct route *found = NULL;
    int rc;

    *out = NULL;
    *nparams = 0;
    if (allowed && allowed_len)
        allowed[0] = '\0';
    if (plen > ROUTE_PATH_MAX)
        return mc_err(MC_EINVAL, "the path is %zu bytes long; at most %d are accepted", plen,
                      ROUTE_PATH_MAX);
    if ((rc = split(path, segs, &nsegs)) != 0)
        return rc;
    for (size_t i = 0; i < nsegs; i++) {
        if (!(dec[i] = malloc(segs[i].n + 1))) {
            rc = mc_err(MC_ENOMEM, "out of memory decoding a request path");
            goto out;
        }
        if ((rc = decode_seg(segs[i].p, segs[i].n, dec[i])) != 0)
            goto out;
    }
    for (size_t g = 0; groups[g] && !found; g++)
        for (const struct route *r = groups[g]; r->method && !found; r++) {
            if (!pattern_matches(r->pattern, dec, nsegs))
                continue;
            if (method_matches(r->method, method))
                found = r;
            else if (allowed && allowed_len) {
                allow_add(allowed, allowed_len, r->method);
                if (!strcmp(r->method, "GET"))
                    allow_add(allowed, allowed_len, "HEAD");
            }
        }
    if (!found) {
        if (allowed && allowed[0])
            rc = mc_err(MC_ENOENT, "%s is not allowed on %.200s; it allows %s", method, path,
                        allowed);
        else
            rc = mc_err(MC_ENOENT,
                        "there is no such path: %.200s (the API is under /v1; see "
                        "/v1/openapi.json)",
                        path);
        goto out;
    }
    /* The parameters: the decoded segments where the pattern has "{...}". */
    {
        const char *p = found->pattern + 1;
        size_t i = 0;

        while (*p) {
            const char *e = strchr(p, '/');

            if (p[0] == '{' && *nparams < REQ_PARAMS_MAX) {
                params[(*nparams)++] = dec[i];
                dec[i] = NULL;
            }
            i++;
            if (!e)
                break;
            p = e + 1;
        }
    }
    *out = found;
    rc = 0;
out:
    for (size_t i = 0; i < nsegs; i++)
        free(dec[i]);
    return rc;
}

/* ---- the rest of a request's text that is ours to parse ------------------- */

void http_query_decode(const char *in, char *out)
{
    while (*in) {
        int hi = in[0] == '%' ? mc_hexval((unsigned char)in[1], true) : -1;
        int lo = hi >= 0 ? mc_hexval((unsigned char)in[2], true) : -1;

        if (lo >= 0) {
            *out++ = (char)(hi * 16 + lo);
            in += 3;
        } else if (*in == '+') {
            *out++ = ' ';
            in++;
        } else {
            *out++ = *in++;
        }
    }
    *out = '\0';
}

bool http_is_type(const char *ct, const char *type)
{
    size_t n = strlen(type);

    if (!ct)
        return false;
    while (*ct == ' ' || *ct == '\t')
        ct++;
    if (strncasecmp(ct, type, n) != 0)
        return false;
    for (ct += n; *ct == ' ' || *ct == '\t'; ct++)
        ;
    return *ct == '\0' || *ct == ';'; /* "application/jsonx" is another type */
}

bool http_is_json_type(const char *ct)
{
    return http_is_type(ct, "application/json");
}

/*
 * Split "host", "host:port", "[v6]" or "[v6]:port" (a Host header, or an
 * Origin's authority) into the host, without brackets, in out. false if it
 * is none of those.
 */
static bool authority_host(const char *a, char *out, size_t len)
{
    const char *end, *port;
    size_t n;

    if (a[0] == '[') {
        if (!(end = strchr(a, ']')))
            return false;
        a++;
        port = end + 1;
    } else {
        end = strchr(a, ':');
        if (!end)
            end = a + strlen(a);
        port = end;
    }
    if (*port == ':')
        for (port++; *port; port++)
            if (*port < '0' || *port > '9')
                return false;
    if (*port)
        return false;
    n = (size_t)(end - a);
    if (n == 0 || n >= len)
        return false;
    memcpy(out, a, n);
    out[n] = '\0';
    return true;
}

bool http_host_is_local(const char *authority, bool any_ip)
{
    char h[256];
    struct in_addr a4;
    struct in6_addr a6;

    if (!authority || !authority_host(authority, h, sizeof(h)))
        return false;
    if (!strcasecmp(h, "localhost"))
        return true;
    if (inet_pton(AF_INET, h, &a4) == 1)
        return any_ip || (ntohl(a4.s_addr) >> 24) == 127;
    if (authority[0] == '[' && inet_pton(AF_INET6, h, &a6) == 1)
        return any_ip || IN6_IS_ADDR_LOOPBACK(&a6) ||
               (IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127);
    return false;
}

bool http_origin_allowed(const char *origin, const char *host, bool any_ip)
{
    const char *a;

    if (!origin)
        return true; /* not sent by a browser's cross-site request */
    if (!(a = strstr(origin, "://")))
        return false; /* "null" (a sandboxed page, a file), or not an origin */
    a += 3;
    if (host && !strcasecmp(a, host))
        return true; /* the same origin as the request's own Host */
    return http_host_is_local(a, any_ip);
}

/* See core.h. Several ranges, or another unit, get the whole body (RFC 9110 allows it). */
enum http_range http_range(const char *h, uint64_t size, uint64_t *off, uint64_t *len)
{
    unsigned long long a, b;
    char *end;
    const char *p;

    if (!h || strncmp(h, "bytes=", 6) || strchr(h, ','))
        return RANGE_NONE;
    p = h + 6;
    while (*p == ' ')
        p++;
    errno = 0;
    if (*p == '-') { /* the last N bytes */
        b = strtoull(p + 1, &end, 10);
        if (end == p + 1 || *end || errno)
            return RANGE_NONE;
        if (b == 0 || size == 0) /* no last bytes to give (RFC 9110 14.1.1) */
            return RANGE_BAD;
        *len = b > size ? size : b;
        *off = size - *len;
        return RANGE_ONE;
    }
    if (*p < '0' || *p > '9')
        return RANGE_NONE;
    a = strtoull(p, &end, 10);
    if (*end != '-' || errno)
        return RANGE_NONE;
    p = end + 1;
    if (!*p) {
        b = size ? size - 1 : 0;
    } else {
        if (*p < '0' || *p > '9')
            return RANGE_NONE;
        b = strtoull(p, &end, 10);
        if (*end || errno || b < a)
            return RANGE_NONE;
    }
    if (a >= size)
        return RANGE_BAD;
    if (b >= size)
        b = size - 1;
    *off = a;
    *len = b - a + 1;
    return RANGE_ONE;
}

const char *http_bearer(const char *h)
{
    if (!h || strncasecmp(h, "Bearer ", 7) != 0)
        return NULL;
    h += 7;
    while (*h == ' ')
        h++;
    return *h ? h : NULL;
}
