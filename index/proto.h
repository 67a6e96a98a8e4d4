/*
 * proto.h - mcached's control protocol: framing, the request codec, and a
 * small blocking client (used by the CLI and by libmcache's mc_get_load()).
 *
 * A Unix stream socket carries frames. Every frame is a 16-byte header
 * followed by `length` payload bytes:
 *
 *   uint32 magic   "MCP1" (0x3150434d, little-endian)
 *   uint16 version 1
 *   uint16 type    1 request, 2 response
 *   uint32 length  payload bytes (requests <= 64 KiB, responses <= 16 MiB)
 *   int32  status  response: 0 or an MC_E* code; requests: 0
 *
 * A request payload is the operation and its arguments, each terminated by
 * a NUL byte ("load\0resnet\0production\0"), at most MC_PROTO_MAX_ARGS
 * arguments. A response payload is JSON text on success and a one-line
 * message on error. One request, one response, in order; a client may send
 * the next request after reading the response. See docs/protocol.md.
 */
#ifndef MCACHE_INDEX_PROTO_H
#define MCACHE_INDEX_PROTO_H

#include <stddef.h>
#include <stdint.h>

#define MC_PROTO_MAGIC        0x3150434du
#define MC_PROTO_VERSION      1u
#define MC_FRAME_REQUEST      1u
#define MC_FRAME_RESPONSE     2u
#define MC_PROTO_MAX_REQUEST  (64u << 10)
#define MC_PROTO_MAX_RESPONSE (16u << 20)
#define MC_PROTO_MAX_ARGS     8u

struct mc_frame {
    uint32_t magic;
    uint16_t version;
    uint16_t type;
    uint32_t length;
    int32_t status;
};

_Static_assert(sizeof(struct mc_frame) == 16, "frame header is 16 bytes");

struct mc_request {
    const char *op;
    const char *args[MC_PROTO_MAX_ARGS];
    unsigned nargs;
};

/*
 * Check a frame header: magic, version, type and length (<= max_len).
 * 0 or MC_EINVAL with a message.
 */
int mc_frame_check(const struct mc_frame *f, uint16_t type, uint32_t max_len);

/*
 * Decode a request payload. The strings in out point into payload, which
 * must end with a NUL (every field is NUL-terminated). 0 or MC_EINVAL with a
 * message naming what is wrong. Never reads outside payload[0..len).
 */
int mc_request_decode(const char *payload, size_t len, struct mc_request *out);

/* Encode op and args into buf as a request payload; returns its length or 0 if too big. */
size_t mc_request_encode(char *buf, size_t cap, const char *op, unsigned nargs,
                         const char *const *args);

/* The default control socket of a cache: DIR/mcache.<cache>.sock. */
int mc_ctl_default_path(const char *dir, const char *cache, char *buf, size_t len);

/* Connect to mcached's socket. MC_ENODAEMON (with a message) if nobody listens. */
int mc_ctl_connect(const char *path, int *fd);

/* 0 if path fits a Unix socket address, else MC_EINVAL naming it and the limit. */
int mc_ctl_path_check(const char *path);

/*
 * Send one request and wait up to timeout_ms (-1: forever) for the response.
 * *status gets the response status; *body a malloc'd, NUL-terminated copy of
 * the payload (free it). Returns 0 if a response arrived, else a code.
 */
int mc_ctl_call(int fd, const char *op, unsigned nargs, const char *const *args, int timeout_ms,
                int *status, char **body);

#endif
