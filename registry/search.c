/*
 * search.c - finding versions by name pattern, reference, tags and metric
 * conditions, in version or time order.
 */
#include <fnmatch.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/vec.h"
#include "index/name.h"
#include "registry/reg_int.h"

enum { OP_LT, OP_LE, OP_GT, OP_GE, OP_EQ, OP_NE };

struct metric_cond {
    char key[MC_META_KEY_MAX + 1];
    int op;
    double value;
};

struct tag_cond {
    char key[MC_META_KEY_MAX + 1];
    const char *glob;
};

#define METRIC_FORM                                                                                \
    "write NAME OP NUMBER with OP one of < <= > >= = != and no spaces, e.g. accuracy>=0.9"

static int metric_parse(const char *s, struct metric_cond *c)
{
    static const struct {
        const char *text;
        int op;
    } ops[] = {{"<=", OP_LE}, {">=", OP_GE}, {"!=", OP_NE}, {"==", OP_EQ},
               {"<", OP_LT},  {">", OP_GT},  {"=", OP_EQ}};
    char q[MC_QUOTE_MAX];
    size_t k = s ? strcspn(s, "<>=!") : 0;
    const char *num = NULL;
    char *end;

    mc_quote(q, sizeof(q), s, s ? strlen(s) : 0);
    if (s == NULL || k == 0 || s[k] == '\0' || k > MC_META_KEY_MAX)
        return mc_err(MC_EINVAL, "metric condition %s has no name and operator; " METRIC_FORM, q);
    memcpy(c->key, s, k);
    c->key[k] = '\0';
    if (mc_key_check("metric", c->key) != 0)
        return mc_err_prefix(MC_EINVAL, "metric condition %s", q);
    for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]) && !num; i++) {
        size_t n = strlen(ops[i].text);

        if (strncmp(s + k, ops[i].text, n) == 0) {
            c->op = ops[i].op;
            num = s + k + n;
        }
    }
    if (num == NULL)
        return mc_err(MC_EINVAL, "metric condition %s has an unknown operator; " METRIC_FORM, q);
    c->value = strtod(num, &end);
    if (end == num || *end != '\0' || !isfinite(c->value))
        return mc_err(MC_EINVAL, "metric condition %s does not end in a number; " METRIC_FORM, q);
    return 0;
}

static int tag_parse(const char *s, struct tag_cond *c)
{
    char q[MC_QUOTE_MAX];
    const char *eq = s ? strchr(s, '=') : NULL;

    mc_quote(q, sizeof(q), s, s ? strlen(s) : 0);
    if (eq == NULL || eq == s || (size_t)(eq - s) > MC_META_KEY_MAX)
        return mc_err(MC_EINVAL,
                      "tag condition %s is not KEY=VALUE (the value may be a glob, "
                      "e.g. env=prod or team=vision-*)",
                      q);
    memcpy(c->key, s, (size_t)(eq - s));
    c->key[eq - s] = '\0';
    if (mc_key_check("tag", c->key) != 0)
        return mc_err_prefix(MC_EINVAL, "tag condition %s", q);
    c->glob = eq + 1;
    return 0;
}

static bool metric_holds(const struct mc_reg_version *v, const struct metric_cond *c)
{
    for (size_t i = 0; i < v->nmetrics; i++) {
        double x = v->metrics[i].value;

        if (strcmp(v->metrics[i].key, c->key) != 0)
            continue;
        switch (c->op) {
        case OP_LT:
            return x < c->value;
        case OP_LE:
            return x <= c->value;
        case OP_GT:
            return x > c->value;
        case OP_GE:
            return x >= c->value;
        case OP_EQ:
            return x == c->value;
        default:
            return x != c->value;
        }
    }
    return false; /* a version without the metric does not meet the condition */
}

static bool tag_holds(const struct mc_reg_version *v, const struct tag_cond *c)
{
    for (size_t i = 0; i < v->ntags; i++)
        if (strcmp(v->tags[i].key, c->key) == 0)
            return fnmatch(c->glob, v->tags[i].value, 0) == 0;
    return false;
}

static int by_order(const void *a, const void *b, void *arg)
{
    enum mc_search_order order = *(const enum mc_search_order *)arg;
    const struct mc_reg_version *x = *(const struct mc_reg_version *const *)a;
    const struct mc_reg_version *y = *(const struct mc_reg_version *const *)b;
    int c;

    if (order == MC_ORDER_TIME || order == MC_ORDER_TIME_ASC) {
        c = x->created_ns < y->created_ns ? -1 : x->created_ns > y->created_ns;
        if (c == 0)
            c = strcmp(x->name, y->name);
        if (c == 0)
            c = mc_semver_cmp(&x->sv, &y->sv);
        return order == MC_ORDER_TIME ? -c : c;
    }
    c = strcmp(x->name, y->name);
    if (c)
        return c;
    c = mc_semver_cmp(&x->sv, &y->sv);
    return order == MC_ORDER_VERSION ? -c : c;
}

int mc_registry_search(struct mc_registry *r, const struct mc_search *q,
                       const struct mc_reg_version ***out, size_t *count)
{
    struct metric_cond *mc = NULL;
    struct tag_cond *tc = NULL;
    struct mc_range *range = NULL;
    const struct mc_reg_version **res = NULL;
    size_t n = 0, cap = 0;
    int kind = -1, rc = 0;

    *out = NULL;
    *count = 0;
    mc = calloc(q->nmetrics + 1, sizeof(*mc));
    tc = calloc(q->ntags + 1, sizeof(*tc));
    if (mc == NULL || tc == NULL)
        rc = mc_err(MC_ENOMEM, "out of memory searching");
    for (size_t i = 0; rc == 0 && i < q->nmetrics; i++)
        rc = metric_parse(q->metrics[i], &mc[i]);
    for (size_t i = 0; rc == 0 && i < q->ntags; i++)
        rc = tag_parse(q->tags[i], &tc[i]);
    if (rc == 0 && q->ref) {
        kind = mc_ref_classify(q->ref);
        if (kind < 0)
            rc = kind;
        else if (kind == MC_REF_RANGE)
            rc = mc_range_parse(q->ref, &range);
    }
    state_sort(r->st);
    for (size_t i = 0; rc == 0 && i < r->st->count; i++) {
        const struct reg_model *m = r->st->sorted[i];
        const struct mc_reg_version *pick = NULL;
        const struct reg_alias *split = NULL;

        if (q->pattern && fnmatch(q->pattern, m->name, 0) != 0)
            continue;
        if (q->ref && kind != MC_REF_RANGE && mc_registry_resolve(r, m->name, q->ref, &pick))
            continue; /* this model has nothing for that reference */
        /* a weighted alias picks every one of its targets */
        if (pick && kind == MC_REF_ALIAS && (split = model_alias(m, q->ref)) && split->ntg < 2)
            split = NULL;
        for (size_t k = 0; k < m->nvers; k++) {
            const struct mc_reg_version *v = m->vers[k];
            bool in_split = false;

            for (size_t t = 0; split && t < split->ntg; t++)
                in_split |= split->tg[t].version == v;
            bool ok = (!q->status_mask || (q->status_mask & (1u << v->status))) &&
                      (!pick || v == pick || in_split) &&
                      (!range || (v->status == MC_STATUS_READY && mc_range_match(range, &v->sv)));

            for (size_t c = 0; ok && c < q->nmetrics; c++)
                ok = metric_holds(v, &mc[c]);
            for (size_t c = 0; ok && c < q->ntags; c++)
                ok = tag_holds(v, &tc[c]);
            if (!ok)
                continue;
            if (MC_VEC_RESERVE(res, cap, n + 1, 32)) {
                rc = mc_err(MC_ENOMEM, "out of memory searching");
                break;
            }
            res[n++] = v;
        }
    }
    if (rc == 0) {
        enum mc_search_order order = q->order;

        mc_err_clear(); /* models without a match for ref left messages */
        if (n > 1)
            qsort_r(res, n, sizeof(*res), by_order, &order);
        if (q->limit && n > q->limit)
            n = q->limit;
        *out = res;
        *count = n;
        res = NULL;
    }
    free(res);
    free(mc);
    free(tc);
    mc_range_free(range);
    return rc;
}
