/*
 * reg_targets.c - target sets of aliases (a plain alias: one version at
 * 100; a weighted one: up to MC_ALIAS_TARGETS_MAX versions with weights
 * summing to 100) and their canonical text, which is what records and
 * history hold: "1.0.0" for one target, "1.0.0=90 2.0.0=10" for several,
 * in ascending version precedence. A version never holds '=' or ' ', so the
 * text is unambiguous.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "registry/reg_int.h"

void tset_sort(struct tset *t)
{
    /* at most 4: insertion sort */
    for (size_t i = 1; i < t->n; i++) {
        for (size_t j = i; j > 0 && mc_semver_cmp(&t->v[j - 1]->v.sv, &t->v[j]->v.sv) > 0; j--) {
            struct reg_ver *v = t->v[j];
            uint32_t w = t->w[j];

            t->v[j] = t->v[j - 1];
            t->w[j] = t->w[j - 1];
            t->v[j - 1] = v;
            t->w[j - 1] = w;
        }
    }
}

void tset_format(const struct tset *t, char *buf, size_t cap)
{
    size_t len = 0;

    buf[0] = '\0';
    if (t->n == 1) {
        snprintf(buf, cap, "%s", t->v[0]->v.version);
        return;
    }
    for (size_t i = 0; i < t->n && len < cap; i++)
        len += (size_t)snprintf(buf + len, cap - len, "%s%s=%u", i ? " " : "", t->v[i]->v.version,
                                t->w[i]);
}

bool tset_equal(const struct tset *a, const struct tset *b)
{
    if (a->n != b->n)
        return false;
    for (size_t i = 0; i < a->n; i++)
        if (a->v[i] != b->v[i] || a->w[i] != b->w[i])
            return false;
    return true;
}

/* A weight: decimal digits only, 1..100; -1 if not. */
static int weight_of(const char *s, size_t n)
{
    int w = 0;

    if (n == 0 || n > 3)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        w = w * 10 + (s[i] - '0');
    }
    return w;
}

int tset_parse(const struct reg_model *m, const char *text, struct tset *t, int code,
               const char *what, char *missing, size_t cap)
{
    const char *p = text;
    char canon[TSET_TEXT_MAX];
    uint32_t sum = 0;

    t->n = 0;
    if (missing && cap)
        missing[0] = '\0';
    if (*text == '\0')
        return 0;
    while (*p) {
        const char *end = strchr(p, ' '), *eq;
        size_t len = end ? (size_t)(end - p) : strlen(p);
        char ver[300];
        int w = 100;

        if (t->n == MC_ALIAS_TARGETS_MAX)
            return mc_err(code, "%s \"%s\" has more than %d targets", what, text,
                          MC_ALIAS_TARGETS_MAX);
        eq = memchr(p, '=', len);
        if (eq) {
            w = weight_of(eq + 1, len - (size_t)(eq + 1 - p));
            len = (size_t)(eq - p);
        }
        if (w < 1 || w > 100 || len == 0 || len >= sizeof(ver))
            return mc_err(code, "%s \"%s\" is not a list of VERSION=WEIGHT (weights 1 to 100)",
                          what, text);
        memcpy(ver, p, len);
        ver[len] = '\0';
        t->v[t->n] = ver_exact(m, ver);
        if (t->v[t->n] == NULL) {
            if (missing)
                snprintf(missing, cap, "%s", ver);
            return mc_err(code == MC_ECORRUPT ? code : MC_ENOENT,
                          "%s \"%s\" names %s@%s, which does not exist", what, text, m->name, ver);
        }
        for (size_t i = 0; i < t->n; i++)
            if (t->v[i] == t->v[t->n])
                return mc_err(code, "%s \"%s\" names %s twice", what, text, ver);
        t->w[t->n++] = (uint32_t)w;
        sum += (uint32_t)w;
        p = end ? end + 1 : p + strlen(p);
    }
    if (sum != 100)
        return mc_err(code, "%s \"%s\": the weights sum to %u, not 100", what, text, sum);
    /* the one way to write it, so that texts compare as sets */
    tset_format(t, canon, sizeof(canon));
    if (strcmp(canon, text) != 0)
        return mc_err(code, "%s \"%s\" is not in canonical form (\"%s\")", what, text, canon);
    return 0;
}

/*
 * t without gone (which must be among its targets), the others taking its
 * weight in proportion to theirs, rounded by largest remainder (ties: the
 * first in precedence) so that the weights still sum to 100. One target
 * left: it has 100. None left: out->n is 0.
 */
void tset_without(const struct tset *t, const struct reg_ver *gone, struct tset *out)
{
    uint32_t rest = 0, given = 0, rem[MC_ALIAS_TARGETS_MAX];

    out->n = 0;
    for (size_t i = 0; i < t->n; i++) {
        if (t->v[i] == gone)
            continue;
        out->v[out->n] = t->v[i];
        out->w[out->n++] = t->w[i];
        rest += t->w[i];
    }
    if (out->n == 0 || rest == 0)
        return;
    for (size_t i = 0; i < out->n; i++) {
        rem[i] = out->w[i] * 100 % rest;
        out->w[i] = out->w[i] * 100 / rest;
        given += out->w[i];
    }
    while (given < 100) { /* fewer rounds than targets */
        size_t best = 0;

        for (size_t i = 1; i < out->n; i++)
            if (rem[i] > rem[best])
                best = i;
        out->w[best]++;
        rem[best] = 0;
        given++;
    }
}

/* ---- the API ---------------------------------------------------------- */

/* Where parsed refs live: per thread, until the thread's next parse. */
static _Thread_local char parsed_refs[MC_ALIAS_TARGETS_MAX][512];

int mc_reg_targets_parse(const char *const *words, size_t n, struct mc_reg_weight *out,
                         size_t *nout)
{
    uint32_t sum = 0;

    *nout = 0;
    if (n == 0)
        return mc_err(MC_EINVAL, "no target given: name a version (1.0.0) or several with weights "
                                 "summing to 100 (1.0.0=90 2.0.0=10)");
    if (n > MC_ALIAS_TARGETS_MAX)
        return mc_err(MC_EINVAL,
                      "%zu targets given; an alias points at 1 to %d versions (e.g. 1.0.0=90 "
                      "2.0.0=10)",
                      n, MC_ALIAS_TARGETS_MAX);
    for (size_t i = 0; i < n; i++) {
        const char *w = words[i], *eq = w ? strrchr(w, '=') : NULL;

        if (w == NULL || *w == '\0')
            return mc_err(MC_EINVAL, "target %zu is empty; write VERSION or VERSION=WEIGHT", i + 1);
        /* "=1.0.0", ">=1.0.0", "<=2": a range's operator, not a weight */
        if (eq && (eq == w || strchr("<>=", eq[-1])))
            eq = NULL;
        if ((size_t)(eq ? eq - w : (ptrdiff_t)strlen(w)) >= sizeof(parsed_refs[i]))
            return mc_err(MC_EINVAL, "target \"%.40s...\" is too long to be a reference", w);
        snprintf(parsed_refs[i], sizeof(parsed_refs[i]), "%.*s",
                 (int)(eq ? eq - w : (ptrdiff_t)strlen(w)), w);
        out[i].ref = parsed_refs[i];
        out[i].weight = 0;
        if (eq == NULL) {
            if (n > 1)
                return mc_err(MC_EINVAL,
                              "target \"%s\" has no weight; with several targets write each as "
                              "VERSION=WEIGHT, the weights summing to 100 (e.g. 1.0.0=90 2.0.0=10)",
                              w);
            out[i].weight = 100;
        } else {
            int x = weight_of(eq + 1, strlen(eq + 1));

            if (x < 1 || x > 100)
                return mc_err(MC_EINVAL,
                              "the weight \"%s\" of target \"%s\" is not a whole number from 1 to "
                              "100%s",
                              eq + 1, w, x == 0 ? " (to drop a version, leave it out)" : "");
            out[i].weight = (uint32_t)x;
        }
        sum += out[i].weight;
    }
    if (sum != 100)
        return mc_err(MC_EINVAL, "the weights of %zu target%s sum to %u; they must sum to 100", n,
                      n == 1 ? "" : "s", sum);
    *nout = n;
    return 0;
}

int mc_reg_targets_format(const struct mc_reg_alias *a, char *buf, size_t cap)
{
    struct tset t = {.n = a->ntargets};
    char tmp[TSET_TEXT_MAX];

    if (cap == 0)
        return mc_err(MC_EINVAL, "no room for the targets of alias \"%s\"", a->alias);
    for (size_t i = 0; i < t.n && i < MC_ALIAS_TARGETS_MAX; i++) {
        t.v[i] = ver_of(a->targets[i].version);
        t.w[i] = a->targets[i].weight;
    }
    tset_format(&t, tmp, sizeof(tmp));
    if (strlen(tmp) >= cap) {
        buf[0] = '\0';
        return mc_err(MC_EINVAL, "the targets of alias \"%s\" need %zu bytes, %zu given", a->alias,
                      strlen(tmp) + 1, cap);
    }
    memcpy(buf, tmp, strlen(tmp) + 1);
    return 0;
}
