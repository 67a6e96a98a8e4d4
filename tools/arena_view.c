/*
 * arena_view.c - the arena as the CLI sees it without asking mcached (arena_view.h).
 *
 * Holds in reader slots are arena offsets of version records. They are
 * turned into "name@version" by reading the record through our own
 * read-only mapping (at the arena's base, like every process's): the
 * record may be retired and reused while we look, which at worst shows a
 * stale name, so every field is bounds-checked before use.
 */
#include "tools/arena_view.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "index/record.h"
#include "common/err.h"
#include "shm/readers.h"

int cli_arena_header(const struct cli *c, struct mc_arena_hdr *h, char *path, size_t len)
{
    char p[512];
    ssize_t n;
    int fd, rc = mc_arena_path(c->shm_dir, c->cache, p, sizeof(p));

    if (rc)
        return rc;
    if (path)
        snprintf(path, len, "%s", p);
    fd = open(p, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        if (e == ENOENT)
            return mc_err(MC_ENOENT,
                          "there is no arena for cache \"%s\" (no file %s); mcached creates it "
                          "when it starts (check --cache and --shm-dir)",
                          c->cache, p);
        if (e == EACCES)
            return mc_access_denied("arena", p);
        return mc_err(mc_err_from_errno(e), "opening arena %s: %s", p, strerror(e));
    }
    n = pread(fd, h, sizeof(*h), 0);
    close(fd);
    if (n != (ssize_t)sizeof(*h) || h->magic != MC_ARENA_MAGIC)
        return mc_err(MC_EBADARENA, "%s is not an mcache arena", p);
    return 0;
}

void cli_arena_access(const char *path, char *buf, size_t len)
{
    struct passwd *pw;
    struct group *g;
    struct stat st;
    char name[64];

    if (stat(path, &st) != 0) {
        snprintf(buf, len, "?");
        return;
    }
    if (st.st_mode & S_IROTH) {
        snprintf(buf, len, "any local user");
        return;
    }
    g = getgrgid(st.st_gid);
    if (g)
        snprintf(name, sizeof(name), "%s", g->gr_name);
    else
        snprintf(name, sizeof(name), "%u", (unsigned)st.st_gid);
    pw = getpwuid(st.st_uid);
    snprintf(buf, len, "%s%s", pw && pw->pw_gid == st.st_gid ? "owner+group " : "group ", name);
}

int cli_arena_attach(const struct cli *c, struct cli_arena *a)
{
    int rc;

    memset(a, 0, sizeof(*a));
    rc = cli_arena_header(c, &a->hdr, a->path, sizeof(a->path));
    if (rc)
        return rc;
    rc = mc_attach_dir(c->shm_dir, c->cache, &a->mc);
    if (rc) {
        a->mc = NULL;
        return rc;
    }
    return mc_cache_info(a->mc, &a->info);
}

void cli_arena_detach(struct cli_arena *a)
{
    mc_detach(a->mc);
    a->mc = NULL;
}

const char *cli_arena_residency(struct cli_arena *a, const char *name, const char *version)
{
    mc_model *m;
    int rc;

    if (!a || !a->mc)
        return "unknown";
    rc = mc_get(a->mc, name, version, &m);
    switch (rc) {
    case 0:
        mc_release(m);
        return "resident";
    case MC_EFAILED:
        return "failed";
    case MC_ENOTRESIDENT:
    case MC_ENOENT:
        return "not-resident";
    default:
        return "unknown";
    }
}

/* "name@version" of the version record at arena offset off, or NULL. */
static const char *held_key(const struct cli_arena *a, uint64_t off, char *buf, size_t len)
{
    const struct mc_arena_hdr *h = &a->hdr;
    const struct mc_rec *r;

    if (off < h->index_off || off + sizeof(struct mc_rec_version) > h->index_off + h->index_size)
        return NULL;
    r = (const struct mc_rec *)(uintptr_t)(h->base + off);
    if (r->magic != MC_REC_MAGIC || r->kind != MC_REC_VERSION || r->key_len >= len ||
        off + r->key_off + r->key_len > h->index_off + h->index_size)
        return NULL;
    memcpy(buf, mc_rec_key(r), r->key_len);
    buf[r->key_len] = '\0';
    return buf;
}

json_t *cli_arena_readers(const struct cli *c, struct cli_arena *a)
{
    struct mc_readers r;
    uint8_t *live;
    json_t *out;
    int rc;

    if (!a->mc) {
        mc_err(MC_ENOENT, "no arena attached for cache \"%s\"", c->cache);
        return NULL;
    }
    rc = mc_readers_open(c->shm_dir, c->cache, a->hdr.created_ns, &r);
    if (rc)
        return NULL;
    live = calloc(r.nslots, 1);
    if (!live || mc_readers_live(&r, live) < 0) {
        free(live);
        mc_readers_close(&r);
        return NULL;
    }
    out = json_array();
    for (uint32_t i = 0; i < r.nslots; i++) {
        const struct mc_slot *s = &r.slots[i];
        json_t *holds;

        if (!live[i] || s->pid == (uint32_t)getpid())
            continue;
        holds = json_array();
        for (unsigned j = 0; j < MC_SLOT_HOLDS; j++) {
            uint64_t off = __atomic_load_n(&s->held[j], __ATOMIC_ACQUIRE);
            char key[512];

            if (off && held_key(a, off, key, sizeof(key)))
                json_array_append_new(holds, json_string(key));
        }
        json_array_append_new(
            out, json_pack("{s:i, s:i, s:i, s:I, s:b, s:o}", "slot", (int)i, "pid", (int)s->pid,
                           "tid", (int)s->tid, "since_ns", (json_int_t)s->since_ns, "in_lookup",
                           __atomic_load_n(&s->pin, __ATOMIC_ACQUIRE) != 0, "holds", holds));
    }
    free(live);
    mc_readers_close(&r);
    return out;
}
