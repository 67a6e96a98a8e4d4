/*
 * ctl_client.h - talking to mcached from the CLI: which socket, one request at
 * a time, JSON answers, and the message an operator needs when mcached is
 * not running.
 */
#ifndef MCACHE_TOOLS_CTL_CLIENT_H
#define MCACHE_TOOLS_CTL_CLIENT_H

#include <jansson.h>

#include "tools/cli.h"

#define CLI_CTL_TIMEOUT_MS 15000 /* for every request but load */

/*
 * The control socket: --socket, else the one recorded in the cache's arena
 * header, else <shm-dir>/mcache.<cache>.sock.
 */
int cli_socket_path(const struct cli *c, char *buf, size_t len);

/*
 * Send op with its arguments and wait up to timeout_ms (-1: no limit).
 * *out gets the parsed JSON answer (json_decref it). An error reply
 * becomes its code with mcached's message; nobody listening is
 * MC_ENODAEMON with a message naming the socket and how to start mcached.
 */
int cli_ctl_call(const struct cli *c, const char *op, unsigned nargs, const char *const *args,
                 int timeout_ms, json_t **out);

/*
 * Does the mcached of this cache serve this store (--store, resolved)? 0 yes; else
 * MC_ENODAEMON with a message (none runs, or it serves another store), or the call's error.
 */
int cli_ctl_serves_store(const struct cli *c);

#endif
