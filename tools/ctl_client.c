/*
 * ctl_client.c - requests to mcached over its control socket (see ctl_client.h).
 */
#include "tools/ctl_client.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "index/proto.h"
#include "common/err.h"
#include "tools/arena_view.h"
#include "tools/jsonout.h"

int cli_socket_path(const struct cli *c, char *buf, size_t len)
{
    struct mc_arena_hdr h;

    if (c->socket) {
        snprintf(buf, len, "%s", c->socket);
        return 0;
    }
    if (cli_arena_header(c, &h, NULL, 0) == 0 && h.socket[0]) {
        snprintf(buf, len, "%.*s", (int)sizeof(h.socket), h.socket);
        return 0;
    }
    return mc_ctl_default_path(c->shm_dir, c->cache, buf, len);
}

static int not_running(const struct cli *c, const char *path)
{
    struct stat st;
    const char *why = stat(path, &st) != 0 ? "no such socket" : "nothing listens on it";
    char shm[600] = "";

    if (strcmp(c->shm_dir, MC_DEFAULT_SHM_DIR) != 0)
        snprintf(shm, sizeof(shm), " --shm-dir %s", c->shm_dir);
    return mc_err(MC_ENODAEMON,
                  "mcached is not running for cache \"%s\" (%s at %s); start it with `mcached "
                  "--store %s --cache %s%s`, or point --cache, --shm-dir or --socket at the one "
                  "that runs",
                  c->cache, why, path, c->store, c->cache, shm);
}

int cli_ctl_call(const struct cli *c, const char *op, unsigned nargs, const char *const *args,
                 int timeout_ms, json_t **out)
{
    char path[512], *body = NULL;
    json_error_t je;
    int rc, fd, status;

    *out = NULL;
    rc = cli_socket_path(c, path, sizeof(path));
    if (rc)
        return rc;
    rc = mc_ctl_connect(path, &fd);
    if (rc == MC_ENODAEMON)
        return not_running(c, path);
    if (rc)
        return rc;
    rc = mc_ctl_call(fd, op, nargs, args, timeout_ms, &status, &body);
    close(fd);
    if (rc)
        return rc;
    if (status) {
        rc = mc_err(status < 0 && status >= MC_ECODE_MIN ? status : MC_EIO, "%s", body);
        free(body);
        return rc;
    }
    *out = json_loads(body, 0, &je);
    free(body);
    if (!*out)
        return mc_err(MC_EIO, "mcached answered %s with JSON that does not parse: %s (line %d)", op,
                      je.text, je.line);
    return 0;
}

/*
 * Does the mcached of this cache serve this store? 0 yes; MC_ENODAEMON (message set) if none
 * runs or it serves another store (then the move is the registry's alone, as without it).
 */
int cli_ctl_serves_store(const struct cli *c)
{
    char ours[PATH_MAX], theirs[PATH_MAX];
    const char *store;
    json_t *st;
    int rc = cli_ctl_call(c, "status", 0, NULL, CLI_CTL_TIMEOUT_MS, &st);

    if (rc)
        return rc;
    store = jstr(json_object_get(st, "daemon"), "store");
    rc = store && realpath(store, theirs) && realpath(c->store, ours) && !strcmp(ours, theirs)
             ? 0
             : mc_err(MC_ENODAEMON, "the mcached of cache \"%s\" serves the store %s, not %s",
                      c->cache, store ? store : "?", c->store);
    json_decref(st);
    return rc;
}
