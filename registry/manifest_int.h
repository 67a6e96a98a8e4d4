/*
 * manifest_int.h - what manifest.c, manifest_read.c and manifest_write.c
 * share (internal to the manifest).
 */
#ifndef MCACHE_REGISTRY_MANIFEST_INT_H
#define MCACHE_REGISTRY_MANIFEST_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "registry/manifest.h"

/* A line ends with ,"crc":"xxxxxxxx"} */
#define CRC_TAIL   18
#define CRC_MEMBER ",\"crc\":\""

/* A warning through m's callback (or on stderr). */
void manifest_warn(const struct mc_manifest *m, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The error for errno e while doing what to dir/file (a full disk is MC_ENOSPC). */
int manifest_io_err(int e, const char *what, const char *dir, const char *file);

/* The identity of an open file (device, inode, size, mtime). */
int manifest_file_id(int fd, struct mc_file_id *id);

/* Write all n bytes at off (off < 0: at the file position). 0 or -errno. */
int manifest_write_all(int fd, const char *p, size_t n, off_t off);

/*
 * Check and read one line (without its '\n') into jr's tree: 0 with *out,
 * MC_ECORRUPT with a reason in why, or MC_ENOMEM.
 */
int manifest_line_decode(struct mc_jreader *jr, const char *p, size_t n, const struct mc_jval **out,
                         char *why, size_t wsz);

/* Open STORE/file: 0, 1 if it does not exist, or an error. */
int manifest_open_file(struct mc_manifest *m, const char *file, bool rw, int *fd);

#endif
