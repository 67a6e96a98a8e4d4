/*
 * views.c - tables more than one command prints (see views.h).
 */
#include "tools/views.h"

#include <string.h>

#include "tools/jsonout.h"
#include "tools/output.h"

const char *residency_word(const char *res)
{
    if (!res || !strcmp(res, "unknown"))
        return "?";
    if (!strcmp(res, "resident"))
        return "yes";
    if (!strcmp(res, "not-resident"))
        return "no";
    return res; /* loading, failed */
}

void view_versions(const struct cli *c, struct mc_registry *r,
                   const struct mc_reg_version *const *vs, size_t n, struct cli_arena *ar,
                   bool with_model, int indent)
{
    static const char *head[] = {"MODEL",  "VERSION",  "ALIASES", "SIZE", "FORMAT",
                                 "STATUS", "RESIDENT", "PUSHED",  NULL};
    struct table t;
    int skip = with_model ? 0 : 1;

    table_init(&t, 1u << (3 - skip), head + skip);
    for (size_t i = 0; i < n; i++) {
        const struct mc_reg_version *v = vs[i];
        const struct mc_reg_model *m = mc_registry_model(r, v->name);
        char al[512], sz[FMT_LEN], age[FMT_LEN];
        const char *row[8] = {v->name,
                              v->version,
                              aliases_of(m, v, al, sizeof(al)),
                              fmt_size(v->size, sz),
                              mc_reg_format_name(v->format),
                              mc_reg_status_name(v->status),
                              residency_word(cli_arena_residency(ar, v->name, v->version)),
                              fmt_age(v->created_ns, c->now_ns, age)};
        table_add(&t, row + skip);
    }
    table_print(&t, stdout, indent);
    table_free(&t);
}

void view_history(json_t *moves, int indent)
{
    /* BY last: user names vary in width, and nothing after them has to align. */
    static const char *head[] = {"WHEN", "ALIAS", "ACTION", "FROM", "TO", "GEN", "BY", NULL};
    struct table t;
    size_t i;
    json_t *mv;

    table_init(&t, 1u << 5, head);
    json_array_foreach(moves, i, mv)
    {
        char when[FMT_LEN], by[64], gen[24];
        const char *row[7] = {fmt_time((uint64_t)jint(mv, "at_ns"), when),
                              jstr(mv, "alias"),
                              jstr(mv, "action"),
                              jstr(mv, "from"),
                              jstr(mv, "to"),
                              gen,
                              cli_user_name((uint32_t)jint(mv, "uid"), by, sizeof(by))};
        snprintf(gen, sizeof(gen), "%lld", jint(mv, "generation"));
        table_add(&t, row);
        if (json_is_string(json_object_get(mv, "why"))) { /* a reason: on its own line */
            char why[1200];

            snprintf(why, sizeof(why), "why: %s", jstr(mv, "why"));
            table_note(&t, why);
        }
    }
    table_print(&t, stdout, indent);
    table_free(&t);
}
