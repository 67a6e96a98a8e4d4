/*
 * access.h - who may use a cache: read its arena, claim slots in its reader
 * table, connect to its control socket, and change state over it. One
 * decision, made from the options reader-group and admin-group, and applied
 * to all three files when mcached creates or adopts the arena, when it
 * listens, and again on SIGHUP (docs/security.md is the trust model).
 *
 *   reader-group  readers                         arena  table  socket
 *   (none)        mcached's uid and its primary    0640   0660   0660, its primary group,
 *                 group P: "owner+group P"                       or admin-group if set
 *   G             mcached's uid and group G:       0640   0660   0660, group G
 *                 "group G"
 *   "*"           any local user:                  0644   0666   0666
 *                 "any local user"
 *
 * The arena and the table belong to P (G with a reader group). Admins
 * (mcached's uid, root, admin-group) may read as well as change state; an
 * admin-group member needs the socket's group to connect, which is why the
 * socket goes to admin-group when no reader group is set.
 */
#ifndef MCACHE_LOADER_ACCESS_H
#define MCACHE_LOADER_ACCESS_H

#include <stdbool.h>
#include <sys/types.h>

enum mc_access_kind {
    MC_ACCESS_OWNER_GROUP, /* the default: mcached's uid and primary group */
    MC_ACCESS_GROUP,       /* reader-group G */
    MC_ACCESS_ANY,         /* reader-group "*": every local user */
};

struct mc_access {
    enum mc_access_kind kind;
    gid_t reader_gid; /* readers' group (P or G; P for ANY, which needs none) */
    char reader_name[64];
    bool admin_group; /* admin-group set */
    gid_t admin_gid;
    char admin_name[64];
    gid_t file_gid;   /* the arena's and the reader table's group */
    gid_t socket_gid; /* the socket's group */
    char socket_name[64];
    unsigned arena_mode, table_mode, socket_mode;
    char label[96]; /* "owner+group P", "group G", "any local user" (status, log) */
};

/*
 * Decide access from the options (reader_group "" none, "*" anyone;
 * admin_group "" none). MC_EINVAL naming the option if a group does not
 * exist; *a is untouched then.
 */
int mc_access_resolve(const char *admin_group, const char *reader_group, struct mc_access *a);

/* Do a and b give the files the same modes and groups, and the socket the same readers? */
bool mc_access_same(const struct mc_access *a, const struct mc_access *b);

/*
 * Give the file open as fd (path names it in messages) gid and mode. The
 * wider side goes first (chmod before chown when others gain access,
 * chown first otherwise), so nobody who may read before and after is ever
 * refused in between. Failures are logged; returns 0 or the first error.
 */
int mc_access_apply_fd(int fd, const char *path, gid_t gid, unsigned mode);

/* The same for a path (the control socket, whose mode is its file's). */
int mc_access_apply_path(const char *path, gid_t gid, unsigned mode);

/*
 * Say in the log who may use the cache: a warning naming the files and
 * what any local user can do when a is MC_ACCESS_ANY, else one info line.
 * prefix starts each line ("" at start, "SIGHUP: " on reload).
 */
void mc_access_log(const struct mc_access *a, const char *prefix, const char *arena,
                   const char *table, const char *socket);

#endif
