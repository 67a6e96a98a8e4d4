/*
 * hex.h - hex digits and checksum text, shared by the registry (manifest
 * framing, token hashes, checksums) and mcache-serve (percent-decoding,
 * Mcache-Checksum): one definition of each rule.
 */
#ifndef MC_COMMON_HEX_H
#define MC_COMMON_HEX_H

#include <stdbool.h>
#include <string.h>

/* The value of hex digit c: 0-9, a-f, and A-F when upper_ok; -1 if not one. */
static inline int mc_hexval(int c, bool upper_ok)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (upper_ok && c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/*
 * Whether s is an artifact checksum: "xxh3-128:" and 32 hex digits (lower
 * case as the registry writes them, or either case when upper_ok, as a
 * caller may give the one it expects). NULL is not.
 */
static inline bool mc_checksum_valid(const char *s, bool upper_ok)
{
    if (s == NULL || strncmp(s, "xxh3-128:", 9) != 0 || strlen(s) != 9 + 32)
        return false;
    for (s += 9; *s; s++)
        if (mc_hexval((unsigned char)*s, upper_ok) < 0)
            return false;
    return true;
}

#endif
