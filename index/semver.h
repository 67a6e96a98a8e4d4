/*
 * semver.h - Semantic Versioning 2.0.0 and npm's range grammar.
 *
 * Versions follow https://semver.org/spec/v2.0.0.html to the letter:
 * MAJOR.MINOR.PATCH, an optional prerelease ("-rc.1") and optional build
 * metadata ("+sha.5114f85"), ordered by the precedence rules of section 11.
 * Build metadata never takes part in precedence.
 *
 * Ranges mean exactly what they mean in npm's `semver` package (node-semver
 * 7.x, `satisfies(version, range)` without the `loose` and
 * `includePrerelease` options), because that is the range grammar most
 * users already know:
 *
 *   1.2.3  =1.2.3  v1.2.3        exactly that precedence
 *   >1.2.3 >=1.2.3 <1.2.3 <=1.2.3
 *   1.2.x 1.2 1.x 1 * x ""       x-ranges (a missing part is an x)
 *   ~1.2.3 ~1.2 ~1               patch-level changes (~> is the same)
 *   ^1.2.3 ^0.2.3 ^0.0.3 ^1.x    no change of the leftmost non-zero part
 *   1.2.3 - 2.3.4                hyphen range, both ends inclusive
 *   A B                          both A and B (space = and)
 *   A || B                       A or B
 *
 * Prereleases: a version with a prerelease tag (1.3.0-rc.1) satisfies a
 * comparator set only if it satisfies every comparator AND some comparator
 * of that set names the same MAJOR.MINOR.PATCH with a prerelease of its own
 * (">=1.3.0-rc.0 <2" matches 1.3.0-rc.1 but not 1.4.0-rc.1; "^1.2" matches
 * neither). This keeps unstable builds out of ranges unless asked for.
 *
 * Known, deliberate differences from node-semver: numbers above 2^53-1 are
 * invalid in versions as in npm, but numeric prerelease identifiers are
 * compared exactly at any length (npm compares long ones as doubles); and
 * whitespace means ASCII whitespace only.
 *
 * ALLOCATION: nothing here allocates except mc_range_parse() (one block,
 * freed with mc_range_free()); mc_range_parse_buf() compiles into memory the
 * caller provides. All functions are safe to call from any thread; a
 * compiled range is immutable and may be shared between threads.
 *
 * ERRORS: functions that can fail return 0 or MC_EINVAL (MC_ENOSPC for a
 * buffer that is too small, MC_ENOMEM) and record a message for
 * mc_last_error() that quotes the input and says what is expected.
 */
#ifndef MCACHE_INDEX_SEMVER_H
#define MCACHE_INDEX_SEMVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mcache.h"

/* Longest version string accepted, in bytes (as npm). */
#define MC_SEMVER_MAX_LEN 256

/* Largest MAJOR, MINOR or PATCH accepted: 2^53-1 (as npm). */
#define MC_SEMVER_MAX_NUM 9007199254740991ULL

/*
 * A parsed version. pre and build point into the string that was parsed
 * (so they live as long as it does), without the leading '-' or '+';
 * their length is 0 when absent (and the pointer is then unspecified).
 */
struct mc_semver {
    uint64_t major, minor, patch;
    const char *pre;
    size_t pre_len;
    const char *build;
    size_t build_len;
};

/*
 * Parse s[0..len) as a strict SemVer 2.0.0 version: no 'v' prefix, no
 * whitespace, no leading zeros in numbers, no empty identifiers, at most
 * MC_SEMVER_MAX_LEN bytes. Returns 0 or MC_EINVAL with a message naming
 * what is wrong. Does not allocate.
 */
int mc_semver_parse(const char *s, size_t len, struct mc_semver *out);

/* True if s[0..len) is a version mc_semver_parse() accepts; sets no message. */
bool mc_semver_valid(const char *s, size_t len);

/*
 * Precedence (semver.org section 11): <0, 0 or >0. Build metadata is
 * ignored, so 1.0.0+a and 1.0.0+b compare equal.
 */
int mc_semver_cmp(const struct mc_semver *a, const struct mc_semver *b);

/* True if v has a prerelease tag. */
static inline bool mc_semver_is_prerelease(const struct mc_semver *v)
{
    return v->pre_len != 0;
}

/* A compiled range. Immutable; opaque. */
struct mc_range;

/*
 * Compile npm range text (see the top of this file). Returns 0 and a range
 * to free with mc_range_free(), or MC_EINVAL naming the part that is not
 * valid, or MC_ENOMEM.
 */
int mc_range_parse(const char *s, struct mc_range **out);

/*
 * The same without allocating: compile into buf (any alignment is fine),
 * which must stay valid and unchanged while the range is used; do not call
 * mc_range_free() on the result. mc_range_buf_size(strlen(s)) bytes always
 * suffice; a smaller buffer may fail with MC_ENOSPC.
 */
int mc_range_parse_buf(const char *s, void *buf, size_t size, struct mc_range **out);
size_t mc_range_buf_size(size_t len);

/*
 * True if s is a valid range. Allocates only for ranges longer than 511
 * bytes (a scratch copy), never keeps anything.
 */
bool mc_range_valid(const char *s);

/* Free a range from mc_range_parse(). Safe on NULL. */
void mc_range_free(struct mc_range *r);

/*
 * 1 if v satisfies r, else 0: npm's satisfies(v, r) including its
 * prerelease rule. Does not allocate.
 */
int mc_range_match(const struct mc_range *r, const struct mc_semver *v);

/*
 * Write the canonical form of r, as npm's validRange() prints it
 * ("^1.2" -> ">=1.2.0 <2.0.0-0", "x" -> "*"), into buf (NUL-terminated,
 * truncated to size). Returns the length of the full form.
 */
size_t mc_range_format(const struct mc_range *r, char *buf, size_t size);

/* How a reference ("name@REF") is to be resolved. */
enum {
    MC_REF_EXACT,  /* a version: "1.2.3", "2.0.0-rc.1", "1.0.0+build.7" */
    MC_REF_ALIAS,  /* an alias name: "production", "stable", "canary" */
    MC_REF_LATEST, /* "latest" (or NULL): the highest version that is not a prerelease */
    MC_REF_RANGE,  /* an npm range: "^1.2", "~1.2.3", ">=1.0.0 <2.0.0", "1.x" */
};

/*
 * Classify ref: one of MC_REF_* or MC_EINVAL (with a message) if it is none
 * of them. The forms cannot overlap: an alias starts with a letter and is
 * never a valid range, "latest" is reserved, and a string that is a strict
 * version is MC_REF_EXACT even though it is also a range. Allocates only
 * for references longer than 512 bytes.
 */
int mc_ref_classify(const char *ref);

/*
 * The resolution step shared by the registry and the reader library: is
 * cand a better answer than best (NULL: none yet) for range r (NULL: for
 * "latest")? True if cand satisfies r (for "latest": has no prerelease)
 * and has a higher precedence than best. Scan all candidates and keep the
 * last one for which this returned true. Does not allocate.
 */
bool mc_ref_better(const struct mc_range *r, const struct mc_semver *cand,
                   const struct mc_semver *best);

#endif
