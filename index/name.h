/*
 * name.h - what a model name, an alias name and a metadata key may be.
 *
 * Model names become directories (STORE/models/<name>/), so they are kept
 * to a portable, shell-friendly alphabet:
 *   letters, digits, '.', '_', '-', and at most one '/' to put the model
 *   in a namespace ("org/model"); at most MC_NAME_MAX bytes; each part
 *   starts with a letter, digit or '_' (not '.', which would hide the
 *   directory, nor '-', which reads as an option); no ".." anywhere.
 * Alias names ("production", "canary-eu") start with a letter, continue with
 * letters, digits, '_', '-', '.', are at most MC_ALIAS_MAX bytes, are not
 * "latest", and are never something that parses as a version range ("x",
 * "v2" are ranges), so a reference is never ambiguous.
 * Metadata keys (metrics, params, tags) start with a letter and continue
 * with letters, digits, '_', '-', '.', '/', ':'; at most MC_META_KEY_MAX bytes.
 *
 * All checks return 0 or MC_EINVAL with a message that quotes the value and
 * says what is allowed. None allocates (the alias check parses ranges only
 * for names up to MC_ALIAS_MAX bytes, which needs no allocation).
 */
#ifndef MCACHE_INDEX_NAME_H
#define MCACHE_INDEX_NAME_H

#include <stddef.h>

#include "mcache.h"

#define MC_NAME_MAX  128
#define MC_ALIAS_MAX 64
#define MC_META_KEY_MAX 64 /* a metric, param or tag key (not a table key: MC_KEY_MAX, table.h) */

int mc_name_check(const char *name);
int mc_alias_check(const char *alias);

/* what: "metric", "param" or "tag", used in the message. */
int mc_key_check(const char *what, const char *key);

/*
 * Quote s[0..len) for an error message into buf: surrounding double quotes,
 * control and non-ASCII bytes as \xNN, quotes and backslashes escaped,
 * long values shortened with "...". Returns buf. s may be NULL ("(null)").
 */
const char *mc_quote(char *buf, size_t size, const char *s, size_t len);

/* Room that mc_quote() output for messages is given. */
#define MC_QUOTE_MAX 96

#endif
