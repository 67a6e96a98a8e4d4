/*
 * artifacts_s3.c - the artifact store in an S3-compatible object store
 * (struct mc_art_store_ops in backend.h), content-addressed. Under
 * s3://BUCKET/PREFIX:
 *
 *   PREFIX/xxh3-128/<hex>               the bytes, once per checksum
 *   PREFIX/refs/<hex>/<name>/<version>  empty: name@version refers to <hex>
 *   PREFIX/versions/<name>/<version>    "xxh3-128:<hex>": which bytes it is
 *   PREFIX/tmp/push-<host>-<pid>-<start>-<n>  a push being staged
 *   PREFIX/intent                       the commit marker (backend.h)
 *   PREFIX/registry                     the registry it belongs to (bind_check)
 *
 * So the same bytes pushed twice are stored once, and an object goes only
 * when the last refs/<hex>/ entry does (remove_version). The metadata stays
 * the authority on what exists; refs/ and versions/ are what the store needs
 * to count references and to find a version's object without it.
 *
 * STAGING. A push learns its checksum only at its last byte, but S3 fixes an
 * object's key when its upload starts and has no rename. Two ways: stage the
 * parts on local disk and upload under the final key at the end (a disk hop
 * and a second pass over every byte, on the host that wants neither), or
 * upload to a temporary key while hashing and copy server-side to the final
 * key. This store does the latter: the client's bytes cross the network once,
 * in parallel parts, in constant memory; the price is a server-side copy
 * (inside the store, no client bandwidth), skipped entirely when the object
 * already exists (a dedup hit: the temporary object is just deleted).
 * CopyObject takes objects up to 5 GiB; larger ones are copied in 1 GiB
 * ranges (UploadPartCopy), still inside the store.
 *
 * PLACE, THEN BIND. The copy to the content address (minutes for gigabytes)
 * runs before the registry's writer lock (place), the small PUTs that make
 * it name@version's under it (commit: mapping, reference, and a HEAD that
 * copies again in the rare case a removal of the same bytes deleted the
 * object in between). Between the two the object is referenced by nothing,
 * so the sweep of unreferenced content (gc, fsck) spares objects younger
 * than the grace period, MCACHE_S3_STALE_S; a push that dies in between
 * leaves one that gc deletes once it is older.
 *
 * DEAD PUSHES. A push's temporary key names its host, pid and the pid's
 * start time (from /proc), so a sweep on the same host can tell a dead
 * pusher from a live one exactly (pid reuse changes the start time). For
 * other hosts' pushes only age can tell: anything older than
 * MCACHE_S3_STALE_S seconds (default one day) counts as dead. A sweep
 * removes both the temporary objects and the unfinished multipart uploads
 * (which S3 otherwise keeps, and bills, forever).
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "common/err.h"
#include "index/name.h"
#include "index/semver.h"
#include "registry/backend.h"
#include "registry/files.h"
#include "registry/s3.h"

#define CK_PREFIX "xxh3-128:"

struct s3store {
    struct mc_art_store s;
    struct mc_s3 *c;
    char *prefix; /* "" or "p/" (with its slash) */
    char *root;   /* s3://BUCKET/PREFIXversions */
    char host[64];
    char ident[320]; /* the registry's identity (PREFIX/registry) */
    bool bound;      /* PREFIX/registry was found to be ours, or written */
    struct mc_art_conf conf;
    char (*cand)[33]; /* sweep: unreferenced objects found without the lock */
    size_t ncand;
};

/* How long an intent_recover's first look may take (under the writer lock). */
#define RECOVER_MS 5000

/* What p->hash points to for an S3 put. */
struct s3put {
    XXH3_state_t *xs;
    struct mc_s3_upload *u; /* until completed or aborted */
    bool staged;            /* the temporary object exists */
};

static struct s3store *s3_of(struct mc_art_store *s)
{
    return (struct s3store *)s;
}

static void warnf(struct s3store *t, const char *fmt, const char *a)
{
    char msg[1400];

    snprintf(msg, sizeof(msg), fmt, a);
    t->conf.warn(t->conf.warn_arg, msg);
}

/* The hex part of "xxh3-128:<hex>" (NULL if it is not one). */
static const char *ck_hex(const char *checksum)
{
    if (strncmp(checksum, CK_PREFIX, strlen(CK_PREFIX)) != 0)
        return NULL;
    checksum += strlen(CK_PREFIX);
    if (strlen(checksum) != 32 || strspn(checksum, "0123456789abcdef") != 32)
        return NULL;
    return checksum;
}

/* ---- who is pushing --------------------------------------------------- */

/* A process's start time (clock ticks after boot, field 22 of /proc/PID/stat); 0: none. */
static unsigned long long proc_start(long pid)
{
    char path[64], buf[1024], *p;
    unsigned long long st = 0;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
    f = fopen(path, "re");
    if (f == NULL)
        return 0;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);

    fclose(f);
    buf[n] = '\0';
    p = strrchr(buf, ')'); /* the command may hold spaces and parentheses */
    if (p == NULL)
        return 0;
    /* after ")": state is field 3; starttime is field 22 */
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d %*d "
                      "%*d %llu",
               &st) != 1)
        return 0;
    return st;
}

/*
 * Whether S3's time modified (2026-12-03T16:59:17.000Z) is older than the
 * grace period, MCACHE_S3_STALE_S seconds (default one day): a push that
 * left it is surely dead (an unreadable time: no).
 */
static bool stale(const char *modified)
{
    const char *env = getenv("MCACHE_S3_STALE_S");
    long stale_s = env ? atol(env) : 86400;
    struct tm tm = {0};

    /* 0 (or less): no grace at all, whatever the clocks say (S3's time has whole seconds) */
    return modified && strptime(modified, "%Y-%m-%dT%H:%M:%S", &tm) &&
           (stale_s <= 0 || time(NULL) - timegm(&tm) > stale_s);
}

/* Whether the push that made tmp key name (push-HOST-PID-START-N) is dead. */
static bool push_dead(struct s3store *t, const char *name, const char *modified)
{
    char host[64];
    long pid;
    unsigned long long start;

    if (sscanf(name, "push-%63[^-]-%ld-%llu-", host, &pid, &start) == 3 &&
        !strcmp(host, t->host))
        return proc_start(pid) != start; /* our host: exact */
    /* another host's (or an unreadable name): only age tells */
    return stale(modified);
}

struct sweep {
    struct s3store *t;
    bool remove;
    size_t found;
};

static int sweep_obj(void *arg, const char *key, uint64_t size, const char *modified)
{
    struct sweep *w = arg;
    const char *name = strrchr(key, '/');

    (void)size;
    if (push_dead(w->t, name ? name + 1 : key, modified)) {
        w->found++;
        if (w->remove)
            mc_s3_delete(w->t->c, key);
    }
    return 0;
}

static int sweep_upload(void *arg, const char *key, const char *id, const char *initiated)
{
    struct sweep *w = arg;
    const char *name = strrchr(key, '/');

    if (push_dead(w->t, name ? name + 1 : key, initiated)) {
        w->found++;
        if (w->remove)
            mc_s3_abort_upload(w->t->c, key, id);
    }
    return 0;
}

/* Temporary objects and unfinished uploads of dead pushes: counted, with remove removed. */
static int sweep_temps(struct s3store *t, bool remove, size_t *found)
{
    char pre[PATH_MAX];
    struct sweep w = {.t = t, .remove = remove};
    int rc;

    snprintf(pre, sizeof(pre), "%stmp/", t->prefix);
    rc = mc_s3_list_uploads(t->c, pre, sweep_upload, &w);
    if (rc == 0)
        rc = mc_s3_list(t->c, pre, sweep_obj, &w);
    *found = w.found;
    return rc;
}

/* ---- one registry per prefix ---------------------------------------------- */

/*
 * PREFIX/registry holds the identity of the registry the prefix belongs to,
 * written at its first change: the references under refs/ are keyed by
 * checksum, name and version only, so a second registry on the same prefix
 * would delete (rm, gc, recovery, fsck --repair) what the first still
 * refers to. Every change (intent_recover) and every push (begin) checks it
 * first; a registry that is not the one named is refused before it writes.
 * Read-only handles (a replica) are not checked: they delete nothing.
 */
static int bind_check(struct s3store *t)
{
    char key[PATH_MAX], *text = NULL, q[MC_QUOTE_MAX], me[MC_QUOTE_MAX];
    size_t n = 0;
    int rc;

    if (t->bound || !t->conf.writable)
        return 0;
    snprintf(key, sizeof(key), "%sregistry", t->prefix);
    rc = mc_s3_get(t->c, key, &text, &n);
    if (rc == MC_ENOENT) {
        char obj[sizeof(t->ident) + 1];
        int len = snprintf(obj, sizeof(obj), "%s\n", t->ident);

        rc = mc_s3_put(t->c, key, obj, (size_t)len);
        if (rc)
            return mc_err_prefix(rc, "binding s3://%s/%s to this registry (%s)",
                                 mc_s3_bucket(t->c), t->prefix, t->ident);
        t->bound = true;
        return 0;
    }
    if (rc)
        return mc_err_prefix(rc, "reading which registry s3://%s/%s belongs to",
                             mc_s3_bucket(t->c), t->prefix);
    while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == '\r'))
        n--;
    if (n == strlen(t->ident) && memcmp(text, t->ident, n) == 0) {
        free(text);
        t->bound = true;
        return 0;
    }
    mc_quote(q, sizeof(q), text, n);
    free(text);
    return mc_err(MC_EPERM,
                  "s3://%s/%s belongs to another registry: its %sregistry says %s, this registry "
                  "is %s; two registries sharing a prefix delete each other's artifacts: give "
                  "this one its own (--artifacts s3://%s/OTHER-PREFIX), or, only if that registry "
                  "is gone for good, delete s3://%s/%sregistry; nothing was changed",
                  mc_s3_bucket(t->c), t->prefix, t->prefix, q,
                  mc_quote(me, sizeof(me), t->ident, strlen(t->ident)), mc_s3_bucket(t->c),
                  mc_s3_bucket(t->c), t->prefix);
}

static int s3_clean(struct mc_art_store *s)
{
    struct s3store *t = s3_of(s);
    size_t dead = 0;
    int rc = bind_check(t);

    if (rc == 0)
        rc = sweep_temps(t, true, &dead);

    if (rc == 0 && dead) {
        char n[32];

        snprintf(n, sizeof(n), "%zu", dead);
        warnf(t, "removed %s temporary object(s) or unfinished upload(s) of pushes whose process "
                 "died", n);
    }
    return rc;
}

/* ---- references -------------------------------------------------------- */

static int count_one(void *arg, const char *key, uint64_t size, const char *modified)
{
    (void)key, (void)size, (void)modified;
    (*(size_t *)arg)++;
    return 1; /* one is enough */
}

/* Whether refs/<hex>/ has an entry (a failed listing: yes, keep the object). */
static bool referenced(struct s3store *t, const char *hex)
{
    char pre[PATH_MAX];
    size_t refs = 0;

    snprintf(pre, sizeof(pre), "%srefs/%s/", t->prefix, hex);
    return mc_s3_list(t->c, pre, count_one, &refs) < 0 || refs > 0;
}

/* Delete the object of hex unless a version still refers to it. */
static void drop_if_unreferenced(struct s3store *t, const char *hex)
{
    char key[PATH_MAX];

    if (!referenced(t, hex)) {
        snprintf(key, sizeof(key), "%sxxh3-128/%s", t->prefix, hex);
        mc_s3_delete(t->c, key);
    }
}

/*
 * Removal is best effort and often runs after a failure (a commit undone):
 * keep the message of what failed, not of a lookup that found nothing.
 */
struct saved_err {
    char msg[1024];
};

static void err_save(struct saved_err *e)
{
    snprintf(e->msg, sizeof(e->msg), "%s", mc_last_error());
}

static void err_restore(const struct saved_err *e)
{
    if (e->msg[0])
        mc_err(MC_EIO, "%s", e->msg);
    else
        mc_err_clear();
}

static void s3_remove_version(struct mc_art_store *s, const char *name, const char *version)
{
    struct s3store *t = s3_of(s);
    char key[PATH_MAX], ref[PATH_MAX], *ck = NULL;
    const char *hex;
    struct saved_err e;
    size_t n;

    err_save(&e);
    snprintf(key, sizeof(key), "%sversions/%s/%s", t->prefix, name, version);
    if (mc_s3_get(t->c, key, &ck, &n) != 0) {
        err_restore(&e);
        return;
    }
    hex = ck_hex(ck);
    if (hex) {
        snprintf(ref, sizeof(ref), "%srefs/%s/%s/%s", t->prefix, hex, name, version);
        mc_s3_delete(t->c, ref);
    }
    mc_s3_delete(t->c, key);
    if (hex)
        drop_if_unreferenced(t, hex);
    free(ck);
    err_restore(&e);
}

struct each_version {
    struct s3store *t;
    size_t plen; /* of PREFIXversions/ */
    void (*fn)(struct s3store *t, const char *name, const char *version, void *arg);
    void *arg;
};

/* versions/<name>/<version>: split at the last '/' (names may hold one) */
static int on_version(void *arg, const char *key, uint64_t size, const char *modified)
{
    struct each_version *e = arg;
    char nv[PATH_MAX], *slash;

    (void)size, (void)modified;
    snprintf(nv, sizeof(nv), "%s", key + e->plen);
    slash = strrchr(nv, '/');
    if (slash == NULL)
        return 0;
    *slash = '\0';
    e->fn(e->t, nv, slash + 1, e->arg);
    return 0;
}

static int each_version(struct s3store *t, const char *name,
                        void (*fn)(struct s3store *t, const char *name, const char *version,
                                   void *arg),
                        void *arg)
{
    char pre[PATH_MAX];
    struct each_version e = {.t = t, .fn = fn, .arg = arg};

    snprintf(pre, sizeof(pre), "%sversions/", t->prefix);
    e.plen = strlen(pre);
    if (name)
        snprintf(pre + e.plen, sizeof(pre) - e.plen, "%s/", name);
    return mc_s3_list(t->c, pre, on_version, &e);
}

static void remove_if_exact(struct s3store *t, const char *name, const char *version, void *arg)
{
    /* a namespaced model below this one (name/sub) is not this model's */
    if (strcmp(name, arg) == 0 && mc_semver_valid(version, strlen(version)))
        s3_remove_version(&t->s, name, version);
}

static void s3_remove_model(struct mc_art_store *s, const char *name)
{
    struct saved_err e;

    err_save(&e);
    each_version(s3_of(s), name, remove_if_exact, (void *)name);
    err_restore(&e);
}

/* ---- the commit marker --------------------------------------------------- */

static int s3_intent_write(struct mc_art_store *s, const struct mc_art_ref *refs, size_t n)
{
    struct s3store *t = s3_of(s);
    char key[PATH_MAX], *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    int rc;

    if (f == NULL)
        return mc_err(MC_ENOMEM, "out of memory writing the commit marker");
    for (size_t i = 0; i < n; i++)
        fprintf(f, "%s%s%s\n", refs[i].name, refs[i].version ? " " : "",
                refs[i].version ? refs[i].version : "");
    fclose(f);
    snprintf(key, sizeof(key), "%sintent", t->prefix);
    rc = mc_s3_put(t->c, key, text, len);
    free(text);
    if (rc == 0)
        mc_crashpoint("marker-written");
    return rc;
}

static void s3_intent_clear(struct mc_art_store *s)
{
    struct s3store *t = s3_of(s);
    char key[PATH_MAX];

    snprintf(key, sizeof(key), "%sintent", t->prefix);
    mc_s3_delete(t->c, key);
}

static int s3_intent_recover(struct mc_art_store *s, mc_art_holds_fn holds, void *arg)
{
    struct s3store *t = s3_of(s);
    char key[PATH_MAX], *text, *line, *save;
    size_t n;
    int rc, removed = 0;

    /*
     * Every change makes this look under the writer lock: a store that does
     * not answer fails it within seconds instead of holding the lock through
     * every retry. Once it answered, the removals get their usual retries.
     */
    snprintf(key, sizeof(key), "%sintent", t->prefix);
    mc_s3_deadline(t->c, RECOVER_MS);
    rc = bind_check(t);
    if (rc == 0)
        rc = mc_s3_get(t->c, key, &text, &n);
    mc_s3_deadline(t->c, 0);
    if (rc == MC_ENOENT)
        return 0;
    if (rc == MC_EPERM && !t->bound)
        return rc;
    if (rc)
        return mc_err_prefix(rc, "looking for a dead writer's commit marker (given %d s, "
                                 "retries included)", RECOVER_MS / 1000);
    for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char *version = strchr(line, ' ');

        if (version)
            *version++ = '\0';
        if (mc_name_check(line) != 0 || holds(arg, line, version))
            continue;
        if (version)
            s3_remove_version(s, line, version);
        else
            s3_remove_model(s, line);
        removed++;
    }
    free(text);
    s3_intent_clear(s);
    if (removed)
        warnf(t, "finished a change a dead process left half done in s3://%s: removed the "
                 "artifacts of versions the metadata does not hold", mc_s3_bucket(t->c));
    return 0;
}

/* ---- put ------------------------------------------------------------------- */

static void s3_discard(struct mc_art_store *s, struct mc_art_put *p);

static enum mc_reg_format detect(const unsigned char *h, size_t n, uint64_t size)
{
    /* the same rules as the local store's (artifacts_local.c) */
    if (n >= 4 && memcmp(h, "GGUF", 4) == 0)
        return MC_FORMAT_GGUF;
    if (n >= 9 && size >= 10) {
        uint64_t hl = 0;

        for (int i = 7; i >= 0; i--)
            hl = hl << 8 | h[i];
        if (hl >= 2 && hl <= size - 8 && hl <= (100u << 20) && h[8] == '{')
            return MC_FORMAT_SAFETENSORS;
    }
    if (n >= 3 && h[0] == 0x08 && h[1] >= 1 && h[1] <= 100) {
        static const unsigned char next[] = {0x12, 0x1a, 0x22, 0x28, 0x32, 0x3a, 0x42, 0x72, 0x7a};

        if (memchr(next, h[2], sizeof(next)))
            return MC_FORMAT_ONNX;
    }
    return MC_FORMAT_OTHER;
}

static void checksum_text(XXH128_hash_t h, char *out)
{
    static const char hex[] = "0123456789abcdef";
    XXH128_canonical_t c;

    XXH128_canonicalFromHash(&c, h);
    memcpy(out, CK_PREFIX, 9);
    for (int i = 0; i < 16; i++) {
        out[9 + 2 * i] = hex[c.digest[i] >> 4];
        out[10 + 2 * i] = hex[c.digest[i] & 15];
    }
    out[41] = '\0';
}

/* Part size and parallelism (MCACHE_S3_PART_MB, MCACHE_S3_PARALLEL). */
static void tuning(size_t *part, unsigned *conc)
{
    const char *pm = getenv("MCACHE_S3_PART_MB"), *pc = getenv("MCACHE_S3_PARALLEL");

    *part = pm && atol(pm) > 0 ? (size_t)atol(pm) << 20 : 0;
    *conc = pc && atoi(pc) > 0 ? (unsigned)atoi(pc) : 0;
}

static int s3_begin(struct mc_art_store *s, uint64_t size_hint, struct mc_art_put *p)
{
    static unsigned counter;
    struct s3store *t = s3_of(s);
    struct s3put *sp = calloc(1, sizeof(*sp));
    size_t part;
    unsigned conc;
    int rc;

    (void)size_hint; /* an object store has no "full" to check up front */
    rc = bind_check(t);
    if (rc) {
        free(sp);
        return rc;
    }
    p->fd = -1;
    p->committed = false;
    p->size = 0;
    p->format = MC_FORMAT_OTHER;
    p->checksum[0] = '\0';
    p->headn = 0;
    p->hash = sp;
    if (sp == NULL || (sp->xs = XXH3_createState()) == NULL) {
        free(sp);
        p->hash = NULL;
        return mc_err(MC_ENOMEM, "out of memory staging %s", p->what);
    }
    XXH3_128bits_reset(sp->xs);
    snprintf(p->tmpname, sizeof(p->tmpname), "%stmp/push-%s-%ld-%llu-%u", t->prefix, t->host,
             (long)getpid(), proc_start(getpid()),
             __atomic_fetch_add(&counter, 1, __ATOMIC_RELAXED));
    tuning(&part, &conc);
    rc = mc_s3_upload_begin(t->c, p->tmpname, part, conc, &sp->u);
    if (rc) {
        s3_discard(s, p);
        return mc_err_prefix(rc, "staging %s", p->what);
    }
    mc_crashpoint("temp-created");
    return 0;
}

static int s3_write(struct mc_art_put *p, const void *buf, size_t n)
{
    struct s3put *sp = p->hash;
    int rc;

    if (p->headn < sizeof(p->head)) {
        size_t take = n < sizeof(p->head) - p->headn ? n : sizeof(p->head) - p->headn;

        memcpy(p->head + p->headn, buf, take);
        p->headn += take;
    }
    XXH3_128bits_update(sp->xs, buf, n);
    rc = mc_s3_upload_write(sp->u, buf, n);
    if (rc)
        return rc;
    p->size += n;
    mc_crashpoint("copy-chunk");
    return 0;
}

/* Complete the upload: the staged object is whole; its checksum and format. */
static int s3_finish(struct mc_art_store *s, struct mc_art_put *p)
{
    struct s3put *sp = p->hash;
    struct mc_s3_upload *u = sp->u;
    int rc;

    (void)s;
    sp->u = NULL; /* complete frees it, whatever happens */
    rc = mc_s3_upload_complete(u);
    if (rc)
        return rc;
    sp->staged = true;
    checksum_text(XXH3_128bits_digest(sp->xs), p->checksum);
    p->format = detect(p->head, p->headn, p->size);
    mc_crashpoint("copied");
    return 0;
}

/*
 * The staged bytes under their checksum, PREFIX/xxh3-128/<hex>, unless an
 * object of their size is there already (a dedup hit): a server-side copy.
 * The same bytes always go to the same key, so it may run any number of
 * times, from any number of pushes, with or without the lock.
 */
static int ensure_object(struct s3store *t, struct mc_art_put *p, const char *hex)
{
    char obj[PATH_MAX];
    uint64_t have = 0;
    int rc;

    snprintf(obj, sizeof(obj), "%sxxh3-128/%s", t->prefix, hex);
    rc = mc_s3_head(t->c, obj, &have);
    if (rc == 0 && have == p->size)
        return 0; /* a dedup hit */
    if (rc != 0 && rc != MC_ENOENT)
        return rc;
    /* absent, or not the same bytes after all (a torn object): copy */
    /*
     * CopyObject takes up to 5 GiB; beyond (or beyond MCACHE_S3_COPY_MAX_MB,
     * which lets the tests reach this path), a copy in parts of
     * MCACHE_S3_COPY_PART_MB (default 1 GiB).
     */
    const char *cm = getenv("MCACHE_S3_COPY_MAX_MB"), *cp = getenv("MCACHE_S3_COPY_PART_MB");
    uint64_t max = cm && atoll(cm) > 0 ? (uint64_t)atoll(cm) << 20 : 5ull << 30;
    uint64_t part = cp && atoll(cp) > 0 ? (uint64_t)atoll(cp) << 20 : 0;

    return p->size > max ? mc_s3_copy_parts(t->c, p->tmpname, obj, p->size, part)
                         : mc_s3_copy(t->c, p->tmpname, obj);
}

/* The put's checksum's hex (NULL, with the error, if finish was not called). */
static const char *put_hex(struct mc_art_put *p)
{
    const char *hex = ck_hex(p->checksum);

    if (hex == NULL)
        mc_err(MC_EINVAL, "%s: no checksum (finish was not called); nothing was registered",
               p->what);
    return hex;
}

/* Without the lock, after finish: the long part (the copy), before reg_write_begin. */
static int s3_place(struct mc_art_store *s, struct mc_art_put *p)
{
    const char *hex = put_hex(p);
    int rc;

    if (hex == NULL)
        return MC_EINVAL;
    rc = ensure_object(s3_of(s), p, hex);
    if (rc)
        return mc_err_prefix(rc, "%s: nothing was registered", p->what);
    mc_crashpoint("placed");
    return 0;
}

/*
 * Under the exclusive lock, after place: the version's mapping and
 * reference, then a HEAD of the object, copied again only if it is not
 * there (place was not called, or a removal of a version with the same
 * bytes deleted it after place, before this reference). What was there for
 * name@version (an orphan of a crash) is removed first.
 */
static int s3_commit(struct mc_art_store *s, struct mc_art_put *p, const char *name,
                     const char *version)
{
    struct s3store *t = s3_of(s);
    const char *hex = put_hex(p);
    char key[PATH_MAX];
    int rc;

    if (hex == NULL)
        return MC_EINVAL;
    s3_remove_version(s, name, version);
    /*
     * The mapping first: a crash from here on leaves a version the metadata
     * does not hold but whose object remove_version() can find (the commit
     * marker names it), so nothing is left that no sweep can reach.
     */
    snprintf(key, sizeof(key), "%sversions/%s/%s", t->prefix, name, version);
    rc = mc_s3_put(t->c, key, p->checksum, strlen(p->checksum));
    if (rc)
        return mc_err_prefix(rc, "%s@%s: nothing was registered", name, version);
    mc_crashpoint("renamed");
    /* the reference before the HEAD: from here on no removal deletes the object */
    snprintf(key, sizeof(key), "%srefs/%s/%s/%s", t->prefix, hex, name, version);
    rc = mc_s3_put(t->c, key, "", 0);
    if (rc == 0)
        rc = ensure_object(t, p, hex);
    if (rc)
        return mc_err_prefix(rc, "%s@%s: nothing was registered", name, version);
    p->committed = true;
    return 0;
}

static void s3_discard(struct mc_art_store *s, struct mc_art_put *p)
{
    struct s3put *sp = p->hash;

    if (sp == NULL)
        return;
    if (sp->u)
        mc_s3_upload_abort(sp->u);
    /* committed or not, the staged object has served: its bytes are under their checksum */
    if (sp->staged)
        mc_s3_delete(s3_of(s)->c, p->tmpname);
    XXH3_freeState(sp->xs);
    free(sp);
    p->hash = NULL;
}

/* ---- verify and orphans ----------------------------------------------------- */

static int hash_chunk(void *arg, const void *buf, size_t n)
{
    XXH3_128bits_update(arg, buf, n);
    return 0;
}

static bool s3_locate(struct mc_art_store *s, const struct mc_reg_version *v)
{
    (void)s;
    (void)v;
    return false;
}

/* Parallel ranged GETs of the content-addressed object, straight into buf. */
static int s3_read(struct mc_art_store *s, const struct mc_reg_version *v, uint64_t off, void *buf,
                   size_t n)
{
    struct s3store *t = s3_of(s);
    const char *hex = ck_hex(v->checksum);
    char obj[PATH_MAX];

    if (hex == NULL)
        return mc_err(MC_ECORRUPT, "%s@%s: its checksum \"%s\" is not xxh3-128", v->name,
                      v->version, v->checksum);
    if (off + n > v->size)
        return mc_err(MC_EINVAL, "%s@%s: reading %zu bytes at %llu, past its %llu bytes",
                      v->name, v->version, n, (unsigned long long)off,
                      (unsigned long long)v->size);
    snprintf(obj, sizeof(obj), "%sxxh3-128/%s", t->prefix, hex);
    return mc_s3_read(t->c, obj, off, buf, n, 0, 0);
}

static void s3_verify(struct mc_art_store *s, const struct mc_reg_version *v, bool checksum,
                      mc_reg_report_fn report, void *arg)
{
    struct s3store *t = s3_of(s);
    const char *hex = ck_hex(v->checksum);
    char obj[PATH_MAX], key[PATH_MAX], sum[48];
    uint64_t size = 0;
    XXH3_state_t *xs;

    if (hex == NULL) {
        mc_reg_reportf(report, arg, "%s@%s: its checksum \"%s\" is not xxh3-128", v->name,
                       v->version, v->checksum);
        return;
    }
    snprintf(obj, sizeof(obj), "%sxxh3-128/%s", t->prefix, hex);
    if (mc_s3_head(t->c, obj, &size) != 0) {
        mc_reg_reportf(report, arg, "%s@%s: its artifact is missing: %s", v->name, v->version,
                       mc_last_error());
        return;
    }
    if (size != v->size) {
        mc_reg_reportf(report, arg, "%s@%s: its artifact s3://%s/%s is %llu bytes, the manifest "
                       "says %llu", v->name, v->version, mc_s3_bucket(t->c), obj,
                       (unsigned long long)size, (unsigned long long)v->size);
        return;
    }
    snprintf(key, sizeof(key), "%srefs/%s/%s/%s", t->prefix, hex, v->name, v->version);
    if (mc_s3_head(t->c, key, NULL) != 0)
        mc_reg_reportf(report, arg, "%s@%s: its reference s3://%s/%s is missing (gc could "
                       "delete its bytes)", v->name, v->version, mc_s3_bucket(t->c), key);
    if (!checksum || (xs = XXH3_createState()) == NULL)
        return;
    XXH3_128bits_reset(xs);
    if (mc_s3_get_stream(t->c, obj, hash_chunk, xs) != 0) {
        mc_reg_reportf(report, arg, "%s@%s: %s", v->name, v->version, mc_last_error());
    } else {
        checksum_text(XXH3_128bits_digest(xs), sum);
        if (strcmp(sum, v->checksum) != 0)
            mc_reg_reportf(report, arg, "%s@%s: its artifact's checksum is %s, the manifest "
                           "says %s", v->name, v->version, sum, v->checksum);
    }
    XXH3_freeState(xs);
}

struct orph {
    struct s3store *t;
    mc_art_holds_fn holds;
    void *harg;
    bool move;
    mc_reg_report_fn each;
    void *arg;
    size_t found;
};

static void orphan_version(struct s3store *t, const char *name, const char *version, void *arg)
{
    struct orph *o = arg;

    if (o->holds(o->harg, name, version))
        return;
    o->found++;
    if (o->each)
        mc_reg_reportf(o->each, o->arg, "s3://%s/%sversions/%s/%s: a version the metadata does "
                       "not hold%s", mc_s3_bucket(t->c), t->prefix, name, version,
                       o->move ? "; removed (its bytes stay while another version refers to them)"
                               : "");
    if (o->move)
        s3_remove_version(&t->s, name, version);
}

/*
 * An object no reference names, older than the grace period: a push that
 * died between place and commit, or a commit that died.
 */
static int orphan_object(void *arg, const char *key, uint64_t size, const char *modified)
{
    struct orph *o = arg;
    const char *hex = strrchr(key, '/');

    (void)size;
    /* a younger one may be a push's, placed and not yet bound */
    if (hex == NULL || !stale(modified) || referenced(o->t, hex + 1))
        return 0;
    o->found++;
    if (o->each)
        mc_reg_reportf(o->each, o->arg, "s3://%s/%s: an object no version refers to%s",
                       mc_s3_bucket(o->t->c), key, o->move ? "; deleted" : "");
    if (o->move)
        mc_s3_delete(o->t->c, key);
    return 0;
}

static void s3_orphans(struct mc_art_store *s, mc_art_holds_fn holds, void *harg, bool move,
                       mc_reg_report_fn each, void *arg, size_t *found)
{
    struct s3store *t = s3_of(s);
    struct orph o = {.t = t, .holds = holds, .harg = harg, .move = move, .each = each, .arg = arg};
    char pre[PATH_MAX];
    size_t temps = 0;

    each_version(t, NULL, orphan_version, &o);
    snprintf(pre, sizeof(pre), "%sxxh3-128/", t->prefix);
    mc_s3_list(t->c, pre, orphan_object, &o);
    if (sweep_temps(t, move, &temps) == 0 && temps) {
        o.found++;
        if (each)
            mc_reg_reportf(each, arg, "s3://%s/%stmp/: %zu temporary object(s) or unfinished "
                           "upload(s) of dead pushes%s", mc_s3_bucket(t->c), t->prefix, temps,
                           move ? "; removed" : " (the next writer removes them)");
    }
    *found = o.found;
}

/* Without the lock: an object of hex's form, stale, unreferenced, is a candidate. */
static int sweep_find(void *arg, const char *key, uint64_t size, const char *modified)
{
    struct s3store *t = arg;
    const char *hex = strrchr(key, '/');
    char(*more)[33];

    (void)size;
    if (hex == NULL || strlen(++hex) != 32 || strspn(hex, "0123456789abcdef") != 32 ||
        !stale(modified) || referenced(t, hex))
        return 0;
    more = realloc(t->cand, (t->ncand + 1) * sizeof(*t->cand));
    if (more == NULL)
        return mc_err(MC_ENOMEM, "out of memory listing unreferenced objects");
    t->cand = more;
    memcpy(t->cand[t->ncand++], hex, 33);
    return 0;
}

static int s3_sweep(struct mc_art_store *s, bool locked)
{
    struct s3store *t = s3_of(s);
    char key[PATH_MAX];
    size_t removed = 0;
    int rc = 0;

    if (!locked) {
        t->ncand = 0;
        snprintf(key, sizeof(key), "%sxxh3-128/", t->prefix);
        return mc_s3_list(t->c, key, sweep_find, t);
    }
    /* under the lock no commit runs: still unreferenced now is for good */
    for (size_t i = 0; i < t->ncand; i++) {
        if (referenced(t, t->cand[i]))
            continue;
        snprintf(key, sizeof(key), "%sxxh3-128/%s", t->prefix, t->cand[i]);
        if ((rc = mc_s3_delete(t->c, key)) != 0)
            break;
        removed++;
    }
    t->ncand = 0;
    if (removed) {
        char n[32];

        snprintf(n, sizeof(n), "%zu", removed);
        warnf(t, "removed %s object(s) that no version refers to, older than MCACHE_S3_STALE_S "
                 "(pushes that died before registering them)", n);
    }
    return rc;
}

/* ---- the store ----------------------------------------------------------------- */

static void s3_close(struct mc_art_store *s)
{
    struct s3store *t = s3_of(s);

    if (t == NULL)
        return;
    mc_s3_close(t->c);
    free(t->cand);
    free(t->prefix);
    free(t->root);
    free(t);
}

/* conf->url: s3://BUCKET[/PREFIX]. */
static int s3_open(const struct mc_art_conf *conf, struct mc_art_store **out)
{
    struct s3store *t = calloc(1, sizeof(*t));
    const char *url = conf->url, *slash;
    char bucket[64];
    size_t pl;
    int rc;

    *out = NULL;
    if (t == NULL)
        return mc_err(MC_ENOMEM, "out of memory opening the S3 store");
    rc = mc_s3_url_parse(url, bucket, &slash, &pl);
    if (rc) {
        free(t);
        return rc;
    }
    if (asprintf(&t->prefix, "%.*s%s", (int)pl, slash, pl ? "/" : "") < 0 ||
        asprintf(&t->root, "s3://%s/%sversions", bucket, t->prefix) < 0) {
        free(t);
        return mc_err(MC_ENOMEM, "out of memory opening %s", conf->url);
    }
    t->s.ops = &mc_art_s3_ops;
    t->conf = *conf;
    t->conf.registry_id = NULL; /* the caller's; copied into ident */
    if (conf->registry_id && *conf->registry_id) {
        snprintf(t->ident, sizeof(t->ident), "%s", conf->registry_id);
    } else { /* the journal: its store directory, on this host */
        char h[HOST_NAME_MAX + 1] = "unknown";

        gethostname(h, sizeof(h) - 1);
        snprintf(t->ident, sizeof(t->ident), "journal store %s:%s", h,
                 conf->dir ? conf->dir : "");
    }
    if (gethostname(t->host, sizeof(t->host)) != 0)
        snprintf(t->host, sizeof(t->host), "unknown");
    for (char *h = t->host; *h; h++)
        if (*h == '-' || *h == '/' || *h == '.')
            *h = '_'; /* '-' separates the fields of a temp key */
    rc = mc_s3_open(bucket, conf->creds_file, &t->c);
    if (rc) {
        s3_close(&t->s);
        return rc;
    }
    /*
     * A new store gets STORE/models (node-local copies go there): what marks
     * the directory as a store for the next open (backend_pg.c's check).
     */
    if (conf->created && conf->writable && conf->dir) {
        char models[PATH_MAX];

        snprintf(models, sizeof(models), "%s/models", conf->dir);
        if (mkdir(models, 0755) != 0 && errno != EEXIST) {
            rc = mc_err(mc_err_from_errno(errno), "cannot create %s: %s", models, strerror(errno));
            s3_close(&t->s);
            return rc;
        }
    }
    *out = &t->s;
    return 0;
}

static const char *s3_root(const struct mc_art_store *s)
{
    return ((const struct s3store *)s)->root;
}

const struct mc_art_store_ops mc_art_s3_ops = {
    .name = "s3",
    .open = s3_open,
    .close = s3_close,
    .root = s3_root,
    .begin = s3_begin,
    .write = s3_write,
    .finish = s3_finish,
    .place = s3_place,
    .commit = s3_commit,
    .discard = s3_discard,
    .remove_version = s3_remove_version,
    .remove_model = s3_remove_model,
    .locate = s3_locate,
    .read = s3_read,
    .verify = s3_verify,
    .intent_write = s3_intent_write,
    .intent_clear = s3_intent_clear,
    .intent_recover = s3_intent_recover,
    .clean = s3_clean,
    .orphans = s3_orphans,
    .sweep = s3_sweep,
};
