/*
 * access.c - who may use a cache (see access.h).
 */
#include "loader/access.h"

#include <errno.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/err.h"
#include "loader/log.h"

static int group_lookup(const char *name, gid_t *gid)
{
    struct group *g = getgrnam(name);

    if (!g)
        return mc_err(MC_EINVAL, "group \"%s\" does not exist; create it or fix the option", name);
    *gid = g->gr_gid;
    return 0;
}

static void group_name(gid_t gid, char *buf, size_t len)
{
    struct group *g = getgrgid(gid);

    if (g)
        snprintf(buf, len, "%s", g->gr_name);
    else
        snprintf(buf, len, "%u", (unsigned)gid);
}

/* Does this process hold CAP_CHOWN (bit 0 of CapEff)? */
static bool cap_chown(void)
{
    char line[256];
    unsigned long long eff = 0;
    FILE *f = fopen("/proc/self/status", "r");

    if (!f)
        return geteuid() == 0;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "CapEff: %llx", &eff) == 1)
            break;
    fclose(f);
    return eff & 1;
}

/* May this process give its files to gid (chown(2): a group of its own, or CAP_CHOWN)? */
static bool may_chgrp(gid_t gid)
{
    gid_t groups[256];
    int n = getgroups(256, groups);

    if (gid == getegid())
        return true;
    for (int i = 0; i < n; i++)
        if (groups[i] == gid)
            return true;
    return cap_chown();
}

/* The reader group G, which must exist and be one mcached can give its files to. */
static int reader_group(const char *name, struct mc_access *a)
{
    int rc = group_lookup(name, &a->reader_gid);

    if (rc)
        return mc_err_prefix(rc, "reader-group");
    if (!may_chgrp(a->reader_gid))
        return mc_err(MC_EINVAL,
                      "reader-group \"%s\": mcached (uid %d) is not a member of it and lacks "
                      "CAP_CHOWN, so it cannot give the arena to that group; add uid %d to "
                      "\"%s\", or run mcached as root",
                      name, (int)geteuid(), (int)geteuid(), name);
    snprintf(a->reader_name, sizeof(a->reader_name), "%s", name);
    return 0;
}

int mc_access_resolve(const char *admin_group, const char *reader, struct mc_access *out)
{
    struct mc_access a;
    int rc;

    memset(&a, 0, sizeof(a));
    if (*admin_group) {
        if ((rc = group_lookup(admin_group, &a.admin_gid)) != 0)
            return mc_err_prefix(rc, "admin-group");
        a.admin_group = true;
        snprintf(a.admin_name, sizeof(a.admin_name), "%s", admin_group);
    }
    a.kind =
        !*reader ? MC_ACCESS_OWNER_GROUP : (strcmp(reader, "*") ? MC_ACCESS_GROUP : MC_ACCESS_ANY);
    a.reader_gid = getegid();
    group_name(a.reader_gid, a.reader_name, sizeof(a.reader_name));
    if (a.kind == MC_ACCESS_GROUP && (rc = reader_group(reader, &a)) != 0)
        return rc;
    a.file_gid = a.reader_gid;
    /* Admins must reach the socket too: without a reader group it is theirs. */
    a.socket_gid = a.kind == MC_ACCESS_OWNER_GROUP && a.admin_group ? a.admin_gid : a.reader_gid;
    snprintf(a.socket_name, sizeof(a.socket_name), "%s",
             a.socket_gid == a.reader_gid ? a.reader_name : a.admin_name);
    a.arena_mode = a.kind == MC_ACCESS_ANY ? 0644 : 0640;
    a.table_mode = a.socket_mode = a.kind == MC_ACCESS_ANY ? 0666 : 0660;
    if (a.kind == MC_ACCESS_ANY)
        snprintf(a.label, sizeof(a.label), "any local user");
    else
        snprintf(a.label, sizeof(a.label), "%s%s",
                 a.kind == MC_ACCESS_GROUP ? "group " : "owner+group ", a.reader_name);
    *out = a;
    return 0;
}

bool mc_access_same(const struct mc_access *a, const struct mc_access *b)
{
    return a->kind == b->kind && a->reader_gid == b->reader_gid &&
           a->admin_group == b->admin_group && (!a->admin_group || a->admin_gid == b->admin_gid) &&
           a->file_gid == b->file_gid && a->socket_gid == b->socket_gid &&
           a->arena_mode == b->arena_mode && a->table_mode == b->table_mode &&
           a->socket_mode == b->socket_mode;
}

/* Log and record why path could not get its mode or group (what: "mode 0640"). */
static int fail(const char *path, const char *what)
{
    int e = errno;

    log_warn("cannot give %s %s: %s; set it by hand, or run mcached as the file's owner or "
             "root",
             path, what, strerror(e));
    return mc_err(mc_err_from_errno(e), "giving %s %s: %s", path, what, strerror(e));
}

static int set_mode(int fd, const char *path, unsigned mode)
{
    char what[32];

    if ((fd >= 0 ? fchmod(fd, mode) : chmod(path, mode)) == 0)
        return 0;
    snprintf(what, sizeof(what), "mode %04o", mode);
    return fail(path, what);
}

static int set_group(int fd, const char *path, gid_t gid)
{
    char what[96], name[64];

    if ((fd >= 0 ? fchown(fd, (uid_t)-1, gid) : chown(path, (uid_t)-1, gid)) == 0)
        return 0;
    group_name(gid, name, sizeof(name));
    snprintf(what, sizeof(what), "group %s", name);
    return fail(path, what);
}

/* fd < 0: by path. */
static int apply(int fd, const char *path, gid_t gid, unsigned mode)
{
    bool widen = mode & 0007; /* others gain access: open the mode first */
    int rc = widen ? set_mode(fd, path, mode) : 0;

    if (!rc)
        rc = set_group(fd, path, gid);
    if (!rc && !widen)
        rc = set_mode(fd, path, mode);
    return rc;
}

int mc_access_apply_fd(int fd, const char *path, gid_t gid, unsigned mode)
{
    return apply(fd, path, gid, mode);
}

int mc_access_apply_path(const char *path, gid_t gid, unsigned mode)
{
    return apply(-1, path, gid, mode);
}

void mc_access_log(const struct mc_access *a, const char *prefix, const char *arena,
                   const char *table, const char *socket)
{
    if (a->kind == MC_ACCESS_ANY) {
        log_warn("%sreader-group \"*\": ANY LOCAL USER can read every model in %s (mode %04o), "
                 "claim slots in %s (%04o) to hold memory, stall reclamation so nothing is "
                 "freed, or take every slot, and read status and request loads on %s (%04o); "
                 "set reader-group to a group to restrict it (docs/security.md)",
                 prefix, arena, a->arena_mode, table, a->table_mode, socket, a->socket_mode);
        return;
    }
    log_info("%saccess: %s: arena %s %04o and reader table %04o, group %s; socket %s %04o, "
             "group %s; changes: uid %d, root%s%s",
             prefix, a->label, arena, a->arena_mode, a->table_mode, a->reader_name, socket,
             a->socket_mode, a->socket_name, (int)geteuid(), a->admin_group ? ", group " : "",
             a->admin_group ? a->admin_name : "");
}
