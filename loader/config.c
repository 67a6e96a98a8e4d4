/*
 * config.c - mcached's settings (see config.h and docs/mcached.conf).
 */
#include "loader/config.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "loader/log.h"
#include "shm/arena.h"
#include "shm/readers.h"

static int set_bool(int *dst, const char *key, const char *v);

void mc_config_defaults(struct mc_config *c)
{
    const char *e;

    memset(c, 0, sizeof(*c));
    e = getenv("MCACHE_STORE");
    snprintf(c->store, sizeof(c->store), "%s", e && *e ? e : "./mcache-data");
    /* as the CLI: one environment names the shared registry for every tool */
    e = getenv("MCACHE_REGISTRY");
    snprintf(c->registry, sizeof(c->registry), "%s", e ? e : "");
    e = getenv("MCACHE_ARTIFACTS");
    snprintf(c->artifacts, sizeof(c->artifacts), "%s", e ? e : "");
    e = getenv("MCACHE_ARTIFACTS_CREDS");
    snprintf(c->artifacts_creds, sizeof(c->artifacts_creds), "%s", e ? e : "");
    e = getenv("MCACHE_CACHE");
    snprintf(c->cache, sizeof(c->cache), "%s", e && *e ? e : "default");
    e = getenv("MCACHE_SHM_DIR");
    snprintf(c->shm_dir, sizeof(c->shm_dir), "%s", e && *e ? e : MC_DEFAULT_SHM_DIR);
    c->reader_slots = MC_READER_SLOTS;
    c->queue_depth = 8;
    c->io_uring = 1;
    c->fixed_buffers = 1;
    c->direct_io = 1;
    c->preload = 1;
    c->keep_local = 1;
    e = getenv("MCACHE_KEEP_LOCAL"); /* "0" or "off": off, as before the option */
    if (e && *e && set_bool(&c->keep_local, "MCACHE_KEEP_LOCAL", e) != 0)
        c->keep_local = 1;
    c->log_level = MC_LOG_INFO;
    c->max_loads = 4;
}

int mc_parse_size(const char *s, uint64_t *out)
{
    char *end;
    unsigned long long v;
    uint64_t mul = 1;

    errno = 0;
    v = strtoull(s, &end, 10);
    if (end == s || errno || *s == '-')
        return mc_err(MC_EINVAL, "size \"%s\" is not a number of bytes (like 512M, 4G)", s);
    switch (toupper((unsigned char)*end)) {
    case 'K':
        mul = 1ull << 10;
        end++;
        break;
    case 'M':
        mul = 1ull << 20;
        end++;
        break;
    case 'G':
        mul = 1ull << 30;
        end++;
        break;
    case 'T':
        mul = 1ull << 40;
        end++;
        break;
    }
    if (*end == 'i' || *end == 'I')
        end++;
    if (*end == 'B' || *end == 'b')
        end++;
    if (*end || (v && mul > UINT64_MAX / v))
        return mc_err(MC_EINVAL, "size \"%s\" is not a number of bytes (like 512M, 4G)", s);
    *out = v * mul;
    return 0;
}

static int set_str(char *dst, size_t cap, const char *key, const char *v)
{
    if (strlen(v) >= cap)
        return mc_err(MC_EINVAL, "%s \"%s\" is longer than %zu bytes", key, v, cap - 1);
    memcpy(dst, v, strlen(v) + 1);
    return 0;
}

static int set_bool(int *dst, const char *key, const char *v)
{
    if (!strcmp(v, "on") || !strcmp(v, "yes") || !strcmp(v, "true") || !strcmp(v, "1"))
        *dst = 1;
    else if (!strcmp(v, "off") || !strcmp(v, "no") || !strcmp(v, "false") || !strcmp(v, "0"))
        *dst = 0;
    else
        return mc_err(MC_EINVAL, "%s must be on or off, not \"%s\"", key, v);
    return 0;
}

/* A number in decimal (base 0 for addresses: 0x... is hex, and "010" would be octal). */
static int set_uint_base(uint64_t *dst, const char *key, const char *v, uint64_t lo, uint64_t hi,
                         int base)
{
    char *end;
    unsigned long long x;

    errno = 0;
    x = strtoull(v, &end, base);
    if (end == v || *end || errno || *v == '-' || x < lo || x > hi)
        return mc_err(MC_EINVAL, "%s must be a number from %llu to %llu, not \"%s\"", key,
                      (unsigned long long)lo, (unsigned long long)hi, v);
    *dst = x;
    return 0;
}

static int set_uint(uint64_t *dst, const char *key, const char *v, uint64_t lo, uint64_t hi)
{
    return set_uint_base(dst, key, v, lo, hi, 10);
}

/* A size where 0 would silently mean "the default". */
static int set_size(uint64_t *dst, const char *key, const char *v)
{
    uint64_t x;
    int rc = mc_parse_size(v, &x);

    if (!rc && x == 0)
        rc = mc_err(MC_EINVAL, "%s must not be 0; leave it out for the default", key);
    if (!rc)
        *dst = x;
    return rc;
}

int mc_config_set(struct mc_config *c, const char *key, const char *v)
{
    uint64_t x = 0; /* set_uint() writes it only on success */
    int rc;

    if (!strcmp(key, "store"))
        return set_str(c->store, sizeof(c->store), key, v);
    if (!strcmp(key, "registry"))
        return set_str(c->registry, sizeof(c->registry), key, v);
    if (!strcmp(key, "artifacts"))
        return set_str(c->artifacts, sizeof(c->artifacts), key, v);
    if (!strcmp(key, "artifacts-creds"))
        return set_str(c->artifacts_creds, sizeof(c->artifacts_creds), key, v);
    if (!strcmp(key, "cache"))
        return set_str(c->cache, sizeof(c->cache), key, v);
    if (!strcmp(key, "shm-dir"))
        return set_str(c->shm_dir, sizeof(c->shm_dir), key, v);
    if (!strcmp(key, "socket"))
        return set_str(c->socket, sizeof(c->socket), key, v);
    if (!strcmp(key, "alert-cmd"))
        return set_str(c->alert_cmd, sizeof(c->alert_cmd), key, v);
    if (!strcmp(key, "admin-group"))
        return set_str(c->admin_group, sizeof(c->admin_group), key, v);
    if (!strcmp(key, "reader-group"))
        return set_str(c->reader_group, sizeof(c->reader_group), key, v);
    if (!strcmp(key, "size"))
        return set_size(&c->size, key, v);
    if (!strcmp(key, "index-size"))
        return set_size(&c->index_size, key, v);
    if (!strcmp(key, "chunk-size")) {
        rc = mc_parse_size(v, &x);
        if (!rc && (x < 4096 || x > (64u << 20) || x % 4096))
            rc = mc_err(MC_EINVAL, "chunk-size %s must be a multiple of 4K from 4K to 64M", v);
        if (!rc)
            c->chunk_size = x;
        return rc;
    }
    if (!strcmp(key, "base")) {
        rc = set_uint_base(&c->base, key, v, 1, 0x7fffffffffffull, 0);
        if (!rc && c->base % MC_HUGE_PAGE)
            rc = mc_err(MC_EINVAL, "base %s must be a multiple of 2 MiB (0x200000)", v);
        return rc;
    }
    if (!strcmp(key, "reader-slots")) {
        if ((rc = set_uint(&x, key, v, 1, MC_READER_SLOTS_MAX)) == 0)
            c->reader_slots = (uint32_t)x;
        return rc;
    }
    if (!strcmp(key, "queue-depth")) {
        if ((rc = set_uint(&x, key, v, 1, 256)) == 0)
            c->queue_depth = (unsigned)x;
        return rc;
    }
    if (!strcmp(key, "max-loads")) {
        if ((rc = set_uint(&x, key, v, 1, 64)) == 0)
            c->max_loads = (unsigned)x;
        return rc;
    }
    if (!strcmp(key, "io-uring"))
        return set_bool(&c->io_uring, key, v);
    if (!strcmp(key, "fixed-buffers"))
        return set_bool(&c->fixed_buffers, key, v);
    if (!strcmp(key, "direct-io"))
        return set_bool(&c->direct_io, key, v);
    if (!strcmp(key, "preload"))
        return set_bool(&c->preload, key, v);
    if (!strcmp(key, "keep-local"))
        return set_bool(&c->keep_local, key, v);
    if (!strcmp(key, "log-level")) {
        int l = mc_log_level_parse(v);
        if (l < 0)
            return mc_err(MC_EINVAL, "log-level must be debug, info, warn or error, not \"%s\"",
                          v);
        c->log_level = l;
        return 0;
    }
    return mc_err(MC_EINVAL, "unknown option \"%s\" (see docs/mcached.conf for the list)", key);
}

static char *trim(char *s)
{
    char *e;

    while (isspace((unsigned char)*s))
        s++;
    e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1]))
        *--e = '\0';
    return s;
}

int mc_config_load(struct mc_config *c, const char *path)
{
    char line[1024], seen[32][24]; /* keys given so far (every key fits) */
    unsigned lineno = 0, seen_at[32], nseen = 0;
    FILE *f = fopen(path, "r");
    int rc = 0;

    if (!f)
        return mc_err(mc_err_from_errno(errno), "config file %s: %s", path, strerror(errno));
    while (fgets(line, sizeof(line), f)) {
        char *s, *eq, *key, *val;

        lineno++;
        if (!strchr(line, '\n') && !feof(f)) {
            /* the rest would be read as a line of its own */
            rc = mc_err(MC_EINVAL, "%s:%u: the line is longer than %zu bytes; shorten it", path,
                        lineno, sizeof(line) - 2);
            break;
        }
        if ((s = strchr(line, '#')))
            *s = '\0';
        s = trim(line);
        if (!*s)
            continue;
        eq = strchr(s, '=');
        if (!eq) {
            rc = mc_err(MC_EINVAL, "%s:%u: expected \"key = value\", got \"%s\"", path, lineno,
                        s);
            break;
        }
        *eq = '\0';
        key = trim(s);
        val = trim(eq + 1);
        rc = mc_config_set(c, key, val);
        if (rc) {
            mc_err_prefix(rc, "%s:%u", path, lineno);
            break;
        }
        /* A key given twice is a mistake that the last one would hide. */
        for (unsigned i = 0; i < nseen && !rc; i++)
            if (!strcmp(seen[i], key))
                rc = mc_err(MC_EINVAL, "%s:%u: %s is given twice (first at line %u); keep one",
                            path, lineno, key, seen_at[i]);
        if (rc)
            break;
        if (nseen < 32 && strlen(key) < sizeof(seen[0])) {
            snprintf(seen[nseen], sizeof(seen[0]), "%s", key);
            seen_at[nseen++] = lineno;
        }
    }
    fclose(f);
    if (!rc)
        snprintf(c->config, sizeof(c->config), "%s", path);
    return rc;
}
