/*
 * s3.c - the S3 client of s3.h on libcurl: one easy handle per request,
 * signed by CURLOPT_AWS_SIGV4; curl multi for the parallel parts of an
 * upload and the parallel ranges of a read.
 *
 * Each request is a struct req: its URL (path-style: ENDPOINT/BUCKET/KEY
 * with the query already sorted and encoded, see s3.h), its headers, where
 * its body comes from (a buffer) and goes to (a capped buffer, a place in
 * the caller's buffer, or a callback). The response body is kept (up to
 * 1 MiB) only to read S3's <Code> and the listings out of it.
 */
#include "registry/s3.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <gnutls/crypto.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/err.h"
#include "index/name.h"

#define BODY_CAP   (1u << 20) /* what is kept of a response body (listings, errors) */
#define TRIES      5          /* per part, per range: over ~7 s (backoff_ns) */
#define DEF_PART   (16u << 20)
#define DEF_CONC   4
#define READ_PART  (8u << 20)
#define READ_CONC  8

struct mc_s3 {
    char *endpoint; /* no trailing '/' */
    char *region;
    char *userpwd;  /* "key:secret" for curl; never printed */
    char *sigv4;    /* "aws:amz:REGION:s3" */
    char *bucket;
    const atomic_bool *cancel; /* mc_s3_set_cancel: mc_s3_read stops when it is set */
    uint64_t deadline;         /* mc_s3_deadline: requests end by then (monotonic ns; 0: none) */
};

/* ---- credentials ------------------------------------------------------ */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void curl_init(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* A value from the 0600 file (NULL: it has no NAME= line). */
static char *file_setting(const char *file_text, const char *name)
{
    size_t nl = strlen(name);

    for (const char *p = file_text; p && *p;) {
        const char *eol = strchrnul(p, '\n');

        while (*p == ' ' || *p == '\t')
            p++;
        if (!strncmp(p, "export ", 7))
            p += 7;
        if ((size_t)(eol - p) > nl && !strncmp(p, name, nl) && p[nl] == '=') {
            const char *v = p + nl + 1, *e = eol;

            while (e > v && (e[-1] == '\r' || e[-1] == ' '))
                e--;
            if (e - v >= 2 && (*v == '"' || *v == '\'') && e[-1] == *v)
                v++, e--;
            return strndup(v, (size_t)(e - v));
        }
        p = *eol ? eol + 1 : eol;
    }
    return NULL;
}

/* A value from the 0600 file, else the environment (NULL: neither). */
static char *setting(const char *file_text, const char *name)
{
    char *v = file_setting(file_text, name);
    const char *env = getenv(name);

    if (v != NULL)
        return v;

    return env && *env ? strdup(env) : NULL;
}

#define CREDS_MAX (64u << 10) /* a credentials file is a few lines */

/*
 * The credentials file's text into *text (the caller wipes and frees it).
 * Refused unless it is a regular file (O_NONBLOCK: a FIFO named there must
 * not block open), not a symbolic link (O_NOFOLLOW: nobody swaps in another
 * file), owned by this user or root, and neither readable nor writable by
 * anyone else. Messages name the file, never what is in it.
 */
static int read_creds_file(const char *path, char **text)
{
    struct stat st;
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC), rc = 0;
    size_t n = 0;

    *text = NULL;
    if (fd < 0 && errno == ELOOP)
        return mc_err(MC_EPERM,
                      "the S3 credentials file %s is a symbolic link: name the file itself", path);
    if (fd < 0)
        return mc_err(mc_err_from_errno(errno), "cannot open the S3 credentials file %s: %s", path,
                      strerror(errno));
    if (fstat(fd, &st) != 0)
        rc = mc_err(MC_EIO, "cannot stat the S3 credentials file %s: %s", path, strerror(errno));
    else if (!S_ISREG(st.st_mode))
        rc = mc_err(MC_EPERM,
                    "the S3 credentials file %s is not a regular file: name a file of "
                    "AWS_ACCESS_KEY_ID=... lines",
                    path);
    else if (st.st_uid != geteuid() && st.st_uid != 0)
        rc = mc_err(MC_EPERM,
                    "the S3 credentials file %s belongs to uid %u, neither this user (uid %u) nor "
                    "root: chown it to this user, or name this user's own file",
                    path, (unsigned)st.st_uid, (unsigned)geteuid());
    else if ((st.st_mode & 077) != 0)
        rc = mc_err(MC_EPERM,
                    "the S3 credentials file %s can be read or written by others (mode %04o); "
                    "make it its owner's only: chmod 600 %s",
                    path, (unsigned)(st.st_mode & 07777), path);
    else if ((uint64_t)st.st_size > CREDS_MAX)
        rc = mc_err(MC_EINVAL,
                    "the S3 credentials file %s has %llu bytes, more than a credentials file "
                    "(%u at most): is it the right file?",
                    path, (unsigned long long)st.st_size, CREDS_MAX);
    else if ((*text = calloc(1, (size_t)st.st_size + 1)) == NULL)
        rc = mc_err(MC_ENOMEM, "out of memory reading %s", path);
    while (rc == 0 && n < (size_t)st.st_size) {
        ssize_t r = read(fd, *text + n, (size_t)st.st_size - n);

        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            rc = mc_err(MC_EIO, "reading the S3 credentials file %s: %s", path, strerror(errno));
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    if (rc && *text) {
        explicit_bzero(*text, n);
        free(*text);
        *text = NULL;
    }
    return rc;
}

int mc_s3_creds_check(const char *path)
{
    char *text;
    int rc = read_creds_file(path, &text);

    if (text) {
        explicit_bzero(text, strlen(text));
        free(text);
    }
    return rc;
}

/* What a refused s3:// value is shown as: never one that may hold credentials. */
static const char *shown(char *buf, size_t size, const char *v, size_t len)
{
    size_t skip = len >= 5 && !strncmp(v, "s3://", 5) ? 5 : 0; /* the scheme's own ':' */

    if (memchr(v, '@', len) || memchr(v + skip, ':', len - skip))
        return "(a value with credentials, not shown)";
    return mc_quote(buf, size, v, len);
}

bool mc_s3_bucket_ok(const char *b, size_t n)
{
    static const char alnum[] = "abcdefghijklmnopqrstuvwxyz0123456789";

    if (n < 3 || n > 63)
        return false;
    for (size_t i = 0; i < n; i++)
        if (b[i] == '\0' || (!strchr(alnum, b[i]) && b[i] != '.' && b[i] != '-'))
            return false;
    return strchr(alnum, b[0]) && strchr(alnum, b[n - 1]) && !memmem(b, n, "..", 2);
}

#define URL_FIX                                                                                    \
    "write s3://BUCKET/PREFIX: a bucket name of 3 to 63 characters a-z 0-9 . - (starting and "    \
    "ending with a letter or digit), then a prefix of names separated by single '/', none of "    \
    "them . or .., without ? # %% or control characters; nothing was changed"

int mc_s3_url_parse(const char *url, char bucket[64], const char **prefix, size_t *prefix_len)
{
    char q[MC_QUOTE_MAX];
    const char *b, *p, *end;
    size_t bl;

    if (url == NULL || strncmp(url, "s3://", 5) != 0)
        return mc_err(MC_EINVAL, "the artifacts given (--artifacts or MCACHE_ARTIFACTS: %s) are "
                      "not an s3:// URL; " URL_FIX,
                      url ? shown(q, sizeof(q), url, strlen(url)) : "none");
    b = url + 5;
    bl = (size_t)(strchrnul(b, '/') - b);
    /* s3://KEY:SECRET@bucket/p: refused without a word of what it holds */
    if (memchr(b, '@', bl) || memchr(b, ':', bl))
        return mc_err(MC_EINVAL, "the artifacts given (--artifacts or MCACHE_ARTIFACTS: a value "
                      "with credentials, not shown): s3:// takes no credentials: use "
                      "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or --artifacts-creds FILE, and "
                      "write s3://BUCKET/PREFIX; nothing was changed");
    if (!mc_s3_bucket_ok(b, bl))
        return mc_err(MC_EINVAL, "the artifacts given (--artifacts or MCACHE_ARTIFACTS: %s) name "
                      "the bucket %s, which is not an S3 bucket name; " URL_FIX,
                      shown(q, sizeof(q), url, strlen(url)), mc_quote((char[MC_QUOTE_MAX]){0},
                                                                       MC_QUOTE_MAX, b, bl));
    memcpy(bucket, b, bl);
    bucket[bl] = '\0';
    /*
     * The prefix: each segment a name. curl removes dot segments ("a/../b"), so a prefix holding
     * one would send requests (DELETEs among them) elsewhere, even to another bucket; an empty
     * segment or a trailing dot would name the same keys as another spelling.
     */
    p = b[bl] == '/' ? b + bl + 1 : b + bl;
    end = p + strlen(p);
    if (end > p && end[-1] == '/')
        end--; /* s3://b/p/ is s3://b/p */
    for (const char *s = p; s < end;) {
        const char *e = memchr(s, '/', (size_t)(end - s));
        size_t n;

        e = e ? e : end;
        n = (size_t)(e - s);
        if (n == 0 || (n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.'))
            return mc_err(MC_EINVAL, "the artifacts given (--artifacts or MCACHE_ARTIFACTS: %s) "
                          "have %s in the prefix; " URL_FIX,
                          shown(q, sizeof(q), url, strlen(url)),
                          n == 0 ? "an empty segment (//)" : "a . or .. segment");
        for (const char *c = s; c < e; c++)
            if (*c == '?' || *c == '#' || *c == '%' || (unsigned char)*c < 0x20 || *c == 0x7f)
                return mc_err(MC_EINVAL, "the artifacts given (--artifacts or MCACHE_ARTIFACTS: "
                              "%s) have the character %s in the prefix; " URL_FIX,
                              shown(q, sizeof(q), url, strlen(url)),
                              mc_quote((char[16]){0}, 16, c, 1));
        s = e + 1;
    }
    *prefix = p;
    *prefix_len = (size_t)(end - p);
    return 0;
}

int mc_s3_open(const char *bucket, const char *creds_file, struct mc_s3 **out)
{
    struct mc_s3 *s;
    char *text = NULL, *key, *secret, q[MC_QUOTE_MAX];
    int rc;

    *out = NULL;
    if (bucket == NULL || !mc_s3_bucket_ok(bucket, strlen(bucket)))
        return mc_err(MC_EINVAL, "%s is not an S3 bucket name (3 to 63 characters a-z 0-9 . -, "
                      "starting and ending with a letter or digit)",
                      bucket ? shown(q, sizeof(q), bucket, strlen(bucket)) : "none");
    if (creds_file && (rc = read_creds_file(creds_file, &text)) != 0)
        return rc;
    pthread_once(&curl_once, curl_init);
    s = calloc(1, sizeof(*s));
    if (s == NULL) {
        free(text);
        return mc_err(MC_ENOMEM, "out of memory opening s3://%s", bucket);
    }
    s->endpoint = setting(text, "AWS_ENDPOINT_URL");
    s->region = setting(text, "AWS_REGION");
    if (s->region == NULL)
        s->region = setting(text, "AWS_DEFAULT_REGION");
    if (s->region == NULL)
        s->region = strdup("us-east-1");
    key = setting(text, "AWS_ACCESS_KEY_ID");
    secret = setting(text, "AWS_SECRET_ACCESS_KEY");
    bool file_key = creds_file && (key == NULL || secret == NULL) && text &&
                    (strstr(text, "aws_access_key_id") || strstr(text, "[default]"));
    if (text)
        explicit_bzero(text, strlen(text)); /* it held the secret */
    free(text);
    s->bucket = strdup(bucket);
    if (s->endpoint == NULL)
        s->endpoint = strdup("https://s3.amazonaws.com"); /* AWS itself, path-style */
    rc = 0;
    if ((key == NULL || secret == NULL) && creds_file)
        rc = mc_err(MC_EINVAL,
                    "no S3 credentials for s3://%s: the credentials file %s was read and holds "
                    "no %s line%s (nor is it set in the environment); write lines such as "
                    "AWS_ACCESS_KEY_ID=... and AWS_SECRET_ACCESS_KEY=... (optionally "
                    "AWS_ENDPOINT_URL=..., AWS_REGION=...)%s",
                    bucket, creds_file,
                    key == NULL ? "AWS_ACCESS_KEY_ID=" : "AWS_SECRET_ACCESS_KEY=",
                    key == NULL && secret == NULL ? " nor AWS_SECRET_ACCESS_KEY=" : "",
                    file_key ? "; an INI file such as ~/.aws/credentials ([default], "
                               "aws_access_key_id = ...) is not that format" : "");
    else if (key == NULL || secret == NULL)
        rc = mc_err(MC_EINVAL,
                    "no S3 credentials for s3://%s: set AWS_ACCESS_KEY_ID and "
                    "AWS_SECRET_ACCESS_KEY (or name a 0600 credentials file that has them)",
                    bucket);
    else if (asprintf(&s->userpwd, "%s:%s", key, secret) < 0 ||
             asprintf(&s->sigv4, "aws:amz:%s:s3", s->region) < 0)
        rc = mc_err(MC_ENOMEM, "out of memory opening s3://%s", bucket);
    if (secret)
        explicit_bzero(secret, strlen(secret));
    free(key);
    free(secret);
    if (rc == 0 && (s->bucket == NULL || s->endpoint == NULL || s->region == NULL))
        rc = mc_err(MC_ENOMEM, "out of memory opening s3://%s", bucket);
    if (rc) {
        mc_s3_close(s);
        return rc;
    }
    size_t el = strlen(s->endpoint);

    while (el > 0 && s->endpoint[el - 1] == '/')
        s->endpoint[--el] = '\0';
    *out = s;
    return 0;
}

void mc_s3_close(struct mc_s3 *s)
{
    if (s == NULL)
        return;
    if (s->userpwd)
        explicit_bzero(s->userpwd, strlen(s->userpwd));
    free(s->userpwd);
    free(s->sigv4);
    free(s->endpoint);
    free(s->region);
    free(s->bucket);
    free(s);
}

const char *mc_s3_bucket(const struct mc_s3 *s)
{
    return s->bucket;
}

/* ---- encoding ---------------------------------------------------------- */

/* Percent-encode s into out (cap bytes); keep_slash for a key in a path. */
static void uri_encode(const char *s, bool keep_slash, char *out, size_t cap)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;

    for (; *s && o + 4 < cap; s++) {
        unsigned char c = (unsigned char)*s;

        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '_' || c == '.' || c == '~' || (keep_slash && c == '/')) {
            out[o++] = (char)c;
        } else {
            out[o++] = '%';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        }
    }
    out[o] = '\0';
}

/* The text between <tag> and </tag> at or after *p (advancing *p), XML-unescaped. */
static bool xml_next(const char **p, const char *end, const char *tag, char *out, size_t cap)
{
    char open[64], close[64];
    const char *a, *b;
    size_t o = 0;

    snprintf(open, sizeof(open), "<%s>", tag);
    snprintf(close, sizeof(close), "</%s>", tag);
    a = memmem(*p, (size_t)(end - *p), open, strlen(open));
    if (a == NULL)
        return false;
    a += strlen(open);
    b = memmem(a, (size_t)(end - a), close, strlen(close));
    if (b == NULL)
        return false;
    *p = b + strlen(close);
    for (const char *c = a; c < b && o + 1 < cap; c++) {
        static const struct { const char *ent; char ch; } ents[] = {
            {"&amp;", '&'}, {"&lt;", '<'}, {"&gt;", '>'}, {"&quot;", '"'}, {"&apos;", '\''}};
        bool done = false;

        for (size_t i = 0; *c == '&' && i < sizeof(ents) / sizeof(ents[0]); i++) {
            size_t l = strlen(ents[i].ent);

            if ((size_t)(b - c) >= l && !memcmp(c, ents[i].ent, l)) {
                out[o++] = ents[i].ch;
                c += l - 1;
                done = true;
                break;
            }
        }
        if (!done)
            out[o++] = *c;
    }
    out[o] = '\0';
    return true;
}

/* ---- one request ------------------------------------------------------- */

struct req {
    CURL *h;
    struct curl_slist *hdrs;
    char url[4096];
    const char *method;
    const char *what;  /* for messages: "uploading part 3 of" */
    char key[1024];    /* for messages */
    /* request body */
    const char *in;
    size_t inlen, inoff;
    /* response body: into body (capped), or into dst (a range), or to fn */
    char *body;
    size_t bodylen;
    char *dst;
    size_t dstlen, dstoff;
    int (*fn)(void *arg, const void *buf, size_t n);
    void *fnarg;
    int fnrc;
    char etag[128];    /* the ETag header (upload parts) */
    long status;
    CURLcode cc;
    char cerr[CURL_ERROR_SIZE];
    int tries;
    size_t index;      /* which part or range */
    uint64_t retry_at; /* a failed transfer waiting to be sent again (monotonic ns; 0: none) */
};

/* Transfers sent again after a failure, in this process (mc_s3_retries()). */
static uint64_t retries;

uint64_t mc_s3_retries(void)
{
    return __atomic_load_n(&retries, __ATOMIC_RELAXED);
}

static uint64_t mono_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/*
 * How long before try number `tries` + 1: 0.25, 1, 2, 4 s, so that a
 * gateway restarting (a few seconds) costs a pause, not the push, and a
 * connection refused is not every try failing within a millisecond.
 */
static uint64_t backoff_ns(int tries)
{
    static const unsigned ms[] = {250, 1000, 2000, 4000};

    return (uint64_t)ms[tries < 1 ? 0 : tries > 4 ? 3 : tries - 1] * 1000000ull;
}

/* Re-add to m the handles whose retry time has come. */
static void retry_due(CURLM *m, struct req *q)
{
    if (q->h && q->retry_at && mono_ns() >= q->retry_at) {
        q->retry_at = 0;
        __atomic_fetch_add(&retries, 1, __ATOMIC_RELAXED);
        curl_multi_add_handle(m, q->h);
    }
}

static size_t on_body(char *data, size_t sz, size_t nm, void *arg)
{
    struct req *q = arg;
    size_t n = sz * nm;
    long st = 0;

    curl_easy_getinfo(q->h, CURLINFO_RESPONSE_CODE, &st);
    if (q->dst && st >= 200 && st < 300) {
        if (n > q->dstlen - q->dstoff)
            return 0; /* more than asked for: fail the transfer */
        memcpy(q->dst + q->dstoff, data, n);
        q->dstoff += n;
        return n;
    }
    if (q->fn && st >= 200 && st < 300) {
        q->fnrc = q->fn(q->fnarg, data, n);
        return q->fnrc ? 0 : n;
    }
    if (q->bodylen < BODY_CAP) {
        size_t take = n < BODY_CAP - q->bodylen ? n : BODY_CAP - q->bodylen;
        char *nb = realloc(q->body, q->bodylen + take + 1);

        if (nb == NULL)
            return 0;
        q->body = nb;
        memcpy(q->body + q->bodylen, data, take);
        q->bodylen += take;
        q->body[q->bodylen] = '\0';
    }
    return n;
}

static size_t on_send(char *buf, size_t sz, size_t nm, void *arg)
{
    struct req *q = arg;
    size_t n = sz * nm, left = q->inlen - q->inoff;

    if (n > left)
        n = left;
    memcpy(buf, q->in + q->inoff, n);
    q->inoff += n;
    return n;
}

static size_t on_header(char *data, size_t sz, size_t nm, void *arg)
{
    struct req *q = arg;
    size_t n = sz * nm;

    if (n > 5 && !strncasecmp(data, "ETag:", 5)) {
        const char *v = data + 5;
        size_t l = n - 5;

        while (l && (*v == ' '))
            v++, l--;
        while (l && (v[l - 1] == '\r' || v[l - 1] == '\n' || v[l - 1] == ' '))
            l--;
        if (l < sizeof(q->etag)) {
            memcpy(q->etag, v, l);
            q->etag[l] = '\0';
        }
    }
    return n;
}

/*
 * Set q up for METHOD KEY?QUERY (query: NULL or already sorted and encoded;
 * key NULL: the bucket itself). extra: one more header or NULL.
 */
static int req_init(struct mc_s3 *s, struct req *q, const char *method, const char *key,
                    const char *query, const char *extra, const char *what)
{
    char ekey[3 * 1024];

    memset(q, 0, sizeof(*q));
    q->method = method;
    q->what = what;
    snprintf(q->key, sizeof(q->key), "%s", key ? key : "");
    uri_encode(key ? key : "", true, ekey, sizeof(ekey));
    snprintf(q->url, sizeof(q->url), "%s/%s%s%s%s%s", s->endpoint, s->bucket, key ? "/" : "",
             ekey, query ? "?" : "", query ? query : "");
    q->h = curl_easy_init();
    if (q->h == NULL)
        return mc_err(MC_ENOMEM, "out of memory %s s3://%s/%s", what, s->bucket, q->key);
    /*
     * libcurl 7.88 leaves this header out of SigV4; without it every request
     * is 403. (No "Expect:" to suppress 100-continue: 7.88 signs that empty
     * header too, and the server then computes another signature.)
     */
    q->hdrs = curl_slist_append(NULL, "x-amz-content-sha256: UNSIGNED-PAYLOAD");
    if (extra)
        q->hdrs = curl_slist_append(q->hdrs, extra);
    curl_easy_setopt(q->h, CURLOPT_URL, q->url);
    curl_easy_setopt(q->h, CURLOPT_AWS_SIGV4, s->sigv4);
    curl_easy_setopt(q->h, CURLOPT_USERPWD, s->userpwd);
    curl_easy_setopt(q->h, CURLOPT_HTTPHEADER, q->hdrs);
    curl_easy_setopt(q->h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(q->h, CURLOPT_WRITEDATA, q);
    curl_easy_setopt(q->h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(q->h, CURLOPT_HEADERDATA, q);
    curl_easy_setopt(q->h, CURLOPT_ERRORBUFFER, q->cerr);
    curl_easy_setopt(q->h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(q->h, CURLOPT_CONNECTTIMEOUT, 10L);
    /* a stalled transfer (under 1 KiB/s for 60 s) fails and is retried */
    curl_easy_setopt(q->h, CURLOPT_LOW_SPEED_LIMIT, 1024L);
    curl_easy_setopt(q->h, CURLOPT_LOW_SPEED_TIME, 60L);
    if (!strcmp(method, "PUT")) {
        curl_easy_setopt(q->h, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(q->h, CURLOPT_READFUNCTION, on_send);
        curl_easy_setopt(q->h, CURLOPT_READDATA, q);
        curl_easy_setopt(q->h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)0);
    } else if (!strcmp(method, "HEAD")) {
        curl_easy_setopt(q->h, CURLOPT_NOBODY, 1L);
    } else if (!strcmp(method, "POST")) {
        curl_easy_setopt(q->h, CURLOPT_POST, 1L);
        curl_easy_setopt(q->h, CURLOPT_READFUNCTION, on_send);
        curl_easy_setopt(q->h, CURLOPT_READDATA, q);
        curl_easy_setopt(q->h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)0);
    } else if (strcmp(method, "GET") != 0) {
        curl_easy_setopt(q->h, CURLOPT_CUSTOMREQUEST, method);
    }
    return 0;
}

/* The request body: n bytes at buf (PUT and POST send a Content-Length). */
static void req_body(struct req *q, const void *buf, size_t n)
{
    q->in = buf;
    q->inlen = n;
    q->inoff = 0;
    if (!strcmp(q->method, "PUT"))
        curl_easy_setopt(q->h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)n);
    else
        curl_easy_setopt(q->h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)n);
}

/* Ready q to be sent again (a retry): body and cursors back to the start. */
static void req_rewind(struct req *q)
{
    q->inoff = 0;
    q->dstoff = 0;
    free(q->body);
    q->body = NULL;
    q->bodylen = 0;
    q->etag[0] = '\0';
    q->cerr[0] = '\0';
}

static void req_free(struct req *q)
{
    if (q->h)
        curl_easy_cleanup(q->h);
    curl_slist_free_all(q->hdrs);
    free(q->body);
    q->h = NULL;
    q->hdrs = NULL;
    q->body = NULL;
}

/* After the transfer: record its result. */
static void req_done(struct req *q, CURLcode cc)
{
    q->cc = cc;
    q->status = 0;
    curl_easy_getinfo(q->h, CURLINFO_RESPONSE_CODE, &q->status);
}

/* Whether a failed q is worth another try: the network, a 5xx, a throttle. */
static bool req_retryable(const struct req *q)
{
    if (q->fnrc)
        return false;
    if (q->cc != CURLE_OK)
        return q->cc != CURLE_WRITE_ERROR || q->dst == NULL;
    return q->status >= 500 || q->status == 429;
}

static bool req_ok(const struct req *q)
{
    return q->cc == CURLE_OK && q->status >= 200 && q->status < 300 &&
           (!q->dst || q->dstoff == q->dstlen);
}

/* mc_err() for a failed q: the operation, s3://bucket/key, status and S3's code. */
static int req_error(struct mc_s3 *s, const struct req *q)
{
    char code[128] = "", msg[256] = "";
    const char *p = q->body, *end = q->body ? q->body + q->bodylen : NULL;
    int mc;

    if (q->fnrc)
        return q->fnrc;
    if (q->cc != CURLE_OK)
        return mc_err(MC_EIO, "%s s3://%s/%s failed: %s (%s at %s); check that it is up and "
                      "reachable, then retry",
                      q->what, s->bucket, q->key, q->cerr[0] ? q->cerr : curl_easy_strerror(q->cc),
                      curl_easy_strerror(q->cc), s->endpoint);
    if (p) {
        const char *p2 = p;

        xml_next(&p, end, "Code", code, sizeof(code));
        xml_next(&p2, end, "Message", msg, sizeof(msg));
    }
    mc = q->status == 404 ? MC_ENOENT : q->status == 403 ? MC_EPERM : MC_EIO;
    if (q->status == 403)
        return mc_err(mc, "%s s3://%s/%s was refused: HTTP 403 %s%s%s; check AWS_ACCESS_KEY_ID "
                      "and AWS_SECRET_ACCESS_KEY (or the credentials file) and the bucket's policy",
                      q->what, s->bucket, q->key, code[0] ? code : "Forbidden", msg[0] ? ": " : "",
                      msg);
    if (q->status == 404 && !strcmp(code, "NoSuchBucket"))
        return mc_err(mc, "%s s3://%s/%s failed: the bucket %s does not exist at %s (HTTP 404 "
                      "NoSuchBucket); create it (aws s3 mb s3://%s, s3cmd mb s3://%s) or fix "
                      "--artifacts (MCACHE_ARTIFACTS) or AWS_ENDPOINT_URL",
                      q->what, s->bucket, q->key, s->bucket, s->endpoint, s->bucket, s->bucket);
    if (q->status >= 200 && q->status < 300)
        return mc_err(MC_EIO, "%s s3://%s/%s: got %zu of %zu bytes (HTTP %ld); retry", q->what,
                      s->bucket, q->key, q->dstoff, q->dstlen, q->status);
    return mc_err(mc, "%s s3://%s/%s failed: HTTP %ld %s%s%s", q->what, s->bucket, q->key,
                  q->status, code[0] ? code : "(no S3 error code)", msg[0] ? ": " : "", msg);
}

void mc_s3_deadline(struct mc_s3 *s, unsigned ms)
{
    s->deadline = ms ? mono_ns() + (uint64_t)ms * 1000000u : 0;
}

/* Perform q (blocking) with retries, within s's deadline; on failure, the error. Frees nothing. */
static int req_run(struct mc_s3 *s, struct req *q)
{
    for (q->tries = 1;; q->tries++) {
        if (s->deadline) {
            uint64_t now = mono_ns();
            long left = now < s->deadline ? (long)((s->deadline - now) / 1000000u) : 0;

            if (left < 1)
                left = 1; /* this try still goes, briefly: its failure is the message */
            curl_easy_setopt(q->h, CURLOPT_TIMEOUT_MS, left);
            curl_easy_setopt(q->h, CURLOPT_CONNECTTIMEOUT_MS, left < 10000 ? left : 10000L);
        }
        req_done(q, curl_easy_perform(q->h));
        if (req_ok(q))
            return 0;
        uint64_t ns = backoff_ns(q->tries);

        if (q->tries >= TRIES || !req_retryable(q) ||
            (s->deadline && mono_ns() + ns >= s->deadline))
            return req_error(s, q);
        req_rewind(q);
        __atomic_fetch_add(&retries, 1, __ATOMIC_RELAXED);

        nanosleep(&(struct timespec){.tv_sec = (time_t)(ns / 1000000000u),
                                     .tv_nsec = (long)(ns % 1000000000u)},
                  NULL);
    }
}

/* ---- simple requests ----------------------------------------------------- */

static int simple(struct mc_s3 *s, const char *method, const char *key, const char *query,
                  const char *extra, const void *buf, size_t n, const char *what, struct req *q)
{
    int rc = req_init(s, q, method, key, query, extra, what);

    if (rc == 0 && buf)
        req_body(q, buf, n);
    if (rc == 0)
        rc = req_run(s, q);
    return rc;
}

int mc_s3_create_bucket(struct mc_s3 *s)
{
    struct req q;
    int rc = req_init(s, &q, "PUT", NULL, NULL, NULL, "creating the bucket");

    if (rc == 0) {
        req_body(&q, "", 0);
        rc = req_run(s, &q);
        if (rc && q.body && strstr(q.body, "<Code>BucketAlreadyOwnedByYou</Code>"))
            rc = 0;
    }
    req_free(&q);
    return rc;
}

int mc_s3_put(struct mc_s3 *s, const char *key, const void *buf, size_t n)
{
    struct req q;
    int rc = simple(s, "PUT", key, NULL, NULL, buf ? buf : "", n, "uploading", &q);

    req_free(&q);
    return rc;
}

int mc_s3_head(struct mc_s3 *s, const char *key, uint64_t *size)
{
    struct req q;
    int rc = simple(s, "HEAD", key, NULL, NULL, NULL, 0, "looking up", &q);

    if (rc == 0 && size) {
        curl_off_t len = -1;

        curl_easy_getinfo(q.h, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &len);
        *size = len < 0 ? 0 : (uint64_t)len;
    }
    req_free(&q);
    return rc;
}

int mc_s3_get(struct mc_s3 *s, const char *key, char **out, size_t *n)
{
    struct req q;
    int rc = simple(s, "GET", key, NULL, NULL, NULL, 0, "reading", &q);

    *out = NULL;
    if (rc == 0) {
        *out = q.body ? q.body : strdup("");
        *n = q.bodylen;
        q.body = NULL;
        if (*out == NULL)
            rc = mc_err(MC_ENOMEM, "out of memory reading s3://%s/%s", s->bucket, key);
    }
    req_free(&q);
    return rc;
}

int mc_s3_get_stream(struct mc_s3 *s, const char *key,
                     int (*fn)(void *arg, const void *buf, size_t n), void *arg)
{
    struct req q;
    int rc = req_init(s, &q, "GET", key, NULL, NULL, "reading");

    if (rc == 0) {
        q.fn = fn;
        q.fnarg = arg;
        /* no retry: fn has already seen the first bytes */
        req_done(&q, curl_easy_perform(q.h));
        rc = req_ok(&q) ? 0 : req_error(s, &q);
    }
    req_free(&q);
    return rc;
}

int mc_s3_delete(struct mc_s3 *s, const char *key)
{
    struct req q;
    int rc = simple(s, "DELETE", key, NULL, NULL, NULL, 0, "deleting", &q);

    req_free(&q);
    return rc;
}

int mc_s3_copy(struct mc_s3 *s, const char *src, const char *dst)
{
    char ekey[3 * 1024], hdr[3 * 1024 + 128];
    struct req q;
    int rc;

    uri_encode(src, true, ekey, sizeof(ekey));
    snprintf(hdr, sizeof(hdr), "x-amz-copy-source: /%s/%s", s->bucket, ekey);
    rc = simple(s, "PUT", dst, NULL, hdr, "", 0, "copying into", &q);
    /* a copy can fail after its 200 has been sent: the error is in the body */
    if (rc == 0 && q.body && strstr(q.body, "<Error>")) {
        q.status = 500;
        rc = req_error(s, &q);
    }
    req_free(&q);
    return rc;
}

int mc_s3_abort_upload(struct mc_s3 *s, const char *key, const char *upload_id)
{
    char eid[1024], query[1100];
    struct req q;
    int rc;

    uri_encode(upload_id, false, eid, sizeof(eid));
    snprintf(query, sizeof(query), "uploadId=%s", eid);
    rc = simple(s, "DELETE", key, query, NULL, NULL, 0, "aborting the upload of", &q);
    if (rc == MC_ENOENT)
        rc = 0; /* already gone (NoSuchUpload) */
    req_free(&q);
    return rc;
}

/* ---- listings ------------------------------------------------------------ */

int mc_s3_list(struct mc_s3 *s, const char *prefix,
               int (*fn)(void *arg, const char *key, uint64_t size, const char *modified),
               void *arg)
{
    char token[1024] = "", etok[3 * 1024], epre[3 * 1024], query[7 * 1024];
    int rc = 0;

    uri_encode(prefix, false, epre, sizeof(epre));
    do {
        struct req q;
        char trunc[16] = "";

        uri_encode(token, false, etok, sizeof(etok));
        /* sorted, each with '=' (libcurl signs the query as written) */
        snprintf(query, sizeof(query), "%s%s%slist-type=2&prefix=%s",
                 token[0] ? "continuation-token=" : "", token[0] ? etok : "", token[0] ? "&" : "",
                 epre);
        rc = simple(s, "GET", NULL, query, NULL, NULL, 0, "listing", &q);
        if (rc == 0 && q.body) {
            const char *p = q.body, *end = q.body + q.bodylen, *t = q.body;
            char *c;

            while (rc == 0 && (c = memmem(p, (size_t)(end - p), "<Contents>", 10)) != NULL) {
                char key[1024] = "", size[32] = "0", mod[64] = "";
                const char *ce = memmem(c, (size_t)(end - c), "</Contents>", 11);
                const char *k = c, *z = c, *m = c;

                if (ce == NULL)
                    break;
                xml_next(&k, ce, "Key", key, sizeof(key));
                xml_next(&z, ce, "Size", size, sizeof(size));
                xml_next(&m, ce, "LastModified", mod, sizeof(mod));
                rc = fn(arg, key, strtoull(size, NULL, 10), mod);
                p = ce + 11;
            }
            token[0] = '\0';
            xml_next(&t, end, "IsTruncated", trunc, sizeof(trunc));
            t = q.body;
            if (!strcmp(trunc, "true"))
                xml_next(&t, end, "NextContinuationToken", token, sizeof(token));
        }
        req_free(&q);
    } while (rc == 0 && token[0]);
    return rc;
}

int mc_s3_list_uploads(struct mc_s3 *s, const char *prefix,
                       int (*fn)(void *arg, const char *key, const char *upload_id,
                                 const char *initiated),
                       void *arg)
{
    char km[1024] = "", im[1024] = "", epre[3 * 1024], ekm[3 * 1024], eim[3 * 1024];
    char query[10 * 1024];
    int rc = 0;

    uri_encode(prefix, false, epre, sizeof(epre));
    do {
        struct req q;
        char trunc[16] = "";

        uri_encode(km, false, ekm, sizeof(ekm));
        uri_encode(im, false, eim, sizeof(eim));
        if (km[0])
            snprintf(query, sizeof(query), "key-marker=%s&prefix=%s&upload-id-marker=%s&uploads=",
                     ekm, epre, eim);
        else
            snprintf(query, sizeof(query), "prefix=%s&uploads=", epre);
        rc = simple(s, "GET", NULL, query, NULL, NULL, 0, "listing the uploads in", &q);
        if (rc == 0 && q.body) {
            const char *p = q.body, *end = q.body + q.bodylen, *t = q.body;
            char *c;

            while (rc == 0 && (c = memmem(p, (size_t)(end - p), "<Upload>", 8)) != NULL) {
                char key[1024] = "", id[512] = "", init[64] = "";
                const char *ue = memmem(c, (size_t)(end - c), "</Upload>", 9);
                const char *k = c, *i = c, *d = c;

                if (ue == NULL)
                    break;
                xml_next(&k, ue, "Key", key, sizeof(key));
                xml_next(&i, ue, "UploadId", id, sizeof(id));
                xml_next(&d, ue, "Initiated", init, sizeof(init));
                rc = fn(arg, key, id, init);
                p = ue + 9;
            }
            km[0] = im[0] = '\0';
            xml_next(&t, end, "IsTruncated", trunc, sizeof(trunc));
            if (!strcmp(trunc, "true")) {
                t = q.body;
                xml_next(&t, end, "NextKeyMarker", km, sizeof(km));
                t = q.body;
                xml_next(&t, end, "NextUploadIdMarker", im, sizeof(im));
            }
        }
        req_free(&q);
    } while (rc == 0 && km[0]);
    return rc;
}

/* ---- parallel ranged reads ----------------------------------------------- */

void mc_s3_set_cancel(struct mc_s3 *s, const atomic_bool *flag)
{
    s->cancel = flag;
}

int mc_s3_read(struct mc_s3 *s, const char *key, uint64_t off, void *buf, size_t n, size_t part,
               unsigned conc)
{
    size_t nparts, next = 0, done = 0;
    struct req *qs;
    CURLM *m;
    int rc = 0, running;

    if (n == 0)
        return 0;
    part = part ? part : READ_PART;
    conc = conc ? conc : READ_CONC;
    nparts = (n + part - 1) / part;
    if (conc > nparts)
        conc = (unsigned)nparts;
    qs = calloc(conc, sizeof(*qs));
    m = curl_multi_init();
    if (qs == NULL || m == NULL) {
        free(qs);
        if (m)
            curl_multi_cleanup(m);
        return mc_err(MC_ENOMEM, "out of memory reading s3://%s/%s", s->bucket, key);
    }
    while (rc == 0 && done < nparts) {
        if (s->cancel && atomic_load(s->cancel)) {
            rc = mc_err(MC_EIO, "reading s3://%s/%s: cancelled", s->bucket, key);
            break;
        }
        /* fill idle slots with the next ranges */
        for (unsigned j = 0; j < conc && rc == 0 && next < nparts; j++) {
            struct req *q = &qs[j];
            char range[96];
            size_t len;

            if (q->h)
                continue;
            rc = req_init(s, q, "GET", key, NULL, NULL, "reading");
            if (rc)
                break;
            len = next + 1 == nparts ? n - next * part : part;
            q->index = next;
            q->dst = (char *)buf + next * part;
            q->dstlen = len;
            q->tries = 1;
            snprintf(range, sizeof(range), "%llu-%llu",
                     (unsigned long long)(off + next * part),
                     (unsigned long long)(off + next * part + len - 1));
            curl_easy_setopt(q->h, CURLOPT_RANGE, range);
            curl_easy_setopt(q->h, CURLOPT_PRIVATE, q);
            curl_multi_add_handle(m, q->h);
            next++;
        }
        if (rc)
            break;
        for (unsigned j = 0; j < conc; j++)
            retry_due(m, &qs[j]);
        curl_multi_perform(m, &running);
        CURLMsg *msg;
        int left;

        while ((msg = curl_multi_info_read(m, &left)) != NULL) {
            struct req *q;

            if (msg->msg != CURLMSG_DONE)
                continue;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&q);
            req_done(q, msg->data.result);
            curl_multi_remove_handle(m, q->h);
            if (req_ok(q) && q->status == 206) {
                req_free(q);
                done++;
            } else if (q->tries < TRIES && req_retryable(q)) {
                /* a failed range is read again, into the same place, after a pause */
                req_rewind(q);
                q->retry_at = mono_ns() + backoff_ns(q->tries);
                q->tries++;
            } else {
                if (req_ok(q))
                    rc = mc_err(MC_EIO, "reading s3://%s/%s: the server ignored the range "
                                "(HTTP %ld, not 206)", s->bucket, key, q->status);
                else
                    rc = req_error(s, q);
                break;
            }
        }
        if (rc == 0 && done < nparts)
            curl_multi_poll(m, NULL, 0, running ? 1000 : 50, NULL);
    }
    for (unsigned j = 0; j < conc; j++) {
        if (qs[j].h) {
            curl_multi_remove_handle(m, qs[j].h);
            req_free(&qs[j]);
        }
    }
    curl_multi_cleanup(m);
    free(qs);
    return rc;
}

/* ---- multipart upload ------------------------------------------------------ */

struct slot {
    struct req q;
    char *buf;
    size_t len;
    bool busy;
    unsigned partno;
};

struct mc_s3_upload {
    struct mc_s3 *s;
    char *key;
    char upload_id[512];
    size_t part_size;
    unsigned conc;
    struct slot *slots;
    struct slot *fill; /* the slot being filled (NULL: none yet) */
    unsigned nparts;   /* parts started */
    char (*etags)[128];
    unsigned etcap;
    CURLM *m;
    int failed;
};

const char *mc_s3_upload_id(const struct mc_s3_upload *u)
{
    return u->upload_id;
}

int mc_s3_upload_begin(struct mc_s3 *s, const char *key, size_t part_size, unsigned conc,
                       struct mc_s3_upload **out)
{
    struct mc_s3_upload *u = calloc(1, sizeof(*u));
    struct req q;
    int rc;

    *out = NULL;
    if (u == NULL)
        return mc_err(MC_ENOMEM, "out of memory uploading s3://%s/%s", s->bucket, key);
    u->s = s;
    u->key = strdup(key);
    u->part_size = part_size ? part_size : DEF_PART;
    if (u->part_size < (5u << 20))
        u->part_size = 5u << 20; /* S3's smallest part but the last */
    u->conc = conc ? conc : DEF_CONC;
    u->slots = calloc(u->conc, sizeof(*u->slots));
    u->m = curl_multi_init();
    if (u->key == NULL || u->slots == NULL || u->m == NULL) {
        rc = mc_err(MC_ENOMEM, "out of memory uploading s3://%s/%s", s->bucket, key);
        goto fail;
    }
    rc = simple(s, "POST", key, "uploads=", NULL, "", 0, "starting the upload of", &q);
    if (rc == 0) {
        const char *p = q.body;

        if (p == NULL ||
            !xml_next(&p, q.body + q.bodylen, "UploadId", u->upload_id, sizeof(u->upload_id)))
            rc = mc_err(MC_EIO, "starting the upload of s3://%s/%s: no UploadId in the answer",
                        s->bucket, key);
    }
    req_free(&q);
    if (rc)
        goto fail;
    *out = u;
    return 0;
fail:
    if (u->m)
        curl_multi_cleanup(u->m);
    free(u->slots);
    free(u->key);
    free(u);
    return rc;
}

/* Handle finished part transfers: record ETags, retry failures (3 tries). */
static int upload_reap(struct mc_s3_upload *u)
{
    CURLMsg *msg;
    int left;

    while ((msg = curl_multi_info_read(u->m, &left)) != NULL) {
        struct slot *sl;

        if (msg->msg != CURLMSG_DONE)
            continue;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&sl);
        req_done(&sl->q, msg->data.result);
        curl_multi_remove_handle(u->m, sl->q.h);
        if (req_ok(&sl->q) && sl->q.etag[0]) {
            snprintf(u->etags[sl->partno - 1], sizeof(u->etags[0]), "%s", sl->q.etag);
            req_free(&sl->q);
            sl->busy = false;
            sl->len = 0;
        } else if (sl->q.tries < TRIES && (req_retryable(&sl->q) || req_ok(&sl->q))) {
            req_rewind(&sl->q);
            sl->q.retry_at = mono_ns() + backoff_ns(sl->q.tries);
            sl->q.tries++;
        } else {
            if (req_ok(&sl->q))
                sl->q.status = 500;
            return u->failed = req_error(u->s, &sl->q);
        }
    }
    return 0;
}

/* Drive transfers; with wait, block until at least something finished or 1 s. */
static int upload_pump(struct mc_s3_upload *u, bool wait)
{
    int running;

    for (unsigned j = 0; j < u->conc; j++)
        retry_due(u->m, &u->slots[j].q);
    curl_multi_perform(u->m, &running);
    if (upload_reap(u))
        return u->failed;
    if (wait) {
        /* also while only retries wait: the poll's timeout paces them */
        curl_multi_poll(u->m, NULL, 0, running ? 1000 : 50, NULL);
        curl_multi_perform(u->m, &running);
        return upload_reap(u);
    }
    return 0;
}

/* Send the filled slot as the next part. */
static int upload_send(struct mc_s3_upload *u, struct slot *sl)
{
    char eid[1024], query[1200];
    int rc;

    if (u->nparts >= 10000)
        return mc_err(MC_EINVAL, "uploading s3://%s/%s: more than 10000 parts of %zu bytes; use "
                      "larger parts", u->s->bucket, u->key, u->part_size);
    if (u->nparts >= u->etcap) {
        unsigned cap = u->etcap ? u->etcap * 2 : 64;
        void *ne = realloc(u->etags, cap * sizeof(u->etags[0]));

        if (ne == NULL)
            return mc_err(MC_ENOMEM, "out of memory uploading s3://%s/%s", u->s->bucket, u->key);
        u->etags = ne;
        u->etcap = cap;
    }
    sl->partno = ++u->nparts;
    u->etags[sl->partno - 1][0] = '\0';
    uri_encode(u->upload_id, false, eid, sizeof(eid));
    /* sorted: partNumber before uploadId */
    snprintf(query, sizeof(query), "partNumber=%u&uploadId=%s", sl->partno, eid);
    rc = req_init(u->s, &sl->q, "PUT", u->key, query, NULL, "uploading a part of");
    if (rc)
        return rc;
    req_body(&sl->q, sl->buf, sl->len);
    sl->q.tries = 1;
    curl_easy_setopt(sl->q.h, CURLOPT_PRIVATE, sl);
    curl_multi_add_handle(u->m, sl->q.h);
    sl->busy = true;
    return 0;
}

/* A free slot to fill, waiting for a part to finish if all are busy. */
static int upload_slot(struct mc_s3_upload *u, struct slot **out)
{
    for (;;) {
        for (unsigned j = 0; j < u->conc; j++) {
            struct slot *sl = &u->slots[j];

            if (sl->busy)
                continue;
            if (sl->buf == NULL && (sl->buf = malloc(u->part_size)) == NULL)
                return mc_err(MC_ENOMEM, "out of memory uploading s3://%s/%s (parts of %zu bytes)",
                              u->s->bucket, u->key, u->part_size);
            sl->len = 0;
            *out = sl;
            return 0;
        }
        int rc = upload_pump(u, true);

        if (rc)
            return rc;
    }
}

int mc_s3_upload_write(struct mc_s3_upload *u, const void *data, size_t n)
{
    const char *p = data;
    int rc;

    if (u->failed)
        return u->failed;
    while (n) {
        if (u->fill == NULL && (rc = upload_slot(u, &u->fill)) != 0)
            return u->failed = rc;
        size_t take = u->part_size - u->fill->len;

        if (take > n)
            take = n;
        memcpy(u->fill->buf + u->fill->len, p, take);
        u->fill->len += take;
        p += take;
        n -= take;
        if (u->fill->len == u->part_size) {
            rc = upload_send(u, u->fill);
            u->fill = NULL;
            if (rc)
                return u->failed = rc;
        }
    }
    return upload_pump(u, false);
}

static void upload_free(struct mc_s3_upload *u)
{
    for (unsigned j = 0; j < u->conc; j++) {
        if (u->slots[j].q.h) {
            curl_multi_remove_handle(u->m, u->slots[j].q.h);
            req_free(&u->slots[j].q);
        }
        free(u->slots[j].buf);
    }
    curl_multi_cleanup(u->m);
    free(u->slots);
    free(u->etags);
    free(u->key);
    free(u);
}

int mc_s3_upload_complete(struct mc_s3_upload *u)
{
    char eid[1024], query[1100];
    struct req q;
    char *xml = NULL;
    size_t xl = 0;
    FILE *f;
    int rc = u->failed;

    /* the last part (or the only one, which may be empty) */
    if (rc == 0 && (u->fill || u->nparts == 0)) {
        if (u->fill == NULL)
            rc = upload_slot(u, &u->fill);
        if (rc == 0)
            rc = upload_send(u, u->fill);
        u->fill = NULL;
    }
    for (bool busy = true; rc == 0 && busy;) {
        busy = false;
        for (unsigned j = 0; j < u->conc; j++)
            busy |= u->slots[j].busy;
        if (busy)
            rc = upload_pump(u, true);
    }
    if (rc) {
        mc_s3_upload_abort(u);
        return rc;
    }
    f = open_memstream(&xml, &xl);
    if (f == NULL) {
        mc_s3_upload_abort(u);
        return mc_err(MC_ENOMEM, "out of memory completing s3://%s/%s", u->s->bucket, u->key);
    }
    fputs("<CompleteMultipartUpload>", f);
    for (unsigned i = 0; i < u->nparts; i++)
        fprintf(f, "<Part><PartNumber>%u</PartNumber><ETag>%s</ETag></Part>", i + 1, u->etags[i]);
    fputs("</CompleteMultipartUpload>", f);
    fclose(f);
    uri_encode(u->upload_id, false, eid, sizeof(eid));
    snprintf(query, sizeof(query), "uploadId=%s", eid);
    rc = simple(u->s, "POST", u->key, query, "Content-Type: application/xml", xml, xl,
                "completing the upload of", &q);
    /* like a copy, a completion can fail after its 200: the error is in the body */
    if (rc == 0 && q.body && strstr(q.body, "<Error>")) {
        q.status = 500;
        rc = req_error(u->s, &q);
    }
    req_free(&q);
    free(xml);
    if (rc) {
        mc_s3_upload_abort(u);
        return rc;
    }
    upload_free(u);
    return 0;
}

void mc_s3_upload_abort(struct mc_s3_upload *u)
{
    char saved[1024];

    if (u == NULL)
        return;
    /* keep the message of what failed, not of the abort */
    snprintf(saved, sizeof(saved), "%s", mc_last_error());
    for (unsigned j = 0; j < u->conc; j++) {
        if (u->slots[j].q.h) {
            curl_multi_remove_handle(u->m, u->slots[j].q.h);
            req_free(&u->slots[j].q);
        }
        u->slots[j].busy = false;
    }
    mc_s3_abort_upload(u->s, u->key, u->upload_id);
    upload_free(u);
    if (saved[0])
        mc_err(MC_EIO, "%s", saved);
}

int mc_s3_upload_from(struct mc_s3 *s, const char *key, size_t part_size, unsigned conc,
                      long (*rd)(void *arg, void *buf, size_t cap), void *arg)
{
    struct mc_s3_upload *u;
    char *buf = malloc(1u << 20);
    int rc;

    if (buf == NULL)
        return mc_err(MC_ENOMEM, "out of memory uploading s3://%s/%s", s->bucket, key);
    rc = mc_s3_upload_begin(s, key, part_size, conc, &u);
    while (rc == 0) {
        long k = rd(arg, buf, 1u << 20);

        if (k < 0) {
            mc_s3_upload_abort(u);
            free(buf);
            return (int)k;
        }
        if (k == 0)
            break;
        rc = mc_s3_upload_write(u, buf, (size_t)k);
        if (rc)
            mc_s3_upload_abort(u);
    }
    if (rc == 0)
        rc = mc_s3_upload_complete(u);
    free(buf);
    return rc;
}

/* ---- copy in parts, signed by hand ------------------------------------------- */

static void hex_of(const unsigned char *d, size_t n, char *out)
{
    static const char hex[] = "0123456789abcdef";

    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[d[i] >> 4];
        out[2 * i + 1] = hex[d[i] & 15];
    }
    out[2 * n] = '\0';
}

/*
 * SigV4 by hand for one request whose x-amz headers libcurl 7.88 would sign
 * in the wrong order (it sorts whole "name:value" lines, so
 * x-amz-copy-source-range lands before x-amz-copy-source). hdrs: the
 * x-amz-* headers besides date and content hash, "name:value", sorted by
 * name. Appends Authorization, x-amz-date and those headers to q.
 */
static int sign_by_hand(struct mc_s3 *s, struct req *q, const char *method, const char *path,
                        const char *query, const char *const *hdrs, size_t nh)
{
    char host[512], date[32], day[16], scope[128], canon[8192], sts[512], hashhex[65];
    char sighex[65], auth[1024], line[3200], signed_names[512] = "host;x-amz-content-sha256";
    unsigned char k[32], h[32];
    const char *secret = strchr(s->userpwd, ':') + 1;
    const char *hp = strstr(s->endpoint, "://");
    size_t keylen = (size_t)(secret - 1 - s->userpwd);
    time_t now = time(NULL);
    struct tm tm;
    size_t o;

    snprintf(host, sizeof(host), "%s", hp ? hp + 3 : s->endpoint);
    host[strcspn(host, "/")] = '\0';
    /* curl leaves a scheme's default port out of Host: so must the signature */
    size_t hl = strlen(host);

    if ((!strncmp(s->endpoint, "http://", 7) && hl > 3 && !strcmp(host + hl - 3, ":80")) ||
        (!strncmp(s->endpoint, "https://", 8) && hl > 4 && !strcmp(host + hl - 4, ":443")))
        host[strrchr(host, ':') - host] = '\0';
    gmtime_r(&now, &tm);
    strftime(date, sizeof(date), "%Y%m%dT%H%M%SZ", &tm);
    strftime(day, sizeof(day), "%Y%m%d", &tm);
    snprintf(scope, sizeof(scope), "%s/%s/s3/aws4_request", day, s->region);
    o = (size_t)snprintf(canon, sizeof(canon),
                         "%s\n%s\n%s\nhost:%s\nx-amz-content-sha256:UNSIGNED-PAYLOAD\n", method,
                         path, query ? query : "", host);
    for (size_t i = 0; i < nh && o < sizeof(canon); i++) {
        o += (size_t)snprintf(canon + o, sizeof(canon) - o, "%s\n", hdrs[i]);
        size_t l = strlen(signed_names);

        snprintf(signed_names + l, sizeof(signed_names) - l, ";%.*s",
                 (int)strcspn(hdrs[i], ":"), hdrs[i]);
    }
    strcat(signed_names, ";x-amz-date");
    if (o < sizeof(canon))
        o += (size_t)snprintf(canon + o, sizeof(canon) - o, "x-amz-date:%s\n\n%s\nUNSIGNED-PAYLOAD",
                              date, signed_names);
    if (o >= sizeof(canon))
        return mc_err(MC_EINVAL, "%s s3://%s/%s: the request is too long to sign", q->what,
                      s->bucket, q->key);
    gnutls_hash_fast(GNUTLS_DIG_SHA256, canon, strlen(canon), h);
    hex_of(h, 32, hashhex);
    snprintf(sts, sizeof(sts), "AWS4-HMAC-SHA256\n%s\n%s\n%s", date, scope, hashhex);
    /* the signing key: HMAC chain from "AWS4" + secret over day, region, service */
    {
        char k0[256];

        snprintf(k0, sizeof(k0), "AWS4%s", secret);
        gnutls_hmac_fast(GNUTLS_MAC_SHA256, k0, strlen(k0), day, strlen(day), k);
        explicit_bzero(k0, sizeof(k0));
    }
    gnutls_hmac_fast(GNUTLS_MAC_SHA256, k, 32, s->region, strlen(s->region), k);
    gnutls_hmac_fast(GNUTLS_MAC_SHA256, k, 32, "s3", 2, k);
    gnutls_hmac_fast(GNUTLS_MAC_SHA256, k, 32, "aws4_request", 12, k);
    gnutls_hmac_fast(GNUTLS_MAC_SHA256, k, 32, sts, strlen(sts), h);
    explicit_bzero(k, sizeof(k));
    hex_of(h, 32, sighex);
    snprintf(auth, sizeof(auth),
             "Authorization: AWS4-HMAC-SHA256 Credential=%.*s/%s, SignedHeaders=%s, Signature=%s",
             (int)keylen, s->userpwd, scope, signed_names, sighex);
    q->hdrs = curl_slist_append(q->hdrs, auth);
    snprintf(line, sizeof(line), "x-amz-date: %s", date);
    q->hdrs = curl_slist_append(q->hdrs, line);
    for (size_t i = 0; i < nh; i++) {
        size_t n = strcspn(hdrs[i], ":");

        snprintf(line, sizeof(line), "%.*s: %s", (int)n, hdrs[i], hdrs[i] + n + 1);
        q->hdrs = curl_slist_append(q->hdrs, line);
    }
    curl_easy_setopt(q->h, CURLOPT_HTTPHEADER, q->hdrs);
    curl_easy_setopt(q->h, CURLOPT_AWS_SIGV4, NULL);
    curl_easy_setopt(q->h, CURLOPT_USERPWD, NULL);
    return 0;
}

int mc_s3_copy_parts(struct mc_s3 *s, const char *src, const char *dst, uint64_t size,
                     uint64_t part)
{
    char esrc[3 * 1024], edst[3 * 1024], path[3 * 1024 + 80], eid[1024], query[1200];
    char source[3 * 1024 + 100], range[96];
    struct mc_s3_upload *u;
    int rc;

    part = part ? part : (1ull << 30);
    if (part < (5u << 20))
        part = 5u << 20;
    rc = mc_s3_upload_begin(s, dst, 5u << 20, 1, &u);
    if (rc)
        return rc;
    uri_encode(src, true, esrc, sizeof(esrc));
    uri_encode(dst, true, edst, sizeof(edst));
    snprintf(path, sizeof(path), "/%s/%s", s->bucket, edst);
    snprintf(source, sizeof(source), "x-amz-copy-source:/%s/%s", s->bucket, esrc);
    uri_encode(u->upload_id, false, eid, sizeof(eid));
    for (uint64_t off = 0; rc == 0 && off < size; off += part) {
        uint64_t end = off + part < size ? off + part : size;
        const char *hdrs[2] = {source, range};
        struct req q;
        char etag[128] = "";

        if (u->nparts >= u->etcap) {
            unsigned cap = u->etcap ? u->etcap * 2 : 64;
            void *ne = realloc(u->etags, cap * sizeof(u->etags[0]));

            if (ne == NULL) {
                rc = mc_err(MC_ENOMEM, "out of memory copying into s3://%s/%s", s->bucket, dst);
                break;
            }
            u->etags = ne;
            u->etcap = cap;
        }
        snprintf(query, sizeof(query), "partNumber=%u&uploadId=%s", u->nparts + 1, eid);
        snprintf(range, sizeof(range), "x-amz-copy-source-range:bytes=%llu-%llu",
                 (unsigned long long)off, (unsigned long long)end - 1);
        rc = req_init(s, &q, "PUT", dst, query, NULL, "copying a part into");
        if (rc == 0)
            rc = sign_by_hand(s, &q, "PUT", path, query, hdrs, 2);
        if (rc == 0) {
            req_body(&q, "", 0);
            rc = req_run(s, &q);
        }
        if (rc == 0) {
            const char *p = q.body;

            if (p == NULL || !xml_next(&p, q.body + q.bodylen, "ETag", etag, sizeof(etag)))
                rc = mc_err(MC_EIO, "copying part %u into s3://%s/%s: no ETag in the answer",
                            u->nparts + 1, s->bucket, dst);
        }
        req_free(&q);
        if (rc == 0)
            snprintf(u->etags[u->nparts++], sizeof(u->etags[0]), "%s", etag);
    }
    if (rc) {
        mc_s3_upload_abort(u);
        return rc;
    }
    return mc_s3_upload_complete(u);
}
