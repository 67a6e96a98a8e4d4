/*
 * config.h - mcached's settings: defaults, the config file, the command
 * line, in that order of precedence (the command line wins). Every option
 * is documented in docs/mcached.conf, which is itself a valid config file.
 */
#ifndef MCACHE_LOADER_CONFIG_H
#define MCACHE_LOADER_CONFIG_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

struct mc_config {
    char store[512];     /* registry store directory */
    char registry[512];  /* shared registry URL ("": the store's journal) */
    char artifacts[512]; /* artifact store URL ("": the store's models/) */
    /* S3 credentials file for the artifact store and remote loads ("": the AWS_* variables);
     * only its path: the file is read where a client opens, never kept, logged or shown */
    char artifacts_creds[PATH_MAX];
    char cache[64];      /* cache name */
    char shm_dir[256];   /* where the arena lives (tmpfs, hugetlbfs) */
    char socket[256];    /* control socket path ("" = <shm_dir>/mcache.<cache>.sock) */
    char config[512];    /* config file read, if any */
    uint64_t size;       /* arena bytes (0 = machine default) */
    uint64_t index_size; /* index region bytes (0 = size/16) */
    uint64_t base;       /* mapping address (0: the cache name's, mc_arena_default_base) */
    uint32_t reader_slots;
    char admin_group[64];  /* may change state (besides our uid and root) */
    char reader_group[64]; /* may read status and request loads; "*" = anyone */
    unsigned queue_depth;  /* io_uring requests in flight */
    uint64_t chunk_size;   /* bytes per read (0 = by page size) */
    int io_uring;          /* 1 try io_uring, 0 pread only */
    int fixed_buffers;     /* 1 try registered buffers, 0 never */
    int direct_io;         /* 1 O_DIRECT where the file system allows, 0 never */
    int preload;           /* 1 preload aliased and marked versions at start */
    int keep_local;        /* 1 keep a node-local copy of what loads from the object store */
    int log_level;
    unsigned max_loads;    /* files loading at once */
    bool recreate;         /* discard an existing arena instead of adopting it */
    char alert_cmd[1024];  /* run with each alert's JSON on stdin ("": none; alerts.h) */
};

void mc_config_defaults(struct mc_config *c);

/*
 * Apply `key = value` lines from a file. Unknown keys and bad values are
 * errors naming the file, line and key. 0 or a negative code (message set).
 */
int mc_config_load(struct mc_config *c, const char *path);

/* Apply one option by name (shared by the file and the command line). */
int mc_config_set(struct mc_config *c, const char *key, const char *value);

/* Parse "64M", "2G", "1073741824"; 0 or MC_EINVAL. */
int mc_parse_size(const char *s, uint64_t *out);

#endif
