/*
 * args.c - the command-line parser (see args.h).
 */
#include "tools/args.h"

#include <stdlib.h>
#include <string.h>

#include "common/err.h"

size_t opt_table_len(const struct opt_spec *t)
{
    size_t n = 0;

    while (t && t[n].name)
        n++;
    return n;
}

/* Index of the option (across both tables) with this long or short name, or -1. */
static int find(const struct args *a, const char *lname, size_t llen, char sname)
{
    for (int k = 0, base = 0; k < 2; base += (int)a->ntable[k], k++)
        for (size_t i = 0; i < a->ntable[k]; i++) {
            const struct opt_spec *o = &a->tables[k][i];
            if (lname ? strlen(o->name) == llen && !strncmp(o->name, lname, llen)
                      : (sname && o->short_name == sname))
                return base + (int)i;
        }
    return -1;
}

static const struct opt_spec *spec_at(const struct args *a, int i)
{
    return i < (int)a->ntable[0] ? &a->tables[0][i] : &a->tables[1][i - (int)a->ntable[0]];
}

static int store(struct args *a, int i, const char *v)
{
    const struct opt_spec *o = spec_at(a, i);
    const char **l;

    a->count[i]++;
    if (o->kind == OPT_VALUE)
        a->value[i] = v;
    if (o->kind != OPT_LIST)
        return 0;
    l = realloc(a->list[i], (a->count[i] + 1) * sizeof(*l));
    if (!l)
        return mc_err(MC_ENOMEM, "out of memory parsing options");
    l[a->count[i] - 1] = v;
    l[a->count[i]] = NULL;
    a->list[i] = l;
    return 0;
}

static int need_value(const struct opt_spec *o)
{
    return mc_err(MC_EINVAL, "option --%s needs a value (--%s %s)", o->name, o->name,
                  o->metavar ? o->metavar : "VALUE");
}

static int long_opt(struct args *a, int argc, char **argv, int *k)
{
    const char *s = argv[*k] + 2, *eq = strchr(s, '=');
    size_t len = eq ? (size_t)(eq - s) : strlen(s);
    int i = find(a, s, len, 0);
    const struct opt_spec *o;

    if (i < 0)
        return mc_err(MC_EINVAL, "unknown option \"--%.*s\"", (int)len, s);
    o = spec_at(a, i);
    if (o->kind == OPT_FLAG) {
        if (eq)
            return mc_err(MC_EINVAL, "option --%s takes no value (got \"%s\")", o->name, eq + 1);
        return store(a, i, NULL);
    }
    if (eq)
        return store(a, i, eq + 1);
    if (*k + 1 >= argc)
        return need_value(o);
    return store(a, i, argv[++*k]);
}

static int short_opts(struct args *a, int argc, char **argv, int *k)
{
    for (const char *p = argv[*k] + 1; *p; p++) {
        int i = find(a, NULL, 0, *p);
        const struct opt_spec *o;
        int rc;

        if (i < 0)
            return mc_err(MC_EINVAL, "unknown option \"-%c\"", *p);
        o = spec_at(a, i);
        if (o->kind == OPT_FLAG) {
            if ((rc = store(a, i, NULL)))
                return rc;
            continue;
        }
        if (p[1]) /* -k3 */
            return store(a, i, p + 1);
        if (*k + 1 >= argc)
            return need_value(o);
        return store(a, i, argv[++*k]);
    }
    return 0;
}

int args_parse(struct args *a, const struct opt_spec *t0, const struct opt_spec *t1, int argc,
               char **argv, bool stop_at_pos, int *next)
{
    bool only_pos = false;
    int k, rc;

    memset(a, 0, sizeof(*a));
    a->tables[0] = t0;
    a->tables[1] = t1;
    a->ntable[0] = opt_table_len(t0);
    a->ntable[1] = opt_table_len(t1);
    for (k = 0; k < argc; k++) {
        const char *s = argv[k];

        if (!only_pos && !strcmp(s, "--")) {
            only_pos = true;
            a->dashdash = a->npos;
            continue;
        }
        if (!only_pos && s[0] == '-' && s[1]) {
            rc = s[1] == '-' ? long_opt(a, argc, argv, &k) : short_opts(a, argc, argv, &k);
            if (rc)
                return rc;
            continue;
        }
        if (stop_at_pos)
            break;
        if (a->npos == ARGS_MAX_POS)
            return mc_err(MC_EINVAL, "too many arguments (at \"%s\")", s);
        a->pos[a->npos++] = s;
    }
    if (!only_pos)
        a->dashdash = a->npos + 1;
    if (next)
        *next = k;
    return 0;
}

void args_free(struct args *a)
{
    for (size_t i = 0; i < ARGS_MAX_OPTS * 2; i++)
        free(a->list[i]);
    memset(a->list, 0, sizeof(a->list));
}

static int by_name(const struct args *a, const char *name)
{
    return find(a, name, strlen(name), 0);
}

unsigned args_count(const struct args *a, const char *name)
{
    int i = by_name(a, name);

    return i < 0 ? 0 : a->count[i];
}

bool args_flag(const struct args *a, const char *name)
{
    return args_count(a, name) > 0;
}

const char *args_value(const struct args *a, const char *name)
{
    int i = by_name(a, name);

    return i < 0 ? NULL : a->value[i];
}

const char *const *args_list(const struct args *a, const char *name, size_t *n)
{
    int i = by_name(a, name);

    *n = i < 0 ? 0 : a->count[i];
    return i < 0 ? NULL : a->list[i];
}

void args_print_options(FILE *f, const struct opt_spec *t)
{
    for (; t && t->name; t++) {
        char left[64], sh[8] = "    ";

        if (t->short_name)
            snprintf(sh, sizeof(sh), "-%c, ", t->short_name);
        snprintf(left, sizeof(left), "%s--%s%s%s", sh, t->name, t->metavar ? " " : "",
                 t->metavar ? t->metavar : "");
        fprintf(f, "  %-24s %s\n", left, t->help);
    }
}
